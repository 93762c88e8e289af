import CShims
import MinewatchCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Benign loads that look busy but are not mining: a web server under download load, a bulk
/// downloader, a finite upload (a backup), a chatty API client, CPU-heavy compression. They are
/// what the bandwidth and CPU detectors must stay quiet on.
enum Benign {
    /// Bytes that do not compress (so sizes on the wire equal sizes sent).
    static let noise: [UInt8] = {
        var out: [UInt8] = []
        var seed = SHA256Digest.hash(Array("mw-workload noise".utf8))
        while out.count < 65536 {
            seed = SHA256Digest.hash(seed)
            out += seed
        }
        return out
    }()

    /// Sends `n` bytes at most `rate` bytes/s (0: as fast as possible), until `deadline`.
    static func sendPaced(_ c: Conn, _ n: Int, rate: Double, deadline: Date) throws -> Int {
        var sent = 0
        let start = Date()
        while sent < n && Date() < deadline {
            let chunk = min(noise.count, n - sent)
            try c.send(Array(noise[0..<chunk]))
            sent += chunk
            if rate > 0 {
                let due = start.addingTimeInterval(Double(sent) / rate)
                let wait = due.timeIntervalSinceNow
                if wait > 0 { usleep(UInt32(min(wait, 1) * 1_000_000)) }
            }
        }
        return sent
    }

    /// `GET /file/<bytes>` streams that many bytes; `POST /upload` and `POST /api` read the body
    /// and answer with a small (upload) or 3 KiB (api) JSON document. Keep-alive.
    /// With `tls` (a server context), connections are TLS. Any other POST is answered like
    /// /upload (log, metrics and backup endpoints).
    static func runServer(host: String, port: Int, tls: UnsafeMutableRawPointer? = nil, deadline: Date) throws {
        let ctx = tls.map { UncheckedContext(ctx: $0) }
        try serve(host: host, port: port, until: deadline) { c in
            do {
                if let ctx { try c.acceptTLS(ctx.ctx) }
                while let req = try PacketCrypt.readRequest(c) {
                    if req.method == "GET", req.path.hasPrefix("/file/"), let n = Int(req.path.dropFirst(6)), n >= 0 {
                        try c.send("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: \(n)\r\n\r\n")
                        _ = try sendPaced(c, n, rate: 0, deadline: deadline)
                    } else if req.method == "POST" && req.path != "/api" {
                        try PacketCrypt.respond(c, 200, json(["received": req.body.count, "errors": false]))
                    } else if req.method == "POST" && req.path == "/api" {
                        let items = (0..<40).map { ["id": $0, "name": "item-\($0)", "tags": ["a", "b", "c"], "price": Double($0) * 1.25] as [String: Any] }
                        try PacketCrypt.respond(c, 200, json(["received": req.body.count, "items": items]))
                    } else {
                        try PacketCrypt.respond(c, 404, "{}")
                    }
                }
            } catch {
                log("server connection: \(error)")
            }
        }
    }

    static func target(_ url: String) throws -> (host: String, port: Int, path: String) {
        guard let u = URL(string: url), let h = u.host else { throw WorkloadError(description: "bad URL \(url)") }
        return (h, u.port ?? 80, u.path.isEmpty ? "/" : u.path)
    }

    /// Reads one response head and its Content-Length body, discarding the body in pieces.
    static func readResponse(_ c: Conn, rate: Double = 0) throws -> (status: Int, bytes: Int) {
        let start = Date()
        guard let (status, _, length) = try c.readResponseHead() else { throw WorkloadError(description: "connection closed") }
        var left = length
        while left > 0 {
            if c.buffer.isEmpty, try !c.fill() { throw WorkloadError(description: "closed early") }
            let n = min(left, c.buffer.count)
            c.buffer.removeFirst(n)
            left -= n
            if rate > 0 {
                // Reading slower makes TCP flow control slow the sender down.
                let wait = start.addingTimeInterval(Double(length - left) / rate).timeIntervalSinceNow
                if wait > 0 { usleep(UInt32(min(wait, 1) * 1_000_000)) }
            }
        }
        return (Int(status.split(separator: " ").dropFirst().first ?? "") ?? 0, length)
    }

    /// Downloads `url` again and again over `clients` connections until the deadline, each at
    /// most `rate` bytes/s (0: as fast as possible).
    static func runDownload(url: String, clients: Int, rate: Double, deadline: Date) throws {
        let t = try target(url)
        let total = Counter()
        let group = DispatchGroup()
        for _ in 0..<max(1, clients) {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                while Date() < deadline {
                    do {
                        let c = try Conn.connect(host: t.host, port: t.port)
                        while Date() < deadline {
                            try c.send("GET \(t.path) HTTP/1.1\r\nHost: \(t.host)\r\nUser-Agent: curl/7.88.1\r\n\r\n")
                            total.add(try readResponse(c, rate: rate).bytes)
                        }
                    } catch {
                        usleep(200_000)
                    }
                }
            }
        }
        group.wait()
        print("{\"downloaded\": \(total.value)}")
    }

    /// One request body of `bytes` (a backup), at most `rate` bytes/s, then exits.
    static func runUpload(url: String, bytes: Int, rate: Double, deadline: Date) throws {
        let t = try target(url)
        let c = try Conn.connect(host: t.host, port: t.port)
        try c.send("POST \(t.path) HTTP/1.1\r\nHost: \(t.host)\r\nContent-Type: application/octet-stream\r\nContent-Length: \(bytes)\r\n\r\n")
        let sent = try sendPaced(c, bytes, rate: rate, deadline: deadline)
        if sent == bytes { _ = try readResponse(c) }
        print("{\"uploaded\": \(sent)}")
    }

    /// Small JSON requests with larger JSON replies, `rps` per second; a new connection every 10.
    static func runAPIClient(url: String, rps: Double, deadline: Date) throws {
        let t = try target(url)
        let body = json(["query": String(repeating: "select * from items where tag = 'a' and price > 1; ", count: 36), "page": 1])
        var n = 0
        var c: Conn?
        let start = Date()
        while Date() < deadline {
            do {
                if c == nil || n % 10 == 0 { c = try Conn.connect(host: t.host, port: t.port) }
                guard let conn = c else { continue }
                try conn.send("POST \(t.path) HTTP/1.1\r\nHost: \(t.host)\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
                _ = try readResponse(conn)
            } catch {
                c = nil
            }
            n += 1
            let due = start.addingTimeInterval(Double(n) / max(0.1, rps)).timeIntervalSinceNow
            if due > 0 { usleep(UInt32(min(due, 1) * 1_000_000)) }
        }
        print("{\"requests\": \(n)}")
    }

    /// zlib level 9 over text-like data on `threads` threads until the deadline (a build or a
    /// backup compressor: busy CPU, no network).
    static func runCompress(threads: Int, deadline: Date) {
        let words = ["container", "kernel", "cgroup", "namespace", "socket", "packet", "layer", "image", "digest", "manifest"]
        var text: [UInt8] = []
        var x: UInt64 = 88172645463325252
        while text.count < 4 << 20 {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17
            text += Array(words[Int(x % 10)].utf8) + [x % 7 == 0 ? 10 : 32]
        }
        let input = text
        let total = Counter()
        let group = DispatchGroup()
        for _ in 0..<max(1, threads) {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                var out = [UInt8](repeating: 0, count: mw_compress_bound(input.count))
                while Date() < deadline {
                    var len = out.count
                    let rc = out.withUnsafeMutableBufferPointer { o in
                        input.withUnsafeBufferPointer { i in mw_compress(o.baseAddress, &len, i.baseAddress, i.count, 9) }
                    }
                    if rc != 0 { break }
                    total.add(input.count)
                }
            }
        }
        group.wait()
        print("{\"compressed\": \(total.value)}")
    }
}

/// An OpenSSL server context: immutable after it is made, and OpenSSL allows sharing it
/// between the threads that accept connections with it.
struct UncheckedContext: @unchecked Sendable { let ctx: UnsafeMutableRawPointer }

final class Counter: @unchecked Sendable {
    let lock = NSLock()
    var value = 0
    func add(_ n: Int) { lock.lock(); value += n; lock.unlock() }
}

extension Benign {
    /// A numeric job: a 256 MiB array of random doubles (RandomX's cache size, and random bytes),
    /// then matrix products and libm over it until the deadline, in the default rounding mode.
    static func runNumeric(deadline: Date) {
        let count = (256 << 20) / 8
        var data = [Double](repeating: 0, count: count)
        var x: UInt64 = 0x9e3779b97f4a7c15
        for i in 0..<count {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17
            data[i] = Double(x >> 11) / Double(1 << 53) * 2 - 1
        }
        let n = 96
        var a = [Double](repeating: 0, count: n * n), b = a, c = a
        var round = 0
        var sum = 0.0
        while Date() < deadline {
            let base = (round * n * n * 2) % (count - 2 * n * n)
            for i in 0..<(n * n) { a[i] = data[base + i]; b[i] = data[base + n * n + i] }
            for i in 0..<n {
                for j in 0..<n {
                    var acc = 0.0
                    for k in 0..<n { acc += a[i * n + k] * b[k * n + j] }
                    c[i * n + j] = acc
                }
            }
            for i in stride(from: 0, to: n * n, by: 7) { sum += exp(-abs(c[i])) + log1p(abs(c[i])) + c[i].squareRoot() * 0 }
            round += 1
        }
        log("numeric: \(round) rounds, checksum \(sum)")
    }
}
