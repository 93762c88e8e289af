import Foundation

/// The thresholds of the relay model (watch's `relay` detector and pcap's relay findings). Every
/// field is a `watch`/`pcap` option; see the README's "Relay model".
public struct RelayThresholds: Sendable, Hashable {
    /// The window the balance is measured over; the tunnel must have been open for all of it.
    public var window: TimeInterval = 20
    /// Bytes per second relayed (both directions together) at the least.
    public var minRate: Double = 32 * 1024
    /// Distinct target addresses (other than the tunnel's) at the least.
    public var minTargets = 3
    /// How far the two sides may differ in each direction, as a share of the larger side.
    public var tolerance = 0.25
    /// Bytes each direction may differ by in addition: per-stream framing (a request line, a
    /// vendor's stream header) that is not relayed byte for byte.
    public var slackBytes: Double = 8 * 1024
    public var slackPerTarget: Double = 2 * 1024
    public init() {}
}

/// A relay verdict: the tunnel, the targets, the balance each way over the window.
public struct RelayVerdict: Sendable, Hashable {
    /// The tunnel's endpoint (address:port) and its connections.
    public var tunnel: String
    public var tunnelConnections: Int
    public var tunnelOpenedAt: Date
    /// Target addresses (the busiest first, at most 16) and how many in all.
    public var targets: [String]
    public var targetCount: Int
    public var targetConnections: Int
    /// Bytes over the window: received on the tunnel / sent to the targets (towards the
    /// targets), and received from the targets / sent on the tunnel (back to the tunnel).
    public var tunnelIn: Double
    public var targetsOut: Double
    public var targetsIn: Double
    public var tunnelOut: Double
    public var seconds: Double
    public var since: Date

    /// The larger side over the smaller, each way (1.00 is a perfect relay).
    public var balanceTowardsTargets: Double { max(tunnelIn, targetsOut) / max(1, min(tunnelIn, targetsOut)) }
    public var balanceBack: Double { max(targetsIn, tunnelOut) / max(1, min(targetsIn, tunnelOut)) }
    public var rate: Double { (max(tunnelIn, targetsOut) + max(targetsIn, tunnelOut)) / max(seconds, 0.001) }
}

/// Relaying traffic for someone else (proxyjacking), by bytes alone: one or a few long-lived
/// outbound connections to one endpoint (the tunnel) and, over the window, outbound connections
/// to several other addresses (the targets), where what arrives on the tunnel leaves towards the
/// targets and what the targets send back leaves on the tunnel, both within a tolerance. Names,
/// binaries, vendors and encryption do not matter. Inbound connections (a proxy's own clients)
/// and loopback legs (a sidecar's application) are never tunnel or target. Pure logic over
/// traffic intervals (per-connection counters); time comes from the intervals.
public struct RelayJudge: Sendable {
    public var model: RelayThresholds
    public private(set) var intervals: [NetInterval] = []

    public init(model: RelayThresholds = RelayThresholds()) { self.model = model }

    public mutating func add(_ iv: NetInterval) {
        intervals.append(iv)
        intervals.removeAll { iv.end.timeIntervalSince($0.end) > model.window * 2 }
    }

    struct Side {
        var tx = 0.0, rx = 0.0
        var ids = Set<UInt64>()
        var opened = Date.distantFuture
    }

    /// The verdict over the trailing window, or nil.
    public func verdict() -> RelayVerdict? {
        guard let end = intervals.last?.end else { return nil }
        let from = end.addingTimeInterval(-model.window)
        let win = intervals.filter { $0.end > from }
        guard let first = win.first, end.timeIntervalSince(first.start) >= model.window * 0.95,
              win.allSatisfy(\.perConnection) else { return nil }
        let seconds = end.timeIntervalSince(first.start)
        // Most containers move little: nothing to relay at the minimum rate, nothing to look at.
        guard win.reduce(0, { $0 + $1.outTx + $1.outRx }) / seconds >= model.minRate else { return nil }
        // Per remote endpoint (address:port) and per address, over the window.
        var byEndpoint: [String: Side] = [:]
        var byAddress: [String: Side] = [:]
        var total = Side()
        var longLived: [UInt64: Bool] = [:]
        for iv in win {
            for f in iv.flows where !f.isLoopback {
                byEndpoint[f.endpoint, default: Side()].tx += f.tx
                byEndpoint[f.endpoint, default: Side()].rx += f.rx
                byEndpoint[f.endpoint, default: Side()].ids.insert(f.id)
                byEndpoint[f.endpoint, default: Side()].opened = min(byEndpoint[f.endpoint]?.opened ?? .distantFuture, f.openedAt)
                byAddress[f.remoteAddress, default: Side()].tx += f.tx
                byAddress[f.remoteAddress, default: Side()].rx += f.rx
                byAddress[f.remoteAddress, default: Side()].ids.insert(f.id)
                total.tx += f.tx
                total.rx += f.rx
                total.ids.insert(f.id)
                // Open for the whole window: first seen at or before its start.
                longLived[f.id] = (longLived[f.id] ?? true) && f.openedAt <= first.start
            }
            total.tx += iv.otherFlows.tx + iv.unseenOutTx
            total.rx += iv.otherFlows.rx + iv.unseenOutRx
        }
        // Bytes of connections too short to be seen at a pass belong to targets (the tunnel is
        // always seen), as do the busiest-but-not-listed ones.
        let unseenTx = win.reduce(0) { $0 + $1.unseenOutTx + $1.otherFlows.tx }
        let unseenRx = win.reduce(0) { $0 + $1.unseenOutRx + $1.otherFlows.rx }
        guard (total.tx + total.rx) / seconds >= model.minRate, byAddress.count > model.minTargets else { return nil }
        var best: (RelayVerdict, Double)?
        // Tunnel candidates: the busiest endpoints whose connections were open for the window.
        let candidates = byEndpoint.filter { e in e.value.ids.contains { longLived[$0] == true } }
            .sorted { $0.value.tx + $0.value.rx > $1.value.tx + $1.value.rx }.prefix(4)
        for (endpoint, _) in candidates {
            guard let address = win.lazy.flatMap(\.flows).first(where: { $0.endpoint == endpoint })?.remoteAddress else { continue }
            // The tunnel: the long-lived connections to this endpoint; the targets: every other address.
            var tunnel = Side()
            for iv in win {
                for f in iv.flows where f.endpoint == endpoint && longLived[f.id] == true {
                    tunnel.tx += f.tx
                    tunnel.rx += f.rx
                    tunnel.ids.insert(f.id)
                    tunnel.opened = min(tunnel.opened, f.openedAt)
                }
            }
            let targets = byAddress.filter { $0.key != address }
            guard targets.count >= model.minTargets else { continue }
            let targetsOut = targets.values.reduce(unseenTx) { $0 + $1.tx }, targetsIn = targets.values.reduce(unseenRx) { $0 + $1.rx }
            let targetConnections = targets.values.reduce(0) { $0 + $1.ids.count }
            let slack = model.slackBytes + model.slackPerTarget * Double(targetConnections)
            func balanced(_ a: Double, _ b: Double) -> Bool { abs(a - b) <= model.tolerance * max(a, b) + slack }
            guard balanced(tunnel.rx, targetsOut), balanced(targetsIn, tunnel.tx) else { continue }
            let relayed = max(tunnel.rx, targetsOut) + max(targetsIn, tunnel.tx)
            guard relayed / seconds >= model.minRate else { continue }
            let imbalance = abs(tunnel.rx - targetsOut) + abs(targetsIn - tunnel.tx)
            let v = RelayVerdict(
                tunnel: endpoint, tunnelConnections: tunnel.ids.count, tunnelOpenedAt: tunnel.opened,
                targets: targets.sorted { $0.value.tx + $0.value.rx > $1.value.tx + $1.value.rx }.prefix(16).map(\.key),
                targetCount: targets.count, targetConnections: targetConnections,
                tunnelIn: tunnel.rx, targetsOut: targetsOut, targetsIn: targetsIn, tunnelOut: tunnel.tx, seconds: seconds,
                since: first.start)
            if best == nil || imbalance < best?.1 ?? .infinity { best = (v, imbalance) }
        }
        return best?.0
    }
}
