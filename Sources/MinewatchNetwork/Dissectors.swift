import Foundation
import MinewatchCore
import MinewatchPackets
import MinewatchModel

/// The recognisers of one flow: classifies it from the client's first bytes (Stratum JSON lines,
/// HTTP, TLS) and parses it with bounded buffers; other protocols are not read further.
public final class FlowInspector: FlowConsumer {
    public var facts = SessionFacts()
    enum Kind { case unknown, stratum, http, tls, opaque }
    var kind = Kind.unknown
    /// Bytes handed to line or header parsing per direction (bodies are skipped by count).
    var parsed = [0, 0]
    let maxParsed: Int
    var lines = [[UInt8](), [UInt8]()]
    var http = [HTTPParser(isRequest: true), HTTPParser(isRequest: false)]
    var tlsBuffer: [UInt8] = []
    /// Stratum request ids of submits waiting for a reply.
    var pendingSubmits: Set<String> = []
    /// Called with DNS answers seen in UDP flows (name, addresses).
    var dns: ((DNSMessage) -> Void)?
    /// The flow this inspects; the flow owns its inspector (`consumer`), so this is unowned: no cycle.
    unowned let flow: Flow

    public init(flow: Flow, maxParsedPerDirection: Int = 4 << 20, dns: ((DNSMessage) -> Void)? = nil) {
        self.flow = flow
        maxParsed = maxParsedPerDirection
        self.dns = dns
    }

    public func datagram(_ bytes: UnsafeRawBufferPointer, fromClient: Bool, time: Double) {
        guard flow.serverPort == 53 || flow.clientPort == 53 || flow.serverPort == 5353 else { return }
        facts.protocolName = .dns
        if let m = DNSMessage.parse(bytes) { dns?(m) }
    }

    public func missing(_ count: Int, fromClient: Bool) {
        let d = fromClient ? 0 : 1
        switch kind {
        case .http:
            var events: [HTTPParser.Event] = []
            http[d].skip(count, events: &events)
            for e in events { handle(e, fromClient: fromClient, time: flow.last) }
        case .stratum: lines[d] = []  // the line in progress is lost
        default: break
        }
    }

    public func bypass(fromClient: Bool) -> Int {
        kind == .http ? http[fromClient ? 0 : 1].bodyLeftToCount : 0
    }

    public func passed(_ count: Int, fromClient: Bool) {
        guard kind == .http else { return }
        var events: [HTTPParser.Event] = []
        http[fromClient ? 0 : 1].pass(count, events: &events)
        for e in events { handle(e, fromClient: fromClient, time: flow.last) }
    }

    public func stream(_ bytes: UnsafeRawBufferPointer, fromClient: Bool, time: Double) -> Bool {
        let d = fromClient ? 0 : 1
        if kind == .unknown {
            guard fromClient, let b0 = bytes.first else { return fromClient ? true : !bytes.isEmpty }
            if b0 == UInt8(ascii: "{") {
                kind = .stratum
                // Seen from its opening, a connection whose client speaks first with '{' is
                // Stratum. Joined mid-stream (the ring opened late), a '{' may be any byte of
                // another protocol's data (a compressed git pack): Stratum only once a line with
                // Stratum's shape parses (`line`).
                if flow.sawSYN { facts.protocolName = .stratum }
            } else if HTTPParser.startsWithMethod(bytes) {
                kind = .http
                facts.protocolName = .http
            } else if b0 == 0x16 && bytes.count >= 2 && bytes[1] == 0x03 {
                kind = .tls
                facts.protocolName = .tls
                followTiming(time: time, firstBytes: bytes.count, heartbeats: true)
            } else if (b0 == 0x17 || b0 == 0x15) && bytes.count >= 3 && bytes[1] == 0x03 && bytes[2] <= 0x04 && !flow.sawSYN {
                // Joined after the handshake (capture started late): records, no server name.
                kind = .opaque
                facts.protocolName = .tls
                followTiming(time: time, firstBytes: bytes.count, heartbeats: true)
                flow.clientMessages?.add(time: time, bytes: bytes.count)
                return false
            } else {
                // Unknown TCP: followed for its exchange shape only (Stratum under a wrapper of its own).
                kind = .opaque
                if flow.transport == .tcp { followTiming(time: time, firstBytes: bytes.count, heartbeats: false) }
                return false
            }
        }
        switch kind {
        case .stratum:
            return stratum(bytes, d, time: time)
        case .http:
            var events: [HTTPParser.Event] = []
            let ok = http[d].feed(bytes, events: &events)
            for e in events { handle(e, fromClient: fromClient, time: time) }
            parsed[d] += http[d].headerBytesLastFeed
            return ok && parsed[d] < maxParsed
        case .tls:
            guard fromClient else { return false }
            tlsBuffer += bytes.prefix(16384 - tlsBuffer.count)
            switch TLSClientHello.serverName(tlsBuffer) {
            case .name(let n): facts.sni = n; return false
            case .none: return false
            case .needMore: return tlsBuffer.count < 16384
            }
        case .opaque, .unknown:
            return false
        }
    }

    /// Follows the timing of the flow's messages, whose content is encrypted or unknown: both
    /// directions for the job-push shape (from the client's first bytes, delivered here), and the
    /// client's alone for heartbeats when `heartbeats`.
    func followTiming(time: Double, firstBytes n: Int, heartbeats: Bool) {
        if heartbeats { flow.clientMessages = MessageTimer() }
        flow.exchanges = ExchangeLog()
        flow.exchanges?.add(time: time, bytes: n, fromClient: true)
    }

    // MARK: Stratum

    func stratum(_ bytes: UnsafeRawBufferPointer, _ d: Int, time: Double) -> Bool {
        var start = 0
        for i in 0..<bytes.count where bytes[i] == 10 {
            lines[d] += bytes[start..<i]
            line(lines[d], fromClient: d == 0, time: time)
            lines[d].removeAll(keepingCapacity: true)
            start = i + 1
        }
        if start < bytes.count {
            lines[d] += bytes[start...]
            if lines[d].count > 65536 { lines[d] = [] }  // not Stratum-sized; drop the line
        }
        parsed[d] += bytes.count
        return parsed[d] < maxParsed
    }

    static func str(_ v: Any?) -> String? {
        if let s = v as? String { return s }
        if let n = v as? NSNumber { return n.stringValue }
        return nil
    }

    func line(_ raw: [UInt8], fromClient: Bool, time: Double) {
        guard raw.first == UInt8(ascii: "{") else { return }
        if facts.protocolName != .unknown, let s = StratumLine.scan(raw), counted(s, fromClient: fromClient) { return }
        guard
              let obj = (try? JSONSerialization.jsonObject(with: Data(raw))) as? [String: Any] else { return }
        let method = obj["method"] as? String
        let id = Self.str(obj["id"])
        if facts.protocolName == .unknown {
            // Joined mid-stream: a JSON-RPC message (a method with params, or a reply with an
            // id), not any JSON line (a log shipper's), makes it Stratum.
            guard (method != nil && obj["params"] != nil) || (id != nil && (obj["result"] != nil || obj["error"] != nil)) else { return }
            facts.protocolName = .stratum
        }
        if fromClient {
            switch method {
            case "mining.subscribe":
                let p = obj["params"] as? [Any] ?? []
                if let agent = p.first as? String, !agent.isEmpty { facts.agent = agent }
                // NiceHash's EthereumStratum/1.0.0 names itself as the second parameter.
                if p.dropFirst().contains(where: { ($0 as? String)?.hasPrefix("EthereumStratum/") == true }) { facts.protocolName = .stratumEthereum }
            case "eth_submitLogin":
                // EthProxy (stratum1) dialect of Ethereum-family pools: wallet[.worker], password.
                facts.protocolName = .stratumEthereum
                facts.login = (obj["params"] as? [Any])?.first as? String ?? facts.login
                if let w = obj["worker"] as? String, let l = facts.login, !l.contains(".") { facts.login = "\(l).\(w)" }
            case "eth_getWork":
                facts.protocolName = .stratumEthereum
            case "eth_submitWork":
                facts.protocolName = .stratumEthereum
                facts.submits += 1
                if let id { pendingSubmits.insert(id) }
            case "eth_submitHashrate":
                facts.protocolName = .stratumEthereum
                facts.keepalives += 1
            case "mining.authorize":
                facts.login = (obj["params"] as? [Any])?.first as? String ?? facts.login
            case "mining.submit":
                facts.submits += 1
                if let id { pendingSubmits.insert(id) }
                if facts.login == nil { facts.login = (obj["params"] as? [Any])?.first as? String }
            case "login":
                let p = obj["params"] as? [String: Any]
                facts.login = p?["login"] as? String ?? facts.login
                if let agent = p?["agent"] as? String { facts.agent = agent }
                if facts.algorithm == nil, let offered = (p?["algo"] as? [Any])?.first as? String { facts.algorithm = String(offered.prefix(32)) }
                facts.protocolName = .stratumMonero
            case "submit":
                facts.submits += 1
                facts.protocolName = .stratumMonero
                if let id { pendingSubmits.insert(id) }
            case "keepalived":
                facts.keepalives += 1
            default:
                break
            }
            return
        }
        switch method {
        case "mining.notify", "job":
            facts.jobs += 1
            if let j = obj["params"] as? [String: Any] { moneroJob(j) }
        case "mining.set_difficulty":
            facts.difficulty = ((obj["params"] as? [Any])?.first as? NSNumber)?.doubleValue
        default:
            guard method == nil else { return }
            // A reply: to a submit (accepted or rejected), or the Monero login carrying a job.
            if let r = obj["result"] as? [String: Any], r["job"] != nil {
                facts.jobs += 1
                if let j = r["job"] as? [String: Any] { moneroJob(j) }
            }
            // EthProxy work (a reply to eth_getWork, or pushed with id 0): header, seed, target.
            if facts.protocolName == .stratumEthereum, let r = obj["result"] as? [Any], r.count >= 3,
               r.prefix(3).allSatisfy({ ($0 as? String)?.hasPrefix("0x") == true }) {
                facts.jobs += 1
                return
            }
            guard let id, pendingSubmits.remove(id) != nil else { return }
            let err = obj["error"]
            let rejected = (err != nil && !(err is NSNull)) || (obj["result"] as? Bool) == false
            if rejected { facts.rejected += 1 } else { facts.accepted += 1 }
        }
    }

    /// The lines that only count (submits, keepalives, job pushes without a Monero job object,
    /// replies to submits), from their top level alone: the bulk of a mining session. False when
    /// the line needs its fields read (`line` parses it whole).
    func counted(_ s: StratumLine, fromClient: Bool) -> Bool {
        if fromClient {
            switch s.method {
            case "mining.submit":
                guard facts.login != nil else { return false }
                facts.submits += 1
                if let id = s.id { pendingSubmits.insert(id) }
            case "submit":
                facts.submits += 1
                facts.protocolName = .stratumMonero
                if let id = s.id { pendingSubmits.insert(id) }
            case "eth_submitWork":
                facts.protocolName = .stratumEthereum
                facts.submits += 1
                if let id = s.id { pendingSubmits.insert(id) }
            case "eth_submitHashrate":
                facts.protocolName = .stratumEthereum
                facts.keepalives += 1
            case "eth_getWork":
                facts.protocolName = .stratumEthereum
            case "keepalived":
                facts.keepalives += 1
            default:
                return false
            }
            return true
        }
        switch s.method {
        case "mining.notify":
            guard s.params != .object else { return false }
            facts.jobs += 1
            return true
        case nil:
            if s.result == .object && s.resultHasJob { return false }
            if facts.protocolName == .stratumEthereum && s.result == .array { return false }
            guard let id = s.id, pendingSubmits.remove(id) != nil else { return true }
            if s.errorSet || s.result == .bool(false) { facts.rejected += 1 } else { facts.accepted += 1 }
            return true
        default:
            return false
        }
    }

    /// What a Monero-dialect job says about the algorithm: its `algo`, a RandomX `seed_hash`, the
    /// major version byte of its hashing blob (hex).
    func moneroJob(_ j: [String: Any]) {
        if let a = j["algo"] as? String, !a.isEmpty { facts.algorithm = String(a.prefix(32)) }
        if let seed = j["seed_hash"] as? String { facts.seedHash = seed.count == 64 && seed.allSatisfy(\.isHexDigit) }
        if let blob = j["blob"] as? String, blob.count >= 152, let major = UInt8(blob.prefix(2), radix: 16) { facts.blobMajorVersion = Int(major) }
    }

    // MARK: HTTP

    func handle(_ e: HTTPParser.Event, fromClient: Bool, time: Double) {
        switch e {
        case .request(let method, let path, let headers):
            facts.requests += 1
            if facts.requestTimes.count < 256 { facts.requestTimes.append(time) }
            if let h = headers["host"] { facts.host = h }
            if let ua = headers["user-agent"] { facts.userAgent = ua }
            if let x = headers["x-mining-extensions"] { facts.miningExtensions = x }
            if let sid = headers["x-pc-sid"] { facts.sid = sid }
            if headers["upgrade"]?.lowercased() == "websocket", flow.clientMessages == nil { flow.clientMessages = MessageTimer() }
            if method == "GET" && path.hasSuffix("/config.json") && (headers["x-pc-sid"] != nil || (headers["user-agent"] ?? "").hasPrefix("packetcrypt")) {
                facts.configPolls += 1
                facts.protocolName = .packetcrypt
            } else if method == "GET" && path.containsBytes("/blkinfo_") && path.hasSuffix(".json") {
                facts.blkinfo += 1
                facts.protocolName = .packetcrypt
            } else if method == "POST" && headers["x-pc-payto"] != nil {
                facts.annPosts += 1
                facts.payto = headers["x-pc-payto"]
                facts.protocolName = .packetcrypt
            }
        case .requestBody(let size, let head, let estimated):
            if facts.bodySizes.count < 64 { facts.bodySizes.append(size) }
            BodyShape.record(size: size, head: head, estimated: estimated, headers: http[0].lastHeaders, into: &facts)
            if facts.protocolName == .packetcrypt, size > 0, estimated || size % 1024 == 0, http[0].lastHeaders["x-pc-payto"] != nil {
                facts.announcements += size / 1024
            }
            // JSON-RPC getwork / getblocktemplate.
            let start = head.prefix(4096)
            if ByteSearch.contains(start, "\"method\""), String(bytes: start, encoding: .utf8) != nil {
                if ["\"getwork\"", "\"getblocktemplate\"", "\"eth_getWork\"", "\"eth_submitWork\"", "\"eth_submitLogin\""]
                    .contains(where: { ByteSearch.contains(start, $0) }) {
                    facts.getwork += 1
                    facts.protocolName = .getwork
                }
            }
        case .response:
            break
        }
    }
}

/// The header fields of one HTTP head that the recognisers read (`HTTPParser.fieldsRead`), by
/// lower-case name; a field given twice keeps its last value. A fixed slot per field instead of a
/// dictionary: every head on a busy node's rings makes one, and hashing its names was most of
/// the cost of a head.
struct HTTPFields: Sendable, ExpressibleByDictionaryLiteral {
    // One slot per name of `HTTPParser.fieldsRead`, in its order, stored inline: a head is parsed
    // for every request and response a capture follows, and an array of slots was an allocation
    // (and a release) each.
    private var f0, f1, f2, f3, f4, f5, f6, f7, f8, f9: String?

    init() {}

    /// Fields by lower-case name; names the recognisers do not read are left out.
    init(dictionaryLiteral elements: (String, String)...) {
        for (k, v) in elements { self[k] = v }
    }

    mutating func set(_ index: Int, _ value: String) { self[slot: index] = value }

    subscript(slot i: Int) -> String? {
        get {
            switch i {
            case 0: f0
            case 1: f1
            case 2: f2
            case 3: f3
            case 4: f4
            case 5: f5
            case 6: f6
            case 7: f7
            case 8: f8
            case 9: f9
            default: nil
            }
        }
        set {
            switch i {
            case 0: f0 = newValue
            case 1: f1 = newValue
            case 2: f2 = newValue
            case 3: f3 = newValue
            case 4: f4 = newValue
            case 5: f5 = newValue
            case 6: f6 = newValue
            case 7: f7 = newValue
            case 8: f8 = newValue
            case 9: f9 = newValue
            default: break
            }
        }
    }

    /// The value of the field named `name` (one of `HTTPParser.fieldsRead`, lower case), or nil.
    subscript(_ name: String) -> String? {
        get {
            guard let i = HTTPParser.fieldsRead.firstIndex(where: { $0.name == name }) else { return nil }
            return self[slot: i]
        }
        set {
            guard let i = HTTPParser.fieldsRead.firstIndex(where: { $0.name == name }) else { return }
            self[slot: i] = newValue
        }
    }

    /// The fields present, by name.
    var pairs: [(key: String, value: String)] {
        HTTPParser.fieldsRead.indices.compactMap { i in self[slot: i].map { (HTTPParser.fieldsRead[i].name, $0) } }
    }
}

/// An incremental HTTP/1.x message parser for one direction: headers (bounded), then the body by
/// Content-Length or chunked encoding, counted and skipped (only its first 4 KiB are kept).
struct HTTPParser {
    enum Event {
        case request(method: String, path: String, headers: HTTPFields)
        /// `estimated`: bytes were lost inside it, so its size is the stream distance to the next
        /// message (chunk framing included: under 1 KiB for bodies up to 7 MiB).
        case requestBody(size: Int, head: [UInt8], estimated: Bool)
        case response(status: Int)
    }
    /// `resync`: after lost bytes or garbage, looking for the start of the next message (a method,
    /// or "HTTP/1." for responses, at the start of a line).
    enum State { case head, body(left: Int), chunkSize, chunkData(left: Int), chunkCRLF, trailers, resync }
    let isRequest: Bool
    var state = State.head
    var head: [UInt8] = []
    var bodySize = 0
    var bodyHead: [UInt8] = []
    /// Bytes of the body were not captured: the head keeps what came before the gap only, so its
    /// records stay where they are in the body.
    var bodyHeadGap = false
    var lastHeaders = HTTPFields()
    var line: [UInt8] = []
    var headerBytesLastFeed = 0
    /// Stream position (bytes fed or skipped), and where the current request's body began.
    var pos = 0
    var bodyStart: Int?
    var headTail = 0

    init(isRequest: Bool) { self.isRequest = isRequest }

    static func startsWithMethod(_ b: UnsafeRawBufferPointer) -> Bool {
        for m in ["GET ", "POST ", "PUT ", "HEAD ", "DELETE ", "OPTIONS ", "PATCH "] {
            let u = Array(m.utf8)
            if b.count >= u.count && zip(b.prefix(u.count), u).allSatisfy({ $0 == $1 }) { return true }
        }
        return false
    }

    /// `n` bytes of the stream were not captured. A body they complete is finished (its size is
    /// known from its length, so it is not an estimate).
    mutating func skip(_ n: Int, events: inout [Event]) {
        pos += n
        switch state {
        case .body(let left):
            bodySize += min(n, left)
            bodyHeadGap = true
            if n >= left {
                finishBody(&events)
                // The lost bytes ran past the body: the next message's start is gone too.
                if n > left { lostTrack() }
            } else {
                state = .body(left: left - n)
            }
        case .chunkData(let left) where n <= left:
            bodySize += n
            bodyHeadGap = true
            state = n == left ? .chunkCRLF : .chunkData(left: left - n)
        default:
            lostTrack()
        }
    }

    /// Body bytes still to come that parsing no longer needs: once the body's head is sampled
    /// (4 KiB, or cut short by lost bytes) the rest of a body of known length only counts, and
    /// the flow table may pass it by (`pass`). Zero outside a body.
    var bodyLeftToCount: Int {
        guard bodyHeadGap || bodyHead.count >= Self.bodySample else { return 0 }
        switch state {
        case .body(let left), .chunkData(let left): return left
        default: return 0
        }
    }

    /// `n` bytes of the body were passed by uncaptured but not lost (at most `bodyLeftToCount`):
    /// counted as body, and a body they complete is finished.
    mutating func pass(_ n: Int, events: inout [Event]) {
        pos += n
        switch state {
        case .body(let left) where n <= left:
            bodySize += n
            if n == left { finishBody(&events) } else { state = .body(left: left - n) }
        case .chunkData(let left) where n <= left:
            bodySize += n
            state = n == left ? .chunkCRLF : .chunkData(left: left - n)
        default:
            lostTrack()
        }
    }

    /// Where the next message starts is lost: look for it.
    mutating func lostTrack() {
        head = []
        line = []
        state = .resync
    }

    /// How much of a body's start is kept for its shape.
    static let bodySample = 4096

    /// Keeps the body's first bytes (up to `bodySample`, and none after a gap) for its shape.
    mutating func sampleBody(_ b: UnsafeRawBufferPointer, from i: Int, count n: Int) {
        guard !bodyHeadGap && bodyHead.count < Self.bodySample else { return }
        bodyHead += b[i..<(i + min(n, Self.bodySample - bodyHead.count))]
    }

    static let requestStarts: [[UInt8]] = ["GET ", "POST ", "PUT ", "HEAD ", "DELETE ", "OPTIONS ", "PATCH "].map { Array($0.utf8) }
    static let responseStarts: [[UInt8]] = [Array("HTTP/1.".utf8)]

    /// Index in `b` (from `i`) where a message starts at the beginning of a line, or nil.
    func messageStart(_ b: UnsafeRawBufferPointer, from i: Int) -> Int? {
        let starts = isRequest ? Self.requestStarts : Self.responseStarts
        var j = i
        while j < b.count {
            if j == i || b[j - 1] == 10 {
                for m in starts where j + m.count <= b.count {
                    var ok = true
                    for k in 0..<m.count where b[j + k] != m[k] { ok = false; break }
                    if ok { return j }
                }
            }
            guard let nl = UnsafeRawBufferPointer(rebasing: b[j...]).firstIndex(of: 10) else { return nil }
            j += nl + 1
        }
        return nil
    }

    /// Parses what it can; after a loss it resynchronises at the next message.
    mutating func feed(_ b: UnsafeRawBufferPointer, events: inout [Event]) -> Bool {
        headerBytesLastFeed = 0
        let base = pos
        pos += b.count
        var i = 0
        while i < b.count {
            switch state {
            case .resync:
                guard let at = messageStart(b, from: i) else { return true }
                i = at
                state = .head
                if let start = bodyStart, isRequest {
                    events.append(.requestBody(size: max(0, base + at - start), head: bodyHead, estimated: true))
                }
                bodyStart = nil
            case .head:
                // Up to the blank line: from line feed to line feed, each checked for the CR LF CR
                // before it (which may lie in the bytes of an earlier feed).
                let start = i
                var ended = false
                while i < b.count {
                    guard let nl = UnsafeRawBufferPointer(rebasing: b[i...]).firstIndex(of: 10) else { i = b.count; break }
                    i += nl + 1
                    if headByte(i - 2, b, start) == 13 && headByte(i - 3, b, start) == 10 && headByte(i - 4, b, start) == 13 {
                        ended = true
                        break
                    }
                }
                head.append(contentsOf: UnsafeRawBufferPointer(rebasing: b[start..<i]))
                headerBytesLastFeed += i - start
                if head.count > 65536 { head = []; state = .resync; continue }
                guard ended else { continue }
                headTail = b.count - i
                if !headComplete(&events) { state = .resync }
            case .body(let left):
                let n = min(left, b.count - i)
                sampleBody(b, from: i, count: n)
                bodySize += n
                i += n
                if n == left { finishBody(&events) } else { state = .body(left: left - n) }
            case .chunkSize, .chunkCRLF, .trailers:
                let c = b[i]
                i += 1
                if c != 10 {
                    if line.count < 1024 { line.append(c) } else { line = []; state = .resync }
                    continue
                }
                let text = String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                line = []
                if case .chunkCRLF = state { state = .chunkSize; continue }
                if case .trailers = state {
                    if text.isEmpty { finishBody(&events) }
                    continue
                }
                guard let size = Int(text.split(separator: ";").first.map(String.init) ?? "", radix: 16), size >= 0 else { state = .resync; continue }
                state = size == 0 ? .trailers : .chunkData(left: size)
            case .chunkData(let left):
                let n = min(left, b.count - i)
                sampleBody(b, from: i, count: n)
                bodySize += n
                i += n
                state = n == left ? .chunkCRLF : .chunkData(left: left - n)
            }
        }
        return true
    }

    /// Byte `k` of the stream around the current feed: `b[k]` from `start` on, else the head
    /// gathered by earlier feeds (nil before it).
    func headByte(_ k: Int, _ b: UnsafeRawBufferPointer, _ start: Int) -> UInt8? {
        if k >= start { return b[k] }
        let h = head.count - (start - k)
        return h >= 0 ? head[h] : nil
    }

    /// The header fields anything reads (the recognisers, body shapes, framing), lowercased:
    /// only these become strings. A head is parsed for every request and response of every flow
    /// a capture follows, and making strings of every field was most of the parsing.
    static let fieldsRead: [(name: String, bytes: [UInt8])] = [
        "host", "user-agent", "upgrade", "content-length", "content-type", "content-encoding", "transfer-encoding",
        "x-mining-extensions", "x-pc-sid", "x-pc-payto",
    ].map { ($0, Array($0.utf8)) }

    /// The index in `fieldsRead` of the name `n` (ASCII case ignored), or nil.
    static func fieldIndex(_ n: ArraySlice<UInt8>) -> Int? {
        for (index, f) in fieldsRead.enumerated() where f.bytes.count == n.count {
            var same = true
            var k = n.startIndex
            for c in f.bytes {
                let x = n[k]
                if (x >= 0x41 && x <= 0x5a ? x | 0x20 : x) != c { same = false; break }
                k += 1
            }
            if same { return index }
        }
        return nil
    }

    mutating func headComplete(_ events: inout [Event]) -> Bool {
        // Read as bytes, line by line (CR LF): the start line's first two words and the fields
        // in `fieldsRead`.
        let raw = head
        head = []
        var first: (ArraySlice<UInt8>?, ArraySlice<UInt8>?) = (nil, nil)
        var headers = HTTPFields()
        var from = raw.startIndex
        var i = raw.startIndex
        var lineNumber = 0
        while from < raw.endIndex {
            while i + 1 < raw.endIndex && !(raw[i] == 0x0d && raw[i + 1] == 0x0a) { i += 1 }
            let end = i + 1 < raw.endIndex ? i : raw.endIndex
            let l = raw[from..<end]
            if lineNumber == 0 {
                // Words split on runs of spaces.
                var w = l.startIndex
                while w < l.endIndex && first.1 == nil {
                    while w < l.endIndex && l[w] == 0x20 { w += 1 }
                    let s = w
                    while w < l.endIndex && l[w] != 0x20 { w += 1 }
                    if w > s {
                        if first.0 == nil { first.0 = l[s..<w] } else { first.1 = l[s..<w] }
                    }
                }
            } else if !l.isEmpty, let c = l.firstIndex(of: UInt8(ascii: ":")), let field = Self.fieldIndex(l[l.startIndex..<c]) {
                var value = l[(c + 1)...]
                while let b = value.first, b == 0x20 || b == 0x09 { value = value.dropFirst() }
                while let b = value.last, b == 0x20 || b == 0x09 { value = value.dropLast() }
                headers.set(field, String(decoding: value, as: UTF8.self))
            }
            lineNumber += 1
            i = end + 2
            from = min(i, raw.endIndex)
        }
        guard let word0 = first.0, let word1 = first.1 else { return false }
        lastHeaders = headers
        bodySize = 0
        bodyHead = []
        bodyHeadGap = false
        bodyStart = nil
        if isRequest {
            guard word0.allSatisfy({ $0 >= 0x41 && $0 <= 0x5a }) else { return false }
            events.append(.request(method: String(decoding: word0, as: UTF8.self), path: String(decoding: word1, as: UTF8.self), headers: headers))
        } else {
            guard word0.starts(with: Self.responseStarts[0].prefix(5)), let status = Int(String(decoding: word1, as: UTF8.self)) else { return false }
            events.append(.response(status: status))
            if status == 204 || status == 304 || (100..<200).contains(status) { state = .head; return true }
        }
        let chunked = headers["transfer-encoding"]?.lowercased().containsBytes("chunked") == true
        if chunked || headers["content-length"].flatMap({ Int($0) }).map({ $0 > 0 }) == true {
            bodyStart = pos - headTail
        }
        if chunked {
            state = .chunkSize
        } else if let n = headers["content-length"].flatMap({ Int($0) }), n > 0 {
            state = .body(left: n)
        } else {
            if isRequest { events.append(.requestBody(size: 0, head: [], estimated: false)) }
            state = .head
        }
        return true
    }

    mutating func finishBody(_ events: inout [Event]) {
        if isRequest { events.append(.requestBody(size: bodySize, head: bodyHead, estimated: false)) }
        bodyStart = nil
        state = .head
    }
}

/// The server name (SNI) in a TLS ClientHello, bounds-checked.
public enum TLSClientHello {
    public enum Result: Equatable { case name(String), none, needMore }

    public static func serverName(_ b: [UInt8]) -> Result {
        // Record: type 22, version, length; handshake: type 1, 3-byte length.
        guard b.count >= 5 else { return .needMore }
        guard b[0] == 0x16 else { return .none }
        let recLen = Int(b[3]) << 8 | Int(b[4])
        guard b.count >= 5 + min(recLen, 4) else { return .needMore }
        var p = 5
        guard b.count > p + 3, b[p] == 1 else { return b.count > p ? .none : .needMore }
        let hsLen = Int(b[p + 1]) << 16 | Int(b[p + 2]) << 8 | Int(b[p + 3])
        let end = p + 4 + hsLen
        guard b.count >= end else { return end - 5 > 16384 ? .none : .needMore }
        p += 4 + 2 + 32  // version, random
        guard p < end else { return .none }
        p += 1 + Int(b[p])  // session id
        guard p + 2 <= end else { return .none }
        p += 2 + (Int(b[p]) << 8 | Int(b[p + 1]))  // cipher suites
        guard p < end else { return .none }
        p += 1 + Int(b[p])  // compression methods
        guard p + 2 <= end else { return .none }
        let extEnd = min(end, p + 2 + (Int(b[p]) << 8 | Int(b[p + 1])))
        p += 2
        while p + 4 <= extEnd {
            let type = Int(b[p]) << 8 | Int(b[p + 1]), len = Int(b[p + 2]) << 8 | Int(b[p + 3])
            p += 4
            guard p + len <= extEnd else { return .none }
            if type == 0, len >= 5 {
                // server_name_list: length, then (type 0, length, name).
                var q = p + 2
                while q + 3 <= p + len {
                    let nlen = Int(b[q + 1]) << 8 | Int(b[q + 2])
                    guard q + 3 + nlen <= p + len else { return .none }
                    if b[q] == 0 { return .name(String(decoding: b[(q + 3)..<(q + 3 + nlen)], as: UTF8.self).lowercased()) }
                    q += 3 + nlen
                }
            }
            p += len
        }
        return .none
    }
}

/// A DNS message's questions and address answers, bounds-checked (compression pointers followed
/// at most 16 deep).
public struct DNSMessage: Sendable, Hashable {
    public var isResponse: Bool
    public var questions: [String]
    /// (name, address) from A and AAAA records.
    public var answers: [(name: String, address: IPAddress)]

    public static func == (a: DNSMessage, b: DNSMessage) -> Bool {
        a.isResponse == b.isResponse && a.questions == b.questions && a.answers.map { "\($0.name) \($0.address)" } == b.answers.map { "\($0.name) \($0.address)" }
    }
    public func hash(into h: inout Hasher) { h.combine(questions) }

    static func name(_ b: UnsafeRawBufferPointer, _ start: Int) -> (String, Int)? {
        var labels: [String] = []
        var p = start
        var end: Int?
        var jumps = 0
        while p < b.count {
            let len = Int(b[p])
            if len == 0 {
                return (labels.joined(separator: "."), end ?? p + 1)
            }
            if len & 0xC0 == 0xC0 {
                guard p + 1 < b.count, jumps < 16 else { return nil }
                if end == nil { end = p + 2 }
                p = (len & 0x3F) << 8 | Int(b[p + 1])
                jumps += 1
                continue
            }
            guard len <= 63, p + 1 + len <= b.count, labels.count < 128 else { return nil }
            labels.append(String(decoding: UnsafeRawBufferPointer(rebasing: b[(p + 1)..<(p + 1 + len)]), as: UTF8.self).lowercased())
            p += 1 + len
        }
        return nil
    }

    public static func parse(_ b: UnsafeRawBufferPointer) -> DNSMessage? {
        guard b.count >= 12 else { return nil }
        let flags = Int(b[2]) << 8 | Int(b[3])
        let qd = Int(b[4]) << 8 | Int(b[5]), an = Int(b[6]) << 8 | Int(b[7])
        guard qd <= 64, an <= 256 else { return nil }
        var p = 12
        var m = DNSMessage(isResponse: flags & 0x8000 != 0, questions: [], answers: [])
        for _ in 0..<qd {
            guard let (n, next) = name(b, p), next + 4 <= b.count else { return nil }
            m.questions.append(n)
            p = next + 4
        }
        for _ in 0..<an {
            guard let (n, next) = name(b, p), next + 10 <= b.count else { return m }
            let type = Int(b[next]) << 8 | Int(b[next + 1])
            let rdlen = Int(b[next + 8]) << 8 | Int(b[next + 9])
            let rd = next + 10
            guard rd + rdlen <= b.count else { return m }
            if type == 1 && rdlen == 4 { m.answers.append((n, IPAddress(v4: b, at: rd))) }
            if type == 28 && rdlen == 16 { m.answers.append((n, IPAddress(v6: b, at: rd))) }
            p = rd + rdlen
        }
        return m
    }
}
