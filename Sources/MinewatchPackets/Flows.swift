import Foundation
import MinewatchCore

/// Receives the reassembled bytes of one flow. `fromClient` is the direction (client = the side
/// that opened the connection). Returning false means "no more bytes this direction" (counting
/// goes on, delivery stops): the per-flow inspection cap.
public protocol FlowConsumer: AnyObject {
    func stream(_ bytes: UnsafeRawBufferPointer, fromClient: Bool, time: Double) -> Bool
    /// `count` bytes of this direction were not captured (snap length, a hole, lost packets).
    func missing(_ count: Int, fromClient: Bool)
    func datagram(_ bytes: UnsafeRawBufferPointer, fromClient: Bool, time: Double)
    /// How many of this direction's next bytes the consumer only needs counted (the rest of a
    /// message body it has sampled; Suricata's stream depth, per message): asked after each
    /// delivery. The table passes them by, in order, without delivering them, and reports them
    /// in one `passed` when they are all through (or before a hole is reported).
    func bypass(fromClient: Bool) -> Int
    /// `count` bytes of this direction went by in order, as `bypass` allowed.
    func passed(_ count: Int, fromClient: Bool)
}

extension FlowConsumer {
    public func bypass(fromClient: Bool) -> Int { 0 }
    public func passed(_ count: Int, fromClient: Bool) {}
}

/// One direction of a TCP flow being put back in order.
struct Reassembly {
    var next: UInt32?
    var pending: [(seq: UInt32, bytes: [UInt8])] = []
    var pendingBytes = 0
    var open = true
    /// Bytes still to pass by (`FlowConsumer.bypass`), and how many went by since the consumer
    /// was last told.
    var bypass = 0
    var bypassed = 0
}

/// A TCP or UDP conversation between two endpoints, with its statistics.
public final class Flow {
    public let transport: DecodedPacket.Transport
    public let client: IPAddress
    public let clientPort: UInt16
    public let server: IPAddress
    public let serverPort: UInt16
    public var first: Double
    public var last: Double
    /// Payload bytes and packets each way (on the wire, whatever the snap length kept).
    public var clientBytes = 0, serverBytes = 0
    public var clientPackets = 0, serverPackets = 0
    /// Data-carrying packets from the server: replies, for the exchange count.
    public var serverDataPackets = 0
    /// Saw the opening SYN (so client/server are known, not guessed).
    public var sawSYN = false
    /// Its opening SYN came in from another host (`PacketInfo.received`): a connection the
    /// captured side accepted, as a server.
    public var accepted = false
    public var closed = false
    /// Stream bytes skipped because they were never captured or could not be ordered.
    public var gaps = 0
    public var consumer: FlowConsumer?
    /// Timing of the client's messages, for flows a consumer asked to time (TLS, WebSocket):
    /// nil for the rest, so untimed flows cost nothing.
    public var clientMessages: MessageTimer?
    /// Both directions' messages in order, for flows a consumer asked to follow (TLS, unknown
    /// TCP): who speaks first in each exchange shows through encryption.
    public var exchanges: ExchangeLog?
    var dirs = [Reassembly(), Reassembly()]
    /// In the table's `touched` list (see `FlowTable.tracksTouched`).
    var touched = false

    init(_ p: DecodedPacket, clientIsSource: Bool, time: Double) {
        transport = p.transport
        client = clientIsSource ? p.src : p.dst
        clientPort = clientIsSource ? p.srcPort : p.dstPort
        server = clientIsSource ? p.dst : p.src
        serverPort = clientIsSource ? p.dstPort : p.srcPort
        first = time
        last = time
    }

    /// Drops what reassembly still holds (a flow that is done keeps only its statistics).
    public func releaseBuffers() { dirs = [Reassembly(), Reassembly()] }

    public var endpoints: String { "\(Self.endpoint(client, clientPort)) -> \(Self.endpoint(server, serverPort))" }
    public static func endpoint(_ a: IPAddress, _ port: UInt16) -> String { Endpoint.text("\(a)", port) }
}

/// When one side of a flow sent its messages and how large they were: packets with payload less
/// than `gap` apart are one message. Keeps the last `capacity` messages and running totals.
public struct MessageTimer: Sendable, Hashable {
    public static let capacity = 48
    public var gap: Double = 0.25
    /// Start time and bytes of the most recent messages, oldest first.
    public private(set) var times: [Double] = []
    public private(set) var sizes: [Int] = []
    public private(set) var messages = 0
    public private(set) var bytes = 0
    var lastPacket: Double?

    public init() {}

    public mutating func add(time: Double, bytes n: Int) {
        bytes += n
        if let l = lastPacket, time - l < gap, !sizes.isEmpty {
            sizes[sizes.count - 1] += n
        } else {
            messages += 1
            times.append(time)
            sizes.append(n)
            if times.count > Self.capacity {
                times.removeFirst()
                sizes.removeFirst()
            }
        }
        lastPacket = time
    }
}

/// The messages of both directions of a flow, in order: packets of one direction less than `gap`
/// apart are one message (a TLS record may take several packets). Keeps the most recent
/// `capacity` messages and counts them all.
public struct ExchangeLog: Sendable, Hashable {
    public static let capacity = 64
    public var gap: Double = 0.05
    public struct Message: Sendable, Hashable {
        public var time: Double
        public var size: Int
        public var fromClient: Bool
    }
    /// Up to twice `capacity` messages; the oldest half is dropped at once (amortised O(1) a packet).
    var kept: [Message] = []
    /// Messages counted so far (all of them, not only those kept).
    public private(set) var messages = 0
    public private(set) var first: Double?
    var lastPacket: Double?

    public init() {}

    /// The most recent `capacity` messages (start time, size, direction), oldest first.
    public var recent: ArraySlice<Message> { kept.suffix(Self.capacity) }
    /// Whether the flow's first message is still among those kept.
    public var holdsStart: Bool { messages <= Self.capacity }

    public mutating func add(time: Double, bytes n: Int, fromClient client: Bool) {
        if first == nil { first = time }
        if let l = lastPacket, time - l < gap, let last = kept.last, last.fromClient == client {
            kept[kept.count - 1].size += n
        } else {
            messages += 1
            kept.append(Message(time: time, size: n, fromClient: client))
            if kept.count >= 2 * Self.capacity { kept.removeFirst(Self.capacity) }
        }
        lastPacket = time
    }
}

public struct FlowKey: Hashable, Sendable {
    var a: IPAddress, b: IPAddress
    var ap: UInt16, bp: UInt16
    var proto: UInt8
    init(_ p: DecodedPacket) {
        if (p.src, p.srcPort) < (p.dst, p.dstPort) {
            a = p.src; ap = p.srcPort; b = p.dst; bp = p.dstPort
        } else {
            a = p.dst; ap = p.dstPort; b = p.src; bp = p.srcPort
        }
        proto = p.transport.rawValue
    }
}

/// Tracks flows and reassembles TCP streams with bounded memory: at most `maxFlows` flows (the
/// least recently seen are evicted, and counted) and `maxPendingPerDirection` bytes of
/// out-of-order data per direction (beyond that the hole is skipped, and counted).
public final class FlowTable {
    public private(set) var flows: [FlowKey: Flow] = [:]
    public let maxFlows: Int
    public let maxPendingPerDirection: Int
    public private(set) var evicted = 0
    public private(set) var holesSkipped = 0
    /// Called for a new flow (attach a consumer) and for a flow leaving the table.
    public var onNew: ((Flow) -> Void)?
    public var onEvict: ((Flow) -> Void)?
    var lastKey: FlowKey?
    var lastFlow: Flow?
    /// Whether the table lists the flows packets reach (`takeTouched`): a live capture brings
    /// what it publishes up to date from them instead of walking every flow. Off for captures
    /// read from files, where nobody takes the list.
    public var tracksTouched = false
    var touched: [Flow] = []

    /// The flows a packet reached since the last call, each once (only with `tracksTouched`). A
    /// flow may have left the table since.
    public func takeTouched() -> [Flow] {
        let t = touched
        touched.removeAll(keepingCapacity: true)
        for f in t { f.touched = false }
        return t
    }

    public init(maxFlows: Int = 200_000, maxPendingPerDirection: Int = 256 * 1024) {
        self.maxFlows = maxFlows
        self.maxPendingPerDirection = maxPendingPerDirection
    }

    /// `received`: the packet came in from another host (see `PacketInfo.received`).
    public func add(_ p: DecodedPacket, bytes: UnsafeRawBufferPointer, time: Double, received: Bool = false) {
        let key = FlowKey(p)
        let flow: Flow
        if let last = lastFlow, key == lastKey {
            flow = last  // consecutive packets of one flow skip the hash lookup
        } else if let f = flows[key] {
            flow = f
        } else {
            let clientIsSource: Bool
            if p.transport == .tcp && p.syn {
                clientIsSource = !p.ackFlag
            } else {
                // No handshake seen: the side on the lower (service) port is the server.
                clientIsSource = p.dstPort < p.srcPort || (p.dstPort == p.srcPort)
            }
            flow = Flow(p, clientIsSource: clientIsSource, time: time)
            flow.sawSYN = p.transport == .tcp && p.syn
            flow.accepted = flow.sawSYN && clientIsSource && received
            if flows.count >= maxFlows { evictOldest() }
            flows[key] = flow
            onNew?(flow)
        }
        lastKey = key
        lastFlow = flow
        if tracksTouched && !flow.touched {
            flow.touched = true
            touched.append(flow)
        }
        flow.last = max(flow.last, time)
        let fromClient = p.src == flow.client && p.srcPort == flow.clientPort
        if fromClient {
            flow.clientPackets += 1
            flow.clientBytes += p.wirePayloadLength
            if p.wirePayloadLength > 0, flow.clientMessages != nil { flow.clientMessages?.add(time: time, bytes: p.wirePayloadLength) }
        } else {
            flow.serverPackets += 1
            flow.serverBytes += p.wirePayloadLength
            if p.wirePayloadLength > 0 { flow.serverDataPackets += 1 }
        }
        if p.wirePayloadLength > 0, flow.exchanges != nil { flow.exchanges?.add(time: time, bytes: p.wirePayloadLength, fromClient: fromClient) }
        let payload = UnsafeRawBufferPointer(rebasing: bytes[p.payloadOffset..<(p.payloadOffset + p.payloadLength)])
        if p.transport == .udp {
            flow.consumer?.datagram(payload, fromClient: fromClient, time: time)
            return
        }
        if p.fin || p.rst { flow.closed = true }
        reassemble(flow, p, payload, fromClient: fromClient, time: time)
    }

    func reassemble(_ flow: Flow, _ p: DecodedPacket, _ payload: UnsafeRawBufferPointer, fromClient: Bool, time: Double) {
        let d = fromClient ? 0 : 1
        if p.syn { flow.dirs[d].next = p.seq &+ 1 }
        guard p.wirePayloadLength > 0, flow.dirs[d].open else { return }
        guard let next = flow.dirs[d].next else {
            flow.dirs[d].next = p.seq
            deliver(flow, d, payload, wire: p.wirePayloadLength, fromClient: fromClient, time: time)
            return
        }
        let diff = Int32(bitPattern: p.seq &- next)
        if diff == 0 {
            deliver(flow, d, payload, wire: p.wirePayloadLength, fromClient: fromClient, time: time)
        } else if diff < 0 {
            // Retransmission, possibly with new bytes at its end.
            let overlap = Int(-Int64(diff))
            if overlap < p.wirePayloadLength {
                let skip = min(overlap, payload.count)
                deliver(flow, d, UnsafeRawBufferPointer(rebasing: payload[skip...]), wire: p.wirePayloadLength - overlap,
                        fromClient: fromClient, time: time)
            }
            return
        } else {
            // Ahead of what is expected: keep it (bounded) until the hole fills.
            if flow.dirs[d].pendingBytes + payload.count <= maxPendingPerDirection && payload.count == p.wirePayloadLength {
                flow.dirs[d].pending.append((p.seq, Array(payload)))
                flow.dirs[d].pendingBytes += payload.count
                return
            }
            // Too much is missing: skip the hole.
            let hole = Int(diff)
            holesSkipped += 1
            flow.gaps += hole
            endBypass(flow, d, fromClient: fromClient)
            flow.consumer?.missing(hole, fromClient: fromClient)
            flow.dirs[d].next = p.seq
            deliver(flow, d, payload, wire: p.wirePayloadLength, fromClient: fromClient, time: time)
        }
        drain(flow, d, fromClient: fromClient, time: time)
    }

    func deliver(_ flow: Flow, _ d: Int, _ bytes: UnsafeRawBufferPointer, wire: Int, fromClient: Bool, time: Double) {
        flow.dirs[d].next = (flow.dirs[d].next ?? 0) &+ UInt32(truncatingIfNeeded: wire)
        hand(flow, d, bytes, wire: wire, fromClient: fromClient, time: time)
        drain(flow, d, fromClient: fromClient, time: time)
    }

    /// Gives the consumer the next in-order bytes of a direction (`wire` of them on the wire, the
    /// captured ones in `bytes`), passing by those it asked to have only counted.
    func hand(_ flow: Flow, _ d: Int, _ bytes: UnsafeRawBufferPointer, wire: Int, fromClient: Bool, time: Double) {
        guard let c = flow.consumer, flow.dirs[d].open else { return }
        var bytes = bytes
        var wire = wire
        if flow.dirs[d].bypass > 0 {
            let n = min(flow.dirs[d].bypass, wire)
            flow.dirs[d].bypass -= n
            flow.dirs[d].bypassed += n
            if flow.dirs[d].bypass == 0 { endBypass(flow, d, fromClient: fromClient) }
            guard n < wire else { return }
            bytes = UnsafeRawBufferPointer(rebasing: bytes[min(n, bytes.count)...])
            wire -= n
        }
        if !bytes.isEmpty && !c.stream(bytes, fromClient: fromClient, time: time) {
            flow.dirs[d].open = false
            flow.dirs[d].pending = []
            flow.dirs[d].pendingBytes = 0
            return
        }
        if wire > bytes.count {
            flow.gaps += wire - bytes.count
            c.missing(wire - bytes.count, fromClient: fromClient)
        }
        flow.dirs[d].bypass = c.bypass(fromClient: fromClient)
    }

    /// Tells the consumer about the bytes passed by so far, and passes no more.
    func endBypass(_ flow: Flow, _ d: Int, fromClient: Bool) {
        let n = flow.dirs[d].bypassed
        flow.dirs[d].bypass = 0
        flow.dirs[d].bypassed = 0
        if n > 0 { flow.consumer?.passed(n, fromClient: fromClient) }
    }

    func drain(_ flow: Flow, _ d: Int, fromClient: Bool, time: Double) {
        while !flow.dirs[d].pending.isEmpty, let next = flow.dirs[d].next {
            guard let i = flow.dirs[d].pending.firstIndex(where: { Int32(bitPattern: $0.seq &- next) <= 0 }) else { return }
            let seg = flow.dirs[d].pending.remove(at: i)
            flow.dirs[d].pendingBytes -= seg.bytes.count
            let overlap = Int(-Int64(Int32(bitPattern: seg.seq &- next)))
            if overlap < seg.bytes.count {
                flow.dirs[d].next = next &+ UInt32(truncatingIfNeeded: seg.bytes.count - overlap)
                seg.bytes.withUnsafeBytes { b in
                    hand(flow, d, UnsafeRawBufferPointer(rebasing: b[overlap...]), wire: seg.bytes.count - overlap, fromClient: fromClient, time: time)
                }
            }
        }
    }

    /// Removes the flows `done` picks (a live capture's ended connections), each through
    /// `onEvict`; not counted as evicted. Returns how many left.
    @discardableResult
    public func remove(where done: (Flow) -> Bool) -> Int {
        let leaving = flows.filter { done($0.value) }
        guard !leaving.isEmpty else { return 0 }
        lastKey = nil
        lastFlow = nil
        for (k, f) in leaving {
            flows[k] = nil
            onEvict?(f)
        }
        return leaving.count
    }

    /// Evicts the least recently seen tenth of the table.
    func evictOldest() {
        let n = max(1, maxFlows / 10)
        let victims = flows.sorted { $0.value.last < $1.value.last }.prefix(n)
        lastKey = nil
        lastFlow = nil
        for (k, f) in victims {
            flows[k] = nil
            evicted += 1
            onEvict?(f)
        }
    }
}
