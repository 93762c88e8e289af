import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A proxy network with no tunnel, the way some proxyware and DePIN nodes work: the node polls
/// its vendor for jobs over a fresh HTTP(S) connection each time (`GET /jobs`), fetches each
/// job's URL over a fresh connection of its own, and returns the raw response over another
/// fresh connection (`POST /result/<id>`); the vendor hands it to the customer that asked. The
/// vendor may have several addresses behind one name: the node uses them in turn, with that
/// name as TLS server name and Host header. Customers talk to the vendor in plain TCP, as with
/// the tunnel vendor: a first line "FETCH url", then the response.
enum PollProxy {
    /// Jobs waiting for a node, and customers waiting for their result. Guarded by `lock`.
    final class Queue: @unchecked Sendable {
        let lock = NSLock()
        var jobs: [(id: Int, url: String)] = []
        var results: [Int: [UInt8]] = [:]
        var next = 1
        var fetched = 0

        func add(_ url: String) -> Int {
            lock.lock(); defer { lock.unlock() }
            let id = next
            next += 1
            jobs.append((id, url))
            return id
        }

        func take(_ n: Int) -> [(id: Int, url: String)] {
            lock.lock(); defer { lock.unlock() }
            let out = Array(jobs.prefix(n))
            jobs.removeFirst(out.count)
            return out
        }

        func finish(_ id: Int, _ bytes: [UInt8]) {
            lock.lock(); defer { lock.unlock() }
            results[id] = bytes
            fetched += 1
        }

        func result(_ id: Int) -> [UInt8]? {
            lock.lock(); defer { lock.unlock() }
            return results.removeValue(forKey: id)
        }
    }

    static func runVendor(listen: String, customers: String, tls: UnsafeMutableRawPointer?, deadline: Date) throws {
        let queue = Queue()
        let (ch, cp) = try hostPort(customers), (lh, lp) = try hostPort(listen)
        let ctx = tls.map { UncheckedContext(ctx: $0) }
        Thread.detachNewThread {
            try? serve(host: ch, port: cp, until: deadline) { c in
                guard let line = try? c.readLine(), line.hasPrefix("FETCH ") else { return }
                let id = queue.add(String(line.dropFirst(6)))
                // Wait for a node to bring the result (bounded by the deadline).
                while Date() < deadline {
                    if let bytes = queue.result(id) {
                        try? c.send(bytes)
                        return
                    }
                    usleep(20_000)
                }
            }
        }
        log("poll vendor: nodes on \(listen)\(tls == nil ? "" : " (TLS)"), customers on \(customers)")
        try serve(host: lh, port: lp, until: deadline) { c in
            do {
                if let ctx { try c.acceptTLS(ctx.ctx) }
                while let req = try PacketCrypt.readRequest(c) {
                    if req.method == "GET" && req.path.hasPrefix("/jobs") {
                        // Long-poll: up to a second for work.
                        var jobs = queue.take(4)
                        let until = Date().addingTimeInterval(1)
                        while jobs.isEmpty && Date() < until {
                            usleep(20_000)
                            jobs = queue.take(4)
                        }
                        let body = jobs.map { "\($0.id) \($0.url)\n" }.joined()
                        try c.send("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)")
                        return
                    } else if req.method == "POST", req.path.hasPrefix("/result/"), let id = Int(req.path.dropFirst(8)) {
                        queue.finish(id, req.body)
                        try PacketCrypt.respond(c, 200, "{\"ok\":true}")
                        return
                    } else {
                        try PacketCrypt.respond(c, 404, "{}")
                    }
                }
            } catch {
                log("poll vendor: \(error)")
            }
        }
        log("poll vendor: \(queue.fetched) results")
    }

    /// One request over a fresh connection to `address` (TLS with `name` as SNI when asked);
    /// returns the response body.
    static func call(_ address: String, port: Int, name: String, tls: Bool, _ head: String, body: [UInt8] = []) throws -> [UInt8] {
        let c = try Conn.connect(host: address, port: port)
        if tls { try c.startTLS(sni: name) }
        try c.send(Array(head.utf8) + body)
        guard let (status, _, length) = try c.readResponseHead(), status.contains(" 200") else { throw WorkloadError(description: "vendor refused") }
        return try c.readExactly(length)
    }

    /// The raw response (head and Content-Length body, at most 16 MiB) to a GET of `url`.
    static func fetch(_ url: String) throws -> [UInt8] {
        let t = try Benign.target(url)
        let c = try Conn.connect(host: t.host, port: t.port)
        try c.send("GET \(t.path) HTTP/1.1\r\nHost: \(t.host):\(t.port)\r\nUser-Agent: Mozilla/5.0\r\nConnection: close\r\n\r\n")
        let (_, head, length) = try c.readResponseHead() ?? ("", "", 0)
        return Array(head.utf8) + (try c.readExactly(min(16 << 20, length)))
    }

    static func runNode(vendor: String, addresses: [String], tls: Bool, deadline: Date) throws {
        let (name, port) = try hostPort(vendor)
        let list = addresses.isEmpty ? [name] : addresses
        var k = 0, done = 0
        while Date() < deadline {
            k += 1
            let address = list[k % list.count]
            let jobs: [(Int, String)]
            do {
                let body = try call(address, port: port, name: name, tls: tls,
                                    "GET /jobs HTTP/1.1\r\nHost: \(name)\r\nUser-Agent: node/2.4\r\nConnection: close\r\n\r\n")
                jobs = String(decoding: body, as: UTF8.self).split(separator: "\n").compactMap { line in
                    let p = line.split(separator: " ", maxSplits: 1)
                    return p.count == 2 ? Int(p[0]).map { ($0, String(p[1])) } : nil
                }
            } catch {
                usleep(300_000)
                continue
            }
            for (id, url) in jobs {
                let response = (try? fetch(url)) ?? Array("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n".utf8)
                let head = "POST /result/\(id) HTTP/1.1\r\nHost: \(name)\r\nContent-Type: application/octet-stream\r\nContent-Length: \(response.count)\r\nConnection: close\r\n\r\n"
                if (try? call(list[(k + id) % list.count], port: port, name: name, tls: tls, head, body: response)) != nil { done += 1 }
            }
        }
        print("{\"jobs\": \(done)}")
    }
}

extension Lookalikes {
    /// An ETL job: fetches pages from many sites (a fresh connection each), keeps what it fetched
    /// and uploads it in batches to one store (`POST` of the batch every `batch` pages).
    static func runETL(sources: [String], store: String, pagesPerSecond: Double, pageBytes: Int, batch: Int, deadline: Date) throws {
        guard !sources.isEmpty else { throw WorkloadError(description: "need --source") }
        var buffered: [UInt8] = []
        var pages = 0, uploaded = 0
        let start = Date()
        while Date() < deadline {
            let s = sources[pages % sources.count]
            if let page = try? PollProxy.fetch("http://\(s)/file/\(pageBytes / 2 + Int.random(in: 0...pageBytes))") {
                // Transformed: the page's bytes become a record of the batch.
                buffered += page.prefix(pageBytes * 2)
            }
            pages += 1
            if pages % max(1, batch) == 0 {
                if let (c, host, path) = try? connect(url: store) {
                    try? c.send("POST \(path) HTTP/1.1\r\nHost: \(host)\r\nContent-Type: application/octet-stream\r\nContent-Length: \(buffered.count)\r\nConnection: close\r\n\r\n")
                    try? c.send(buffered)
                    _ = try? Benign.readResponse(c)
                    uploaded += buffered.count
                }
                buffered = []
            }
            let due = start.addingTimeInterval(Double(pages) / max(0.1, pagesPerSecond)).timeIntervalSinceNow
            if due > 0 { usleep(UInt32(min(due, 1) * 1_000_000)) }
        }
        print("{\"pages\": \(pages), \"uploaded\": \(uploaded)}")
    }
}
