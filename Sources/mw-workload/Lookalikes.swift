import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Honest containers that look like bandwidth abuse at first sight, for the hard negatives:
/// uploaders (a log shipper, a metrics remote-write client, an encrypted backup) and relays that
/// are not proxyjacking (a forward proxy serving its own clients, a reverse proxy, a mesh sidecar,
/// a crawler; a tunnel agent is `proxy-node --allow`).
enum Lookalikes {
    /// JSON log batches of 20-200 kB every `every` seconds to one collector, keep-alive; about
    /// `rate` bytes/s.
    static func runLogShipper(url: String, rate: Double, every: Double, deadline: Date) throws {
        var c: Conn?
        var host = "", path = "/"
        var sent = 0
        let start = Date()
        var n = 0
        while Date() < deadline {
            do {
                if c == nil { (c, host, path) = try connect(url: url) }
                guard let conn = c else { continue }
                // A batch sized so the average rate holds: between 20 and 200 kB.
                let size = max(20_000, min(200_000, Int(rate * every * Double.random(in: 0.6...1.4))))
                var body = ""
                while body.utf8.count < size {
                    n += 1
                    body += "{\"@timestamp\":\"2026-12-01T10:\(n % 60):\(n % 59).\(n % 1000)Z\",\"level\":\"\(["info", "warn", "debug"][n % 3])\",\"service\":\"checkout\",\"trace_id\":\"\(randomHex(16))\",\"msg\":\"GET /api/v1/cart/\(n % 977) 200 in \(n % 300) ms\"}\n"
                }
                try conn.send("POST \(path) HTTP/1.1\r\nHost: \(host)\r\nContent-Type: application/x-ndjson\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
                _ = try Benign.readResponse(conn)
                sent += body.utf8.count
            } catch {
                c = nil
                usleep(200_000)
            }
            let due = start.addingTimeInterval(Double(sent) / max(1, rate)).timeIntervalSinceNow
            usleep(UInt32(max(0.05, min(every, due)) * 1_000_000))
        }
        print("{\"shipped\": \(sent)}")
    }

    /// Prometheus-style remote write: every second, a compressed protobuf-like body of samples
    /// (Content-Encoding: snappy, Content-Type: application/x-protobuf) to one endpoint.
    static func runRemoteWrite(url: String, bytesPerRequest: Int, deadline: Date) throws {
        var c: Conn?
        var host = "", path = "/"
        var requests = 0
        while Date() < deadline {
            let tick = Date()
            do {
                if c == nil { (c, host, path) = try connect(url: url) }
                guard let conn = c else { continue }
                // Series: label strings, then (timestamp, float64 value) pairs; dense as compressed data is.
                var body: [UInt8] = []
                var series = 0
                while body.count < bytesPerRequest {
                    series += 1
                    let labels = "__name__\u{12}http_requests_total\u{1a}job\u{12}checkout\u{1a}instance\u{12}10.0.\(series % 250).\(series % 7):9100"
                    body += [0x0a, UInt8(truncatingIfNeeded: labels.utf8.count)] + Array(labels.utf8)
                    for _ in 0..<8 {
                        var v = Double.random(in: 0...1e6).bitPattern, t = UInt64(Date().timeIntervalSince1970 * 1000)
                        body += [0x11] + withUnsafeBytes(of: &v) { Array($0) } + [0x18] + withUnsafeBytes(of: &t) { Array($0.prefix(6)) }
                    }
                }
                try conn.send(Array("POST \(path) HTTP/1.1\r\nHost: \(host)\r\nContent-Encoding: snappy\r\nContent-Type: application/x-protobuf\r\nX-Prometheus-Remote-Write-Version: 0.1.0\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body)
                _ = try Benign.readResponse(conn)
                requests += 1
            } catch {
                c = nil
            }
            let wait = 1 - Date().timeIntervalSince(tick)
            if wait > 0 { usleep(UInt32(wait * 1_000_000)) }
        }
        print("{\"requests\": \(requests)}")
    }

    /// An encrypted backup: chunks of random bytes (encrypted data does not compress) of
    /// content-defined sizes between `minChunk` and `maxChunk`, one POST and one reply each, at
    /// most `rate` bytes/s, over TLS when the URL is https.
    static func runBackup(url: String, minChunk: Int, maxChunk: Int, rate: Double, deadline: Date) throws {
        let (c, host, path) = try connect(url: url)
        var sent = 0, chunks = 0
        let start = Date()
        while Date() < deadline {
            let size = Int.random(in: minChunk...max(minChunk, maxChunk)) | 1  // content-defined: not a round number
            try c.send("POST \(path)/pack-\(randomHex(16)) HTTP/1.1\r\nHost: \(host)\r\nContent-Type: application/octet-stream\r\nContent-Length: \(size)\r\n\r\n")
            var left = size
            while left > 0 && Date() < deadline {
                let n = min(left, Benign.noise.count)
                try c.send(Array(Benign.noise[0..<n]).shuffled())
                left -= n
                sent += n
                let due = start.addingTimeInterval(Double(sent) / max(1, rate)).timeIntervalSinceNow
                if due > 0 { usleep(UInt32(min(due, 1) * 1_000_000)) }
            }
            if left > 0 { break }
            _ = try Benign.readResponse(c)
            chunks += 1
        }
        print("{\"chunks\": \(chunks), \"bytes\": \(sent)}")
    }

    /// Copies bytes both ways between two sockets until either side closes.
    static func splice(_ a: Conn, _ b: Conn) {
        let done = DispatchSemaphore(value: 0)
        let pair = UncheckedPair(a: a, b: b)
        Thread.detachNewThread {
            if !pair.a.buffer.isEmpty { _ = Proxy.sendAll(pair.b.fd, pair.a.buffer) }
            while let bytes = Proxy.readSome(pair.a.fd), Proxy.sendAll(pair.b.fd, bytes) {}
            shutdown(pair.b.fd, Int32(SHUT_WR))
            done.signal()
        }
        if !b.buffer.isEmpty { _ = Proxy.sendAll(a.fd, b.buffer) }
        while let bytes = Proxy.readSome(b.fd), Proxy.sendAll(a.fd, bytes) {}
        shutdown(a.fd, Int32(SHUT_WR))
        done.wait()
    }

    /// A forward proxy (HTTP CONNECT) serving its own clients: they connect in.
    static func runForwardProxy(listen: String, deadline: Date) throws {
        let (h, p) = try hostPort(listen)
        try serve(host: h, port: p, until: deadline) { c in
            do {
                guard let line = try c.readLine() else { return }
                while let l = try c.readLine(), !l.trimmingCharacters(in: .init(charactersIn: "\r")).isEmpty {}
                let parts = line.split(separator: " ")
                guard parts.count >= 2, parts[0] == "CONNECT", let (th, tp) = try? hostPort(String(parts[1])) else {
                    try c.send("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                    return
                }
                let t = try Conn.connect(host: th, port: tp)
                try c.send("HTTP/1.1 200 Connection established\r\n\r\n")
                splice(c, t)
            } catch {
                log("forward proxy: \(error)")
            }
        }
    }

    /// A reverse proxy / API gateway: inbound requests, each forwarded to one of `backends` over
    /// keep-alive connections, the response relayed back.
    static func runReverseProxy(listen: String, backends: [String], deadline: Date) throws {
        guard !backends.isEmpty else { throw WorkloadError(description: "need --backend") }
        let (h, p) = try hostPort(listen)
        try serve(host: h, port: p, until: deadline) { c in
            var upstream: [String: Conn] = [:]
            var k = Int.random(in: 0..<backends.count)
            do {
                while let req = try PacketCrypt.readRequest(c) {
                    k += 1
                    let b = backends[k % backends.count]
                    if upstream[b] == nil, let (bh, bp) = try? hostPort(b) { upstream[b] = try Conn.connect(host: bh, port: bp) }
                    guard let u = upstream[b] else { break }
                    try u.send(Array("\(req.method) \(req.path) HTTP/1.1\r\nHost: \(b)\r\nX-Forwarded-For: client\r\nContent-Length: \(req.body.count)\r\n\r\n".utf8) + req.body)
                    try relayResponse(from: u, to: c)
                }
            } catch {
                log("reverse proxy: \(error)")
            }
        }
    }

    /// Relays one Content-Length response from `u` to `c`.
    static func relayResponse(from u: Conn, to c: Conn) throws {
        let (_, head, length) = try u.readResponseHead() ?? ("", "", 0)
        try c.send(head)
        var left = length
        while left > 0 {
            if u.buffer.isEmpty, try !u.fill() { throw WorkloadError(description: "upstream closed") }
            let n = min(left, u.buffer.count)
            try c.send(Array(u.buffer[0..<n]))
            u.buffer.removeFirst(n)
            left -= n
        }
    }

    /// A service-mesh sidecar: inbound requests go to the application on loopback; the
    /// application's own calls go out through the sidecar's egress (loopback) to `upstreams`.
    /// The application and its client loop run inside this process.
    static func runSidecar(listen: String, upstreams: [String], callsPerSecond: Double, deadline: Date) throws {
        let app = "127.0.0.1:18080", egress = "127.0.0.1:15001"
        Thread.detachNewThread { try? Benign.runServer(host: "127.0.0.1", port: 18080, deadline: deadline) }
        Thread.detachNewThread { try? runReverseProxy(listen: egress, backends: upstreams, deadline: deadline) }
        Thread.detachNewThread {
            // The application calls its dependencies (through the sidecar, on loopback).
            var c: Conn?
            let start = Date()
            var n = 0
            while Date() < deadline {
                do {
                    if c == nil { c = try Conn.connect(host: "127.0.0.1", port: 15001) }
                    try c?.send("GET /file/65536 HTTP/1.1\r\nHost: dependency\r\n\r\n")
                    if let conn = c { _ = try Benign.readResponse(conn) }
                } catch {
                    c = nil
                }
                n += 1
                let due = start.addingTimeInterval(Double(n) / max(0.1, callsPerSecond)).timeIntervalSinceNow
                if due > 0 { usleep(UInt32(min(due, 1) * 1_000_000)) }
            }
        }
        try runReverseProxy(listen: listen, backends: [app], deadline: deadline)
    }

    /// A crawler: downloads pages from many hosts (a new connection each), and reports what it
    /// found to its work queue over one long-lived connection.
    static func runCrawler(targets: [String], queue: String?, pagesPerSecond: Double, pageBytes: Int, deadline: Date) throws {
        guard !targets.isEmpty else { throw WorkloadError(description: "need --target") }
        var q: Conn?
        if let queue, let (h, p) = try? hostPort(queue) { q = try? Conn.connect(host: h, port: p) }
        let start = Date()
        var n = 0
        while Date() < deadline {
            let t = targets[Int.random(in: 0..<targets.count)]
            if let (h, p) = try? hostPort(t), let c = try? Conn.connect(host: h, port: p) {
                try? c.send("GET /file/\(pageBytes / 2 + Int.random(in: 0...pageBytes)) HTTP/1.1\r\nHost: \(t)\r\nUser-Agent: examplebot/1.0\r\nConnection: close\r\n\r\n")
                _ = try? Benign.readResponse(c)
            }
            n += 1
            if n % 10 == 0, let conn = q {
                let body = json(["crawled": n, "last": t])
                try? conn.send("POST /api HTTP/1.1\r\nHost: queue\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
                _ = try? Benign.readResponse(conn)
            }
            let due = start.addingTimeInterval(Double(n) / max(0.1, pagesPerSecond)).timeIntervalSinceNow
            if due > 0 { usleep(UInt32(min(due, 1) * 1_000_000)) }
        }
        print("{\"pages\": \(n)}")
    }
}

/// Two connections handed to the two copying threads of one splice (each thread reads one, writes the other).
struct UncheckedPair: @unchecked Sendable { let a: Conn; let b: Conn }
