import Foundation
import MinewatchCore

/// The thresholds of the bandwidth-miner model (detector 5 of `watch`). See the README's
/// "Bandwidth-miner model" section; every field is a `watch` option.
public struct BandwidthThresholds: Sendable, Hashable {
    /// How long the behaviour must last. The window is checked in two halves, and each half must
    /// carry upload, so one burst does not make a verdict (PacketCrypt sends a batch at least
    /// every 10 s, so halves of 10 s each see one).
    public var window: TimeInterval = 20
    /// Upload over outbound connections, bytes per second averaged over the window.
    public var minUploadRate: Double = 64 * 1024
    /// Outbound bytes sent : bytes received.
    public var minRatio: Double = 8
    /// The fewest destination addresses that carry 90% of the upload must be at most this many.
    public var maxDestinations: Int = 8
    /// Replies received on uploading connections (or new uploading connections): repeated
    /// request bodies rather than one long stream.
    public var minExchanges: Int = 3

    public init() {}
}

/// Cumulative counters of one connection (tcp_info, or a capture's flow).
public struct ConnectionCounters: Sendable, Hashable {
    public var bytesSent: UInt64
    public var bytesReceived: UInt64
    /// Data segments received: replies.
    public var segmentsIn: UInt32
    public init(bytesSent: UInt64, bytesReceived: UInt64, segmentsIn: UInt32 = 0) {
        self.bytesSent = bytesSent
        self.bytesReceived = bytesReceived
        self.segmentsIn = segmentsIn
    }
}

/// One TCP connection of a container (or a capture's client), as the bandwidth model sees it.
public struct ConnectionSample: Sendable, Hashable {
    /// Stable across passes while the connection lives (a socket inode, a flow's identity).
    public var id: UInt64
    public var remoteAddress: String
    public var remotePort: UInt16
    public var localPort: UInt16
    /// To a port the container listens on (it serves): not its own upload.
    public var inbound: Bool
    public var established: Bool
    /// nil when only the connection is known, not its bytes (no sock_diag).
    public var counters: ConnectionCounters?
    /// The process holding it, when known.
    public var owner: Int32?
    public init(id: UInt64, remoteAddress: String, remotePort: UInt16, localPort: UInt16, inbound: Bool, established: Bool = true,
                counters: ConnectionCounters?, owner: Int32? = nil) {
        self.id = id
        self.remoteAddress = remoteAddress
        self.remotePort = remotePort
        self.localPort = localPort
        self.inbound = inbound
        self.established = established
        self.counters = counters
        self.owner = owner
    }
}

/// Interface totals of a network namespace.
public struct InterfaceTotals: Sendable, Hashable {
    public var rxBytes: UInt64
    public var txBytes: UInt64
    public var rxPackets: UInt64
    public var txPackets: UInt64
    public init(rxBytes: UInt64 = 0, txBytes: UInt64 = 0, rxPackets: UInt64 = 0, txPackets: UInt64 = 0) {
        self.rxBytes = rxBytes
        self.txBytes = txBytes
        self.rxPackets = rxPackets
        self.txPackets = txPackets
    }
}

/// One pass's network view of one container (or one client of a capture): the neutral input of
/// the traffic meter and the bandwidth model.
public struct NetObservation: Sendable {
    public var time: Date
    /// Its TCP connections (not listeners).
    public var connections: [ConnectionSample]
    /// Interface counters of its own namespace; nil on the host network and in captures.
    public var interfaces: InterfaceTotals?
    public var hostNetwork: Bool
    /// The connections include those a packet capture saw open and close between passes: what
    /// the interfaces carried beyond them is residue (timing, drops), not unseen connections.
    public var captured = false

    public init(time: Date, connections: [ConnectionSample], interfaces: InterfaceTotals?, hostNetwork: Bool) {
        self.time = time
        self.connections = connections
        self.interfaces = interfaces
        self.hostNetwork = hostNetwork
    }
}

/// Traffic of one container between two passes, split by direction of the connection.
extension Array where Element == NetInterval {
    /// The intervals (kept in pass order) that end after `from`: a view of the trailing ones, not
    /// a copy (judges look at their window every pass for every container).
    func ending(after from: Date) -> ArraySlice<NetInterval> {
        var i = endIndex
        while i > startIndex, self[i - 1].end > from { i -= 1 }
        return self[i...]
    }

    /// Appends `iv` and drops the intervals that ended more than `seconds` before it.
    mutating func append(_ iv: NetInterval, keeping seconds: Double) {
        append(iv)
        let old = firstIndex { iv.end.timeIntervalSince($0.end) <= seconds } ?? endIndex
        if old > startIndex { removeFirst(old - startIndex) }
    }
}

public struct NetInterval: Sendable, Hashable {
    public var start: Date
    public var end: Date
    /// Over connections the container opened (client side).
    public var outTx: Double = 0
    public var outRx: Double = 0
    /// Over connections to its listening ports (server side).
    public var inTx: Double = 0
    public var inRx: Double = 0
    /// Interface totals (nil on the host network).
    public var ifTx: Double?
    public var ifRx: Double?
    public var ifTxPackets: Double?
    public var ifRxPackets: Double?
    /// Outbound bytes sent per remote address.
    public var destinations: [String: Double] = [:]
    /// Replies on uploading connections plus new uploading connections.
    public var exchanges = 0
    /// Outbound connections to a destination carrying small two-way exchanges (polls), by address.
    public var pollDestinations: Set<String> = []
    /// Socket inodes that carried upload.
    public var uploadSockets: Set<UInt64> = []
    /// Whether per-connection counters were available.
    public var perConnection = true
    /// Whether a capture counted the short connections too (see `NetObservation.captured`).
    public var captured = false
    public var uploader: Int32?
    public var outboundConnections = 0
    public var inboundConnections = 0
    /// Outbound connections that moved bytes in this interval, with their own counts (at most
    /// `TrafficMeter.maxFlowsPerInterval`, the busiest; the rest are summed in `otherFlows`).
    public var flows: [ConnectionDelta] = []
    /// Outbound bytes the interfaces carried that no socket open at either pass accounts for
    /// (short connections, headers), the share `outTx`/`outRx` include.
    public var unseenOutTx = 0.0
    public var unseenOutRx = 0.0
    public var otherFlows = ConnectionDelta(id: 0, remoteAddress: "", remotePort: 0, tx: 0, rx: 0, openedAt: .distantPast)

    public var seconds: Double { max(0.001, end.timeIntervalSince(start)) }
}

/// One outbound connection's bytes in one interval (per-connection counters only).
public struct ConnectionDelta: Sendable, Hashable {
    public var id: UInt64
    public var remoteAddress: String
    public var remotePort: UInt16
    public var tx: Double
    public var rx: Double
    /// The start of the interval in which the meter first saw the connection (distantPast for
    /// ones open before watching began).
    public var openedAt: Date
    /// "address:port" ("[v6]:port").
    public let endpoint: String
    /// 127.0.0.0/8, ::1 and their IPv4-mapped forms: a leg inside the container (a sidecar's
    /// application), never a tunnel or a target.
    public let isLoopback: Bool

    public init(id: UInt64, remoteAddress: String, remotePort: UInt16, tx: Double, rx: Double, openedAt: Date) {
        self.id = id
        self.remoteAddress = remoteAddress
        self.remotePort = remotePort
        self.tx = tx
        self.rx = rx
        self.openedAt = openedAt
        endpoint = Endpoint.text(remoteAddress, remotePort)
        isLoopback = IPAddress(remoteAddress)?.isLoopback ?? false
    }
}

/// A bandwidth-miner verdict with the numbers behind it.
public struct BandwidthVerdict: Sendable {
    public var since: Date
    public var uploadRate: Double
    public var downloadRate: Double
    public var ratio: Double
    /// Destinations carrying 90% of the upload, with bytes per second each.
    public var destinations: [(address: String, rate: Double)]
    public var exchanges: Int
    public var connections: Int
    /// Corroboration that raises the verdict to high: mirrored upload to several destinations,
    /// periodic small polls to an upload destination.
    public var mirrored: Bool
    public var polls: Bool
    public var perConnection: Bool
    public var uploader: Int32?
}

/// Turns cumulative per-connection and interface counters into per-interval traffic, split by
/// direction (connections the container opened vs connections to its listening ports). One per
/// container in `watch` (its telemetry and the bandwidth model read the same intervals), one per
/// client address in `pcap`.
public struct TrafficMeter: Sendable {
    var previous: [UInt64: ConnectionCounters] = [:]
    var previousInterfaces: InterfaceTotals?
    var lastTime: Date?
    /// When each live connection was first seen.
    var openedAt: [UInt64: Date] = [:]
    public static let maxFlowsPerInterval = 2048
    public static let headerBytesPerPacket = 66
    public init() {}

    /// Adds one pass; returns the interval it closed (nil for the first pass).
    public mutating func observe(_ o: NetObservation) -> NetInterval? {
        defer { lastTime = o.time }
        let connected = o.connections
        let perConnection = connected.allSatisfy { $0.counters != nil }
        guard let last = lastTime, o.time > last else {
            previous = Dictionary(connected.compactMap { c in c.counters.map { (c.id, $0) } }, uniquingKeysWith: { a, _ in a })
            // Open before watching began: when is unknown, so as early as can be.
            for c in connected where c.counters != nil { openedAt[c.id] = openedAt[c.id] ?? .distantPast }
            previousInterfaces = o.interfaces
            return nil
        }
        var iv = NetInterval(start: last, end: o.time)
        iv.perConnection = perConnection
        iv.captured = o.captured
        var next: [UInt64: ConnectionCounters] = [:]
        var best: (Double, UInt64)?
        var smallTwoWay: [String: Int] = [:]
        var owners: [UInt64: Int32] = [:]
        for s in connected {
            if s.inbound { iv.inboundConnections += 1 } else { iv.outboundConnections += 1 }
            if let o = s.owner { owners[s.id] = o }
            guard let c = s.counters else { continue }
            next[s.id] = c
            var tx = Double(c.bytesSent), rx = Double(c.bytesReceived), replies = Double(c.segmentsIn)
            let isNew: Bool
            if let p = previous[s.id], p.bytesSent <= c.bytesSent, p.bytesReceived <= c.bytesReceived {
                tx -= Double(p.bytesSent); rx -= Double(p.bytesReceived); replies -= Double(min(p.segmentsIn, c.segmentsIn))
                isNew = false
            } else {
                isNew = true  // opened since the last pass (or its inode was reused)
            }
            if s.inbound {
                iv.inTx += tx; iv.inRx += rx
                continue
            }
            iv.outTx += tx; iv.outRx += rx
            iv.destinations[s.remoteAddress, default: 0] += tx
            if tx > 0 || rx > 0 {
                // A new connection's bytes arrived since the last pass: it opened then.
                let opened = isNew ? last : (openedAt[s.id] ?? last)
                iv.flows.append(ConnectionDelta(id: s.id, remoteAddress: s.remoteAddress, remotePort: s.remotePort, tx: max(0, tx), rx: max(0, rx), openedAt: opened))
            }
            if tx >= 4096 {
                iv.uploadSockets.insert(s.id)
                iv.exchanges += Int(max(0, replies)) + (isNew ? 1 : 0)
                if tx > (best?.0 ?? 0) { best = (tx, s.id) }
            } else if tx > 0 && rx > 0 && tx < 4096 && rx < 64 * 1024 {
                smallTwoWay[s.remoteAddress, default: 0] += 1
            }
        }
        if iv.flows.count > Self.maxFlowsPerInterval {
            iv.flows.sort { $0.tx + $0.rx > $1.tx + $1.rx }
            for f in iv.flows[Self.maxFlowsPerInterval...] { iv.otherFlows.tx += f.tx; iv.otherFlows.rx += f.rx }
            iv.flows.removeLast(iv.flows.count - Self.maxFlowsPerInterval)
        }
        var opened: [UInt64: Date] = [:]
        for s in connected where s.counters != nil {
            opened[s.id] = previous[s.id] != nil ? (openedAt[s.id] ?? last) : last
        }
        openedAt = opened
        iv.uploader = best.flatMap { owners[$0.1] }
        iv.pollDestinations = Set(smallTwoWay.keys)
        // Bytes the interfaces carried that no open socket accounts for: connections that opened
        // and closed between passes, and headers. Shared out like the traffic that was seen.
        if let now = o.interfaces, let before = previousInterfaces, now.txBytes >= before.txBytes, now.rxBytes >= before.rxBytes {
            let ifTx = Double(now.txBytes - before.txBytes), ifRx = Double(now.rxBytes - before.rxBytes)
            iv.ifTx = ifTx; iv.ifRx = ifRx
            iv.ifTxPackets = Double(now.txPackets &- before.txPackets)
            iv.ifRxPackets = Double(now.rxPackets &- before.rxPackets)
            let seenTx = iv.outTx + iv.inTx, seenRx = iv.outRx + iv.inRx
            let share: Double
            if seenTx + seenRx > 0 {
                share = (iv.outTx + iv.outRx) / (seenTx + seenRx)
            } else {
                share = iv.outboundConnections > 0 && iv.inboundConnections == 0 ? 1 : 0
            }
            let restTx = max(0, ifTx - seenTx), restRx = max(0, ifRx - seenRx)
            iv.outTx += restTx * share; iv.outRx += restRx * share
            // Less each packet's headers (Ethernet, IPv4, TCP with timestamps: 66 bytes), which
            // the interfaces count and sockets do not: what is left is payload of unseen connections.
            let headers = Double(Self.headerBytesPerPacket)
            iv.unseenOutTx = max(0, restTx - (iv.ifTxPackets ?? 0) * headers) * share
            iv.unseenOutRx = max(0, restRx - (iv.ifRxPackets ?? 0) * headers) * share
            iv.inTx += restTx * (1 - share); iv.inRx += restRx * (1 - share)
            if !perConnection, share > 0 {
                // No per-connection counters: spread over the outbound connections' addresses.
                let addrs = Set(connected.filter { !$0.inbound }.map(\.remoteAddress))
                for a in addrs { iv.destinations[a, default: 0] += restTx * share / Double(addrs.count) }
            }
        }
        previous = next
        previousInterfaces = o.interfaces
        return iv
    }
}

/// Detector 5 of `watch`, the headline: a container that, for a sustained window, uploads far more
/// than it downloads over outbound connections it opened itself, to a few destinations, in
/// repeated exchanges. Pure logic over traffic intervals; time comes from the intervals.
///
/// Stays quiet by construction for: servers (their upload goes over inbound connections),
/// downloaders (ratio), single long uploads such as a backup (no repeated exchanges: one request
/// body, one reply at the end), chatty clients (rate and ratio), anything shorter than the window.
public struct BandwidthJudge: Sendable {
    public var model: BandwidthThresholds
    var meter = TrafficMeter()
    public private(set) var intervals: [NetInterval] = []
    var uploadSince: Date?
    var lastUploadEnd: Date?

    public init(model: BandwidthThresholds = BandwidthThresholds()) { self.model = model }

    /// Meters one pass and adds its interval; returns the interval (nil for the first pass).
    @discardableResult
    public mutating func observe(_ o: NetObservation) -> NetInterval? {
        guard let iv = meter.observe(o) else { return nil }
        add(iv)
        return iv
    }

    /// Adds an interval metered elsewhere.
    public mutating func add(_ iv: NetInterval) {
        intervals.append(iv, keeping: model.window * 2)
        // First evidence: the start of the current run of uploading (gaps up to a window long).
        if iv.outTx / iv.seconds >= model.minUploadRate / 8 {
            if uploadSince == nil || lastUploadEnd.map({ iv.start.timeIntervalSince($0) > model.window }) ?? true { uploadSince = iv.start }
            lastUploadEnd = iv.end
        }
    }

    /// The verdict over the trailing window, or nil.
    public func verdict() -> BandwidthVerdict? {
        guard let end = intervals.last?.end else { return nil }
        let from = end.addingTimeInterval(-model.window)
        // The intervals overlapping the window; it must be covered (watched that long). Passes
        // are not exactly `interval` apart, so the first one may start a little before it.
        let win = intervals.ending(after: from)
        guard let first = win.first, end.timeIntervalSince(first.start) >= model.window else { return nil }
        let seconds = end.timeIntervalSince(first.start)
        let tx = win.reduce(0) { $0 + $1.outTx }, rx = win.reduce(0) { $0 + $1.outRx }
        guard tx / seconds >= model.minUploadRate, tx >= model.minRatio * max(rx, 1) else { return nil }
        // Both halves carry upload: sustained, not one burst.
        let mid = first.start.addingTimeInterval(seconds / 2)
        let early = win.filter { $0.end <= mid }.reduce(0) { $0 + $1.outTx }
        let late = win.filter { $0.end > mid }.reduce(0) { $0 + $1.outTx }
        guard early >= tx * 0.1, late >= tx * 0.1 else { return nil }
        // A few destinations carry it.
        var perDest: [String: Double] = [:]
        for iv in win { for (a, b) in iv.destinations { perDest[a, default: 0] += b } }
        let ranked = perDest.sorted { $0.value > $1.value }
        var covered = 0.0
        var top: [(String, Double)] = []
        for (a, b) in ranked where covered < tx * 0.9 {
            covered += b
            top.append((a, b))
        }
        guard !top.isEmpty, top.count <= model.maxDestinations else { return nil }
        let perConnection = win.allSatisfy(\.perConnection)
        let exchanges = win.reduce(0) { $0 + $1.exchanges }
        if perConnection && exchanges < model.minExchanges { return nil }
        let largest = top[0].1
        let mirrored = top.count >= 2 && top[1].1 >= largest / 3
        let topSet = Set(top.map(\.0))
        let pollIntervals = win.filter { !$0.pollDestinations.isDisjoint(with: topSet) }.count
        let connections = win.reduce(into: Set<UInt64>()) { $0.formUnion($1.uploadSockets) }.count
        return BandwidthVerdict(
            since: uploadSince ?? first.start, uploadRate: tx / seconds, downloadRate: rx / seconds, ratio: tx / max(rx, 1),
            destinations: top.map { ($0.0, $0.1 / seconds) }, exchanges: exchanges,
            connections: perConnection ? connections : win.map(\.outboundConnections).max() ?? 0,
            mirrored: mirrored, polls: pollIntervals >= 2, perConnection: perConnection,
            uploader: win.last(where: { $0.uploader != nil })?.uploader)
    }
}
