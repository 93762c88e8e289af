import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A residential-proxy network in miniature, the way proxyjacking services work: the node (the
/// hijacked container) keeps one TLS control connection to the vendor and opens streams to
/// whatever targets the vendor's customers ask for; the vendor multiplexes its customers'
/// streams over that tunnel. Frames on the tunnel: type (1 byte), stream id (4), length (4),
/// payload. OPEN "host:port" opens a byte relay, FETCH "http://host:port/path" asks the node to
/// fetch a URL itself (its raw response comes back), DATA carries bytes, CLOSE ends a stream,
/// PING keeps the tunnel alive. Customers talk to the vendor in plain TCP: a first line
/// "OPEN host:port" or "FETCH url", then bytes.
enum Proxy {
    enum FrameType: UInt8 { case open = 1, fetch = 2, data = 3, close = 4, ping = 5 }

    static func frame(_ t: FrameType, _ id: UInt32, _ payload: [UInt8] = []) -> [UInt8] {
        var f: [UInt8] = [t.rawValue]
        for s in [24, 16, 8, 0] { f.append(UInt8(truncatingIfNeeded: id >> UInt32(s))) }
        let n = UInt32(payload.count)
        for s in [24, 16, 8, 0] { f.append(UInt8(truncatingIfNeeded: n >> UInt32(s))) }
        return f + payload
    }

    /// Frames complete in `buffer` (consumed from it).
    static func frames(_ buffer: inout [UInt8]) -> [(FrameType, UInt32, [UInt8])] {
        var out: [(FrameType, UInt32, [UInt8])] = []
        var i = 0
        while buffer.count - i >= 9 {
            let id = buffer[(i + 1)...(i + 4)].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            let n = Int(buffer[(i + 5)...(i + 8)].reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
            guard n <= 1 << 20 else { buffer = []; return out }  // garbage: drop it
            guard buffer.count - i - 9 >= n else { break }
            if let t = FrameType(rawValue: buffer[i]) { out.append((t, id, Array(buffer[(i + 9)..<(i + 9 + n)]))) }
            i += 9 + n
        }
        buffer.removeFirst(i)
        return out
    }

    /// Reads what is there from `fd` without blocking for more than poll said (nil: closed).
    static func readSome(_ fd: Int32) -> [UInt8]? {
        var tmp = [UInt8](repeating: 0, count: 16384)
        let n = tmp.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n < 0 && (errno == EAGAIN || errno == EINTR) { return [] }
        return n <= 0 ? nil : Array(tmp[0..<n])
    }

    static func sendAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress.map { $0 + off }, bytes.count - off, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return false }
            off += n
        }
        return true
    }

    // MARK: node

    /// The node: one event loop over the tunnel and its streams. `allow`, when set, is the one
    /// target it may open (a tunnel agent exposing one service, not a proxy).
    static func runNode(vendor: String, sni: String, allow: String?, deadline: Date) throws {
        let (vh, vp) = try hostPort(vendor)
        let tunnel = try Conn.connect(host: vh, port: vp, retryFor: 15)
        try tunnel.startTLS(sni: sni)
        log("node: tunnel to \(vendor) (SNI \(sni)) up")
        var streams: [UInt32: Conn] = [:]
        var inbox: [UInt8] = []
        var lastPing = Date()
        while Date() < deadline {
            var fds = [pollfd(fd: tunnel.fd, events: Int16(POLLIN), revents: 0)]
            let ids = Array(streams.keys)
            fds += ids.map { pollfd(fd: streams[$0]?.fd ?? -1, events: Int16(POLLIN), revents: 0) }
            let ready = tunnel.hasPending ? 0 : 200
            _ = poll(&fds, nfds_t(fds.count), Int32(ready))
            if fds[0].revents != 0 || tunnel.hasPending {
                if tunnel.buffer.isEmpty, try !tunnel.fill() { log("node: tunnel closed"); return }
                inbox += tunnel.buffer
                tunnel.buffer = []
                for (t, id, payload) in frames(&inbox) {
                    switch t {
                    case .open, .fetch:
                        let text = String(decoding: payload, as: UTF8.self)
                        let target = t == .open ? text : (URL(string: text).map { "\($0.host ?? ""):\($0.port ?? 80)" } ?? "")
                        if let allow, target != allow {
                            try tunnel.send(frame(.close, id))
                            continue
                        }
                        guard let (h, p) = try? hostPort(target), let c = try? Conn.connect(host: h, port: p) else {
                            try tunnel.send(frame(.close, id))
                            continue
                        }
                        streams[id] = c
                        if t == .fetch, let u = URL(string: text) {
                            let path = u.path.isEmpty ? "/" : u.path
                            _ = sendAll(c.fd, Array("GET \(path) HTTP/1.1\r\nHost: \(target)\r\nUser-Agent: Mozilla/5.0\r\nConnection: close\r\n\r\n".utf8))
                        }
                    case .data:
                        if let c = streams[id], !sendAll(c.fd, payload) {
                            streams[id] = nil
                            try tunnel.send(frame(.close, id))
                        }
                    case .close:
                        streams[id] = nil
                    case .ping:
                        break
                    }
                }
            }
            for (k, id) in ids.enumerated() where fds[k + 1].revents != 0 {
                guard let c = streams[id] else { continue }
                if let bytes = readSome(c.fd) {
                    if !bytes.isEmpty { try tunnel.send(frame(.data, id, bytes)) }
                } else {
                    streams[id] = nil
                    try tunnel.send(frame(.close, id))
                }
            }
            if Date().timeIntervalSince(lastPing) > 10 {
                try tunnel.send(frame(.ping, 0))
                lastPing = Date()
            }
        }
    }

    // MARK: vendor

    /// The vendor: accepts nodes over TLS on `listen` and customers in plain TCP on `customers`;
    /// each customer stream goes to the first node connected. One event loop.
    static func runVendor(listen: String, customers: String, cert: String, key: String, deadline: Date) throws {
        let ctx = try tlsServerContext(cert: cert, key: key)
        let (lh, lp) = try hostPort(listen), (ch, cp) = try hostPort(customers)
        let nodeListener = try listeningSocket(host: lh, port: lp, backlog: 128), customerListener = try listeningSocket(host: ch, port: cp, backlog: 128)
        defer { close(nodeListener); close(customerListener) }
        log("vendor: nodes on \(listen) (TLS), customers on \(customers)")
        var node: Conn?
        var inbox: [UInt8] = []
        var clients: [UInt32: Conn] = [:]
        var nextID: UInt32 = 1
        while Date() < deadline {
            var fds = [pollfd(fd: nodeListener, events: Int16(POLLIN), revents: 0), pollfd(fd: customerListener, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: node?.fd ?? -1, events: Int16(POLLIN), revents: 0)]
            let ids = Array(clients.keys)
            fds += ids.map { pollfd(fd: clients[$0]?.fd ?? -1, events: Int16(POLLIN), revents: 0) }
            _ = poll(&fds, nfds_t(fds.count), node?.hasPending == true ? 0 : 200)
            if fds[0].revents != 0 {
                let fd = accept(nodeListener, nil, nil)
                if fd >= 0 {
                    let c = Conn(fd: fd)
                    do {
                        try c.acceptTLS(ctx)
                        node = c
                        inbox = []
                        log("vendor: node connected")
                    } catch {
                        log("vendor: \(error)")
                    }
                }
            }
            if fds[1].revents != 0 {
                let fd = accept(customerListener, nil, nil)
                if fd >= 0 {
                    let c = Conn(fd: fd)
                    var tv = timeval(tv_sec: 2, tv_usec: 0)
                    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
                    // The customer's first line says what it wants.
                    if let line = try? c.readLine(), let node {
                        let parts = line.split(separator: " ", maxSplits: 1).map(String.init)
                        let id = nextID
                        nextID += 1
                        if parts.count == 2, parts[0] == "OPEN" || parts[0] == "FETCH" {
                            try node.send(frame(parts[0] == "OPEN" ? .open : .fetch, id, Array(parts[1].utf8)))
                            if !c.buffer.isEmpty { try node.send(frame(.data, id, c.buffer)); c.buffer = [] }
                            clients[id] = c
                        }
                    }
                }
            }
            if let n = node, fds[2].revents != 0 || n.hasPending {
                if n.buffer.isEmpty, (try? n.fill()) != true {
                    log("vendor: node gone")
                    node = nil
                    clients = [:]
                    continue
                }
                inbox += n.buffer
                n.buffer = []
                for (t, id, payload) in frames(&inbox) {
                    switch t {
                    case .data: if let c = clients[id], !sendAll(c.fd, payload) { clients[id] = nil; try n.send(frame(.close, id)) }
                    case .close: clients[id] = nil
                    default: break
                    }
                }
            }
            for (k, id) in ids.enumerated() where fds[k + 3].revents != 0 {
                guard let c = clients[id] else { continue }
                if let bytes = readSome(c.fd) {
                    if !bytes.isEmpty { try node?.send(frame(.data, id, bytes)) }
                } else {
                    clients[id] = nil
                    try node?.send(frame(.close, id))
                }
            }
        }
    }

    // MARK: customers

    /// The vendor's customers: `streams` at once, each to a random target: a byte relay that
    /// uploads (POST /upload) and downloads (GET /file/N) through the node, or a FETCH of a file.
    /// About `rate` bytes/s in all (downloads; uploads are a fifth of that). With `httpProxy`,
    /// the same load goes through an HTTP CONNECT proxy instead (the benign forward proxy).
    /// With several vendors, streams use them in turn; with `fetchOnly`, every stream is a FETCH
    /// (what a polling vendor serves).
    static func runCustomers(vendors: [String], httpProxy: String?, targets: [String], streams: Int, rate: Double, fetchOnly: Bool = false,
                             deadline: Date) throws {
        guard !targets.isEmpty, !vendors.isEmpty || httpProxy != nil else { throw WorkloadError(description: "need --vendor or --http-proxy, and --target") }
        let perStream = rate / Double(max(1, streams))
        let group = DispatchGroup()
        let done = Counter(), moved = Counter()
        for s in 0..<max(1, streams) {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                var k = s
                while Date() < deadline {
                    k += 1
                    let target = targets[k % targets.count]
                    let vendor = vendors.isEmpty ? nil : vendors[k % vendors.count]
                    do {
                        // Each stream moves about 2 s worth of its share, in one relay or fetch.
                        let down = max(16_384, Int(perStream * 2))
                        moved.add(try customerStream(vendor: vendor, httpProxy: httpProxy, target: target, fetch: fetchOnly || k % 3 == 0, down: down, up: down / 5,
                                                     rate: perStream, deadline: deadline))
                        done.add(1)
                    } catch {
                        log("customer: \(target): \(error)")
                        usleep(300_000)
                    }
                }
            }
        }
        group.wait()
        print("{\"streams\": \(done.value), \"bytes\": \(moved.value)}")
    }

    /// One stream; returns the bytes it moved (both ways).
    static func customerStream(vendor: String?, httpProxy: String?, target: String, fetch: Bool, down: Int, up: Int, rate: Double, deadline: Date) throws -> Int {
        let c: Conn
        if let vendor {
            let (h, p) = try hostPort(vendor)
            c = try Conn.connect(host: h, port: p)
            try c.send(fetch ? "FETCH http://\(target)/file/\(down)\n" : "OPEN \(target)\n")
        } else {
            let (h, p) = try hostPort(httpProxy ?? "")
            c = try Conn.connect(host: h, port: p)
            try c.send("CONNECT \(target) HTTP/1.1\r\nHost: \(target)\r\n\r\n")
            guard let status = try c.readLine(), status.contains(" 200") else { throw WorkloadError(description: "proxy refused") }
            while let l = try c.readLine(), !l.trimmingCharacters(in: .init(charactersIn: "\r")).isEmpty {}
            if fetch { try c.send("GET /file/\(down) HTTP/1.1\r\nHost: \(target)\r\nConnection: close\r\n\r\n") }
        }
        if fetch { return try Benign.readResponse(c, rate: rate).bytes }
        try c.send("POST /upload HTTP/1.1\r\nHost: \(target)\r\nContent-Length: \(up)\r\n\r\n")
        _ = try Benign.sendPaced(c, up, rate: rate, deadline: deadline)
        _ = try Benign.readResponse(c)
        try c.send("GET /file/\(down) HTTP/1.1\r\nHost: \(target)\r\n\r\n")
        return up + (try Benign.readResponse(c, rate: rate).bytes)
    }
}
