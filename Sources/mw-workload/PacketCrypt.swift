import Foundation
import MinewatchCore

/// PacketCrypt announcement mining over HTTP as threat-facts.md section 2 describes:
/// the miner polls `GET /config.json` every 5 s (User-Agent `packetcrypt_rs`, `x-pc-sid`), walks
/// `blkinfo_<hash>.json` on a new tip, and posts 1024-byte announcements in batches (1024 per batch,
/// or every 10 s, or on a new height) to every pool's `submitAnnUrls` with the `x-pc-*` headers;
/// the handler counts announcements and answers with the JSON result shape of annhandler.
enum PacketCrypt {
    static let annSize = 1024

    struct Request {
        var method: String
        var path: String
        var headers: [String: String]
        var body: [UInt8]
    }

    static func readRequest(_ c: Conn) throws -> Request? {
        guard let start = try c.readLine() else { return nil }
        let parts = start.split(separator: " ")
        guard parts.count >= 2 else { throw WorkloadError(description: "bad request line") }
        var headers: [String: String] = [:]
        while let line = try c.readLine()?.trimmingCharacters(in: .init(charactersIn: "\r")), !line.isEmpty {
            if let colon = line.firstIndex(of: ":") {
                headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
        }
        var body: [UInt8] = []
        if headers["transfer-encoding"]?.lowercased() == "chunked" {
            while let sizeLine = try c.readLine()?.trimmingCharacters(in: .init(charactersIn: "\r")), let size = Int(sizeLine, radix: 16) {
                if size == 0 { _ = try c.readLine(); break }
                body += try c.readExactly(size)
                _ = try c.readLine()
            }
        } else if let n = headers["content-length"].flatMap(Int.init), n > 0 {
            body = try c.readExactly(n)
        }
        return Request(method: String(parts[0]), path: String(parts[1]), headers: headers, body: body)
    }

    static func respond(_ c: Conn, _ status: Int, _ body: String) throws {
        let text = status == 200 ? "OK" : (status == 400 ? "Bad Request" : "Not Found")
        try c.send("HTTP/1.1 \(status) \(text)\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\nConnection: keep-alive\r\n\r\n\(body)")
    }

    final class HandlerStats: @unchecked Sendable {
        let lock = NSLock()
        var configPolls = 0
        var announcements = 0
        var batches = 0
        var payto = Set<String>()
    }

    static func runHandler(host: String, port: Int, publicURL: String, deadline: Date) throws {
        let stats = HandlerStats()
        let started = Date()
        try serve(host: host, port: port, until: deadline) { c in
            do {
                while let req = try readRequest(c) {
                    let height = 1_000_000 + Int(Date().timeIntervalSince(started) / 60)
                    if req.method == "GET" && req.path.hasSuffix("/config.json") {
                        stats.lock.lock(); stats.configPolls += 1; stats.lock.unlock()
                        try respond(c, 200, json([
                            "tipHash": randomHex(64), "currentHeight": height, "masterUrl": publicURL,
                            "submitAnnUrls": ["\(publicURL)/submit"], "downloadAnnUrls": ["\(publicURL)/anns"],
                            "submitBlockUrls": ["\(publicURL)/blk"], "paymakerUrl": "\(publicURL)/paymaker",
                            "version": 3, "softVersion": 1, "annVersions": [1], "mineOldAnns": 2, "annTarget": 0x2000_ffff,
                        ]))
                    } else if req.method == "GET" && req.path.contains("/blkinfo_") {
                        try respond(c, 200, json(["height": height, "hash": randomHex(64), "prevHash": randomHex(64)]))
                    } else if req.method == "POST" && req.path.hasSuffix("/submit") {
                        guard req.body.count % annSize == 0, req.headers["x-pc-payto"] != nil, req.headers["x-pc-sver"] == "1" else {
                            try respond(c, 400, json(["warn": [], "error": ["bad announcement batch"], "result": NSNull()]))
                            continue
                        }
                        let n = req.body.count / annSize
                        // Each announcement carries a version 0/1 header (the real handler checks its work).
                        guard (0..<n).allSatisfy({ req.body[$0 * annSize] <= 1 }) else {
                            try respond(c, 400, json(["warn": [], "error": ["bad announcement header"], "result": NSNull()]))
                            continue
                        }
                        stats.lock.lock()
                        stats.announcements += n; stats.batches += 1; stats.payto.insert(req.headers["x-pc-payto"] ?? "")
                        stats.lock.unlock()
                        try respond(c, 200, json(["warn": [], "error": [], "result": ["accepted": n, "dup": 0, "inval": 0, "badHash": 0, "runt": 0]]))
                    } else {
                        try respond(c, 404, "{}")
                    }
                }
            } catch {
                log("handler connection: \(error)")
            }
        }
        stats.lock.lock()
        log("handler done: configPolls \(stats.configPolls) batches \(stats.batches) announcements \(stats.announcements) payto \(stats.payto.sorted())")
        stats.lock.unlock()
    }

    /// One keep-alive HTTP/1.1 connection per pool.
    final class PoolConn {
        let base: String
        let host: String
        let port: Int
        var conn: Conn?
        init(url: String) throws {
            guard let u = URL(string: url), let h = u.host else { throw WorkloadError(description: "bad pool URL \(url)") }
            base = url.hasSuffix("/") ? String(url.dropLast()) : url
            host = h
            port = u.port ?? 80
        }
        func request(_ method: String, _ path: String, headers: [String: String], body: [UInt8]? = nil) throws -> (Int, [String: Any]) {
            if conn == nil { conn = try Conn.connect(host: host, port: port) }
            guard let c = conn else { throw WorkloadError(description: "no connection") }
            var head = "\(method) \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\n"
            for (k, v) in headers { head += "\(k): \(v)\r\n" }
            if let body {
                head += "Transfer-Encoding: chunked\r\n\r\n"
                try c.send(head)
                // Stream the batch in 64 KiB chunks, as the Rust miner streams its upload.
                var i = 0
                while i < body.count {
                    let e = min(i + 65536, body.count)
                    try c.send(String(e - i, radix: 16) + "\r\n")
                    try c.send(Array(body[i..<e]))
                    try c.send("\r\n")
                    i = e
                }
                try c.send("0\r\n\r\n")
            } else {
                try c.send(head + "\r\n")
            }
            guard let (status, _, length) = try c.readResponseHead() else { conn = nil; throw WorkloadError(description: "connection closed") }
            let bytes = try c.readExactly(length)
            let code = Int(status.split(separator: " ").dropFirst().first ?? "") ?? 0
            return (code, (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any] ?? [:])
        }
    }

    /// `rate`: announcements per second to produce (the CPU knob, like `-t`).
    static func runMiner(pools: [String], payto: String, rate: Double, deadline: Date) throws {
        let sid = randomHex(32)
        let poolConns = try pools.map { try PoolConn(url: $0) }
        var handlers: [String: PoolConn] = [:]
        var height = 0
        var annTarget: UInt32 = 0x2000_ffff
        var tip = ""
        var lastPoll = Date.distantPast
        var batch: [UInt8] = []
        var batchStart = Date()
        var sent = 0
        var accepted = 0
        var seed = SHA256Digest.hash(Array(sid.utf8))
        let started = Date()
        while Date() < deadline {
            if Date().timeIntervalSince(lastPoll) >= 5 {
                lastPoll = Date()
                for p in poolConns {
                    guard let (code, cfg) = try? p.request("GET", "/config.json", headers: ["User-Agent": "packetcrypt_rs 0.6.0", "x-pc-sid": sid]),
                          code == 200 else {
                        p.conn = nil  // reconnect on the next poll, as the real miner does
                        continue
                    }
                    let h = cfg["currentHeight"] as? Int ?? 0
                    if h != height, let t = cfg["tipHash"] as? String, t != tip {
                        tip = t
                        _ = try? p.request("GET", "/blkinfo_\(t).json", headers: ["User-Agent": "packetcrypt_rs 0.6.0"])
                    }
                    height = max(height, h)
                    if let t = cfg["annTarget"] as? Int { annTarget = UInt32(truncatingIfNeeded: t) }
                    for u in cfg["submitAnnUrls"] as? [String] ?? [] where handlers[u] == nil { handlers[u] = try PoolConn(url: u) }
                }
            }
            // Produce announcements at the configured rate: each is 1024 bytes, the 56-byte header
            // of PacketCrypt_AnnounceHdr_t (cjdelisle/PacketCrypt include/packetcrypt/PacketCrypt.h:
            // version, soft nonce, hard nonce, work bits, parent block height, content type,
            // content hash, little-endian) then the merkle proof and item-4 prefix (hash output).
            let due = Int(Date().timeIntervalSince(started) * rate) - sent - batch.count / annSize
            for _ in 0..<max(0, min(due, 1024 - batch.count / annSize)) {
                var ann: [UInt8] = []
                while ann.count < annSize {
                    seed = SHA256Digest.hash(seed)
                    ann += seed
                }
                ann[0] = 1
                func put(_ v: UInt64, at: Int, bytes: Int) { for i in 0..<bytes { ann[at + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) } }
                put(UInt64(annTarget), at: 8, bytes: 4)
                put(UInt64(max(0, height)), at: 12, bytes: 4)
                put(0, at: 16, bytes: 8)
                batch += ann[0..<annSize]
            }
            let full = batch.count >= 1024 * annSize
            if !batch.isEmpty && (full || Date().timeIntervalSince(batchStart) >= 10) {
                for (url, h) in handlers {
                    let path = URL(string: url)?.path ?? "/submit"
                    guard let (code, reply) = try? h.request("POST", path, headers: [
                        "x-pc-payto": payto, "x-pc-sver": "1", "x-pc-annver": "1", "x-pc-worknum": String(height + 1),
                    ], body: batch) else {
                        h.conn = nil
                        continue
                    }
                    if code == 200, let r = reply["result"] as? [String: Any] { accepted += r["accepted"] as? Int ?? 0 }
                }
                sent += batch.count / annSize
                batch = []
                batchStart = Date()
            }
            usleep(50_000)
        }
        print("{\"announcements\": \(sent), \"accepted\": \(accepted), \"handlers\": \(handlers.count)}")
    }
}
