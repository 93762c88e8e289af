import Foundation
import MinewatchCore

/// The thresholds of the relay model (watch's `relay` detector and pcap's relay findings). The
/// window, rate, targets and tolerance are `watch`/`pcap` options; all are rule data
/// (`models: relay:`); see the README's "Relay model".
public struct RelayThresholds: Sendable, Hashable {
    /// The window the balance is measured over; the container must have been watched for all of it.
    public var window: TimeInterval = 20
    /// Bytes per second relayed (both directions together) at the least.
    public var minRate: Double = 32 * 1024
    /// Distinct target addresses (other than the vendor side's) at the least.
    public var minTargets = 3
    /// How far the two sides may differ in each direction, as a share of the larger side.
    public var tolerance = 0.25
    /// Bytes each direction may differ by in addition: per-stream framing (a request line, a
    /// vendor's stream header, an HTTP envelope, a TLS handshake) that is not relayed byte for
    /// byte. Framing only adds to the vendor side, so the per-connection share is allowed that
    /// way only.
    public var slackBytes: Double = 8 * 1024
    public var slackPerTarget: Double = 2 * 1024
    /// Share of the dominant direction's bytes that must cross in step (within the same few
    /// seconds) on both sides: a relay forwards as it receives; a job that fetches from many
    /// sites and uploads batches later does not.
    public var inStep = 0.8
    public init() {}
}

/// A relay verdict: the vendor side, the targets, the balance each way over the window.
public struct RelayVerdict: Sendable, Hashable {
    /// The vendor side: an endpoint ("address:port"), an address, or a name with its addresses
    /// ("edge.vendor.example (198.18.1.5, 198.18.1.6)"); its connections over the window and
    /// whether one of them was open for all of it (a long-lived tunnel) or not (polling over
    /// fresh connections).
    public var vendor: String
    public var vendorAddresses: [String]
    public var vendorConnections: Int
    public var longLived: Bool
    /// Target addresses (the busiest first, at most 16) and how many in all.
    public var targets: [String]
    public var targetCount: Int
    public var targetConnections: Int
    /// Bytes over the window: received from the vendor side / sent to the targets (towards the
    /// targets), and received from the targets / sent to the vendor side (back).
    public var vendorIn: Double
    public var targetsOut: Double
    public var targetsIn: Double
    public var vendorOut: Double
    /// Share of the dominant direction that crossed in step.
    public var inStep: Double
    public var seconds: Double
    public var since: Date

    /// The larger side over the smaller, each way (1.00 is a perfect relay).
    public var balanceTowardsTargets: Double { max(vendorIn, targetsOut) / max(1, min(vendorIn, targetsOut)) }
    public var balanceBack: Double { max(targetsIn, vendorOut) / max(1, min(targetsIn, vendorOut)) }
    public var rate: Double { (max(vendorIn, targetsOut) + max(targetsIn, vendorOut)) / max(seconds, 0.001) }
}

/// Relaying traffic for someone else (proxyjacking), by bytes alone: outbound connections to one
/// vendor side (one long-lived tunnel, or many short connections polling for jobs and returning
/// results, to one address or to several addresses behind one name) and, over the window,
/// outbound connections to several other addresses (the targets), where what arrives from the
/// vendor side leaves towards the targets and what the targets send back leaves towards the
/// vendor side, both within a tolerance and in step. Names, binaries, vendors and encryption do
/// not matter. Inbound connections (a proxy's own clients) and loopback legs (a sidecar's
/// application) are never vendor side or target. Pure logic over traffic intervals
/// (per-connection counters, from sock_diag or from the capture); time comes from the intervals.
public struct RelayJudge: Sendable {
    public var model: RelayThresholds
    public private(set) var intervals: [NetInterval] = []

    public init(model: RelayThresholds = RelayThresholds()) { self.model = model }

    /// Width of the buckets the in-step share is measured over.
    public static let stepSeconds = 4.0

    public mutating func add(_ iv: NetInterval) {
        intervals.append(iv, keeping: model.window * 2)
    }

    /// The trailing window and its length in seconds when there is anything to judge in it: it
    /// is covered (watched that long), every interval has per-connection counters, and its
    /// connections moved at least the minimum rate (most containers move little). Cheap: a
    /// detector asks before it gathers the names the verdict needs.
    public func judgedWindow() -> (ArraySlice<NetInterval>, Double)? {
        guard let end = intervals.last?.end else { return nil }
        let win = intervals.ending(after: end.addingTimeInterval(-model.window))
        guard let first = win.first, end.timeIntervalSince(first.start) >= model.window * 0.95,
              win.allSatisfy(\.perConnection) else { return nil }
        let seconds = end.timeIntervalSince(first.start)
        guard win.reduce(0, { $0 + $1.outTx + $1.outRx }) / seconds >= model.minRate else { return nil }
        return (win, seconds)
    }

    struct Side {
        var tx = 0.0, rx = 0.0
        var ids = Set<UInt64>()
        var ports = Set<UInt16>()
    }

    /// The verdict over the trailing window, or nil. `names` maps addresses to the server names
    /// the container used for them (TLS SNI, HTTP Host, DNS answers): addresses behind one name
    /// are one vendor side.
    public func verdict(names: [String: String] = [:]) -> RelayVerdict? {
        guard let (win, seconds) = judgedWindow() else { return nil }
        let first = win[win.startIndex]
        func group(_ address: String) -> String { names[address].map { "name:" + $0 } ?? address }
        var byAddress: [String: Side] = [:]
        var byGroup: [String: Side] = [:]
        var longLived: [UInt64: Bool] = [:]
        for iv in win {
            for f in iv.flows where !f.isLoopback {
                byAddress[f.remoteAddress, default: Side()].tx += f.tx
                byAddress[f.remoteAddress, default: Side()].rx += f.rx
                byAddress[f.remoteAddress, default: Side()].ids.insert(f.id)
                let g = group(f.remoteAddress)
                byGroup[g, default: Side()].tx += f.tx
                byGroup[g, default: Side()].rx += f.rx
                byGroup[g, default: Side()].ids.insert(f.id)
                byGroup[g, default: Side()].ports.insert(f.remotePort)
                // Open for the whole window: seen at a pass before the window began.
                longLived[f.id] = (longLived[f.id] ?? true) && f.openedAt < first.start
            }
        }
        // Targets count by group too: several addresses behind one name (a CDN, an object
        // store) are one destination.
        guard byGroup.count > model.minTargets else { return nil }
        // Bytes the interfaces carried that no connection accounts for. With no capture they are
        // connections too short to be seen at a pass: targets' (a tunnel is always seen), as are
        // the busiest-but-not-listed ones. With a capture counting short connections they are
        // residue (a connection closing as the pass reads), and may belong to either side.
        let unseenTx = win.map { ($0.captured ? 0 : $0.unseenOutTx) + $0.otherFlows.tx }
        let unseenRx = win.map { ($0.captured ? 0 : $0.unseenOutRx) + $0.otherFlows.rx }
        let eitherTx = win.reduce(0) { $0 + ($1.captured ? $1.unseenOutTx : 0) }, eitherRx = win.reduce(0) { $0 + ($1.captured ? $1.unseenOutRx : 0) }
        var best: (RelayVerdict, Double)?
        // Vendor-side candidates: the busiest groups (an address, or the addresses behind a name).
        let candidates = byGroup.sorted { $0.value.tx + $0.value.rx > $1.value.tx + $1.value.rx }.prefix(4)
        for (key, side) in candidates {
            let inGroup = Set(byAddress.keys.filter { group($0) == key })
            let targets = byAddress.filter { !inGroup.contains($0.key) }
            let targetGroups = Set(targets.keys.map(group)).count
            guard targetGroups >= model.minTargets else { continue }
            // Per interval: vendor side and targets, each way.
            var vIn = [Double](), vOut = [Double](), tOut = [Double](), tIn = [Double]()
            for (k, iv) in win.enumerated() {
                var v = (tx: 0.0, rx: 0.0), t = (tx: unseenTx[k], rx: unseenRx[k])
                for f in iv.flows where !f.isLoopback {
                    if inGroup.contains(f.remoteAddress) { v.tx += f.tx; v.rx += f.rx } else { t.tx += f.tx; t.rx += f.rx }
                }
                vIn.append(v.rx); vOut.append(v.tx); tOut.append(t.tx); tIn.append(t.rx)
            }
            let vendorIn0 = vIn.reduce(0, +), vendorOut0 = vOut.reduce(0, +), targetsOut0 = tOut.reduce(0, +), targetsIn0 = tIn.reduce(0, +)
            let targetConnections = targets.values.reduce(0) { $0 + $1.ids.count }
            let framing = model.slackPerTarget * Double(targetConnections + side.ids.count)
            // The vendor side carries what the targets carry, plus framing (never less): at least
            // all but the tolerance (and a little slack, never more than the tolerance again, so
            // a few kB of requests to targets are not "balanced" by a few hundred bytes of acks).
            func balanced(vendor a: Double, targets b: Double) -> Bool {
                a >= b * (1 - model.tolerance) - min(model.slackBytes, b * model.tolerance)
                    && a <= b * (1 + model.tolerance) + model.slackBytes + framing
            }
            // Residue belongs to the larger direction (it is bytes in flight as a pass reads, and
            // most bytes are there): received, the larger side's; sent, the other's. The smaller
            // direction is judged on what was seen: a few hundred bytes of residue must not
            // "balance" a few kB of requests.
            // The rate counts what was seen on connections; residue (which may be UDP the sockets
            // do not show) can settle the balance only up to a quarter of the seen bytes.
            let seenRelayed = max(vendorIn0, targetsOut0) + max(targetsIn0, vendorOut0)
            guard seenRelayed / seconds >= model.minRate else { continue }
            let backLarger = targetsIn0 + vendorOut0 >= vendorIn0 + targetsOut0
            let larger = backLarger ? targetsIn0 + vendorOut0 : vendorIn0 + targetsOut0
            let residueRx = min(eitherRx, larger / 4), residueTx = min(eitherTx, larger / 4)
            let vendorIn = vendorIn0 + (backLarger ? 0 : residueRx), targetsOut = targetsOut0 + (backLarger ? 0 : residueTx)
            let targetsIn = targetsIn0 + (backLarger ? residueRx : 0), vendorOut = vendorOut0 + (backLarger ? residueTx : 0)
            guard balanced(vendor: vendorIn, targets: targetsOut), balanced(vendor: vendorOut, targets: targetsIn) else { continue }
            // In step: the dominant direction's bytes cross both sides in the same few seconds:
            // the window in `stepSeconds` buckets (by the end of each interval; a longer pass
            // interval is its own bucket), so a stream cut by a pass boundary still counts.
            let (a, b) = backLarger ? (tIn, vOut) : (tOut, vIn)
            var buckets: [Int: (Double, Double)] = [:]
            for (k, iv) in win.enumerated() {
                let slot = Int(iv.end.timeIntervalSince(first.start) / Self.stepSeconds)
                buckets[slot, default: (0, 0)].0 += a[k]
                buckets[slot, default: (0, 0)].1 += b[k]
            }
            let matched = buckets.values.reduce(0) { $0 + min($1.0, $1.1) }, total = buckets.values.reduce(0) { $0 + max($1.0, $1.1) }
            let inStep = total > 0 ? matched / total : 0
            guard inStep >= model.inStep else { continue }
            let addresses = inGroup.sorted()
            let name = key.hasPrefix("name:") ? String(key.dropFirst(5)) : nil
            let vendor: String
            if let name {
                vendor = "\(name) (\(addresses.joined(separator: ", ")))"
            } else if side.ports.count == 1, let port = side.ports.first, let address = addresses.first {
                vendor = Endpoint.text(address, port)
            } else {
                vendor = addresses.first ?? key
            }
            let imbalance = abs(vendorIn - targetsOut) + abs(targetsIn - vendorOut)
            let v = RelayVerdict(
                vendor: vendor, vendorAddresses: addresses, vendorConnections: side.ids.count,
                longLived: side.ids.contains { longLived[$0] == true },
                targets: targets.sorted { $0.value.tx + $0.value.rx > $1.value.tx + $1.value.rx }.prefix(16).map(\.key),
                targetCount: targets.count, targetConnections: targetConnections,
                vendorIn: vendorIn, targetsOut: targetsOut, targetsIn: targetsIn, vendorOut: vendorOut, inStep: inStep, seconds: seconds,
                since: first.start)
            if best == nil || imbalance < best?.1 ?? .infinity { best = (v, imbalance) }
        }
        return best?.0
    }
}
