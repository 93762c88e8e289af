import Foundation
import MinewatchCore

/// Stratum v1 in both dialects, as threat-facts.md section 3 describes: CryptoNote/Monero
/// (`login`, `job`, `submit`, `keepalived`; XMRig's agent string) and Bitcoin
/// (`mining.subscribe`, `mining.authorize`, `mining.set_difficulty`, `mining.notify`,
/// `mining.submit`). Shares are real proof of work (double SHA-256 under the pool's target),
/// checked by the pool.
enum Stratum {
    /// Share rule shared by miner and pool: the first 4 bytes of sha256d(work || nonce), read as
    /// a little-endian UInt32, must be below `target`.
    static func hashValue(_ work: [UInt8], nonce: UInt32) -> UInt32 {
        let h = SHA256Digest.hash(SHA256Digest.hash(work + withUnsafeBytes(of: nonce.littleEndian, Array.init)))
        return UInt32(h[0]) | UInt32(h[1]) << 8 | UInt32(h[2]) << 16 | UInt32(h[3]) << 24
    }

    static func hexBytes(_ s: String) -> [UInt8] {
        var out: [UInt8] = []
        var i = s.startIndex
        while let j = s.index(i, offsetBy: 2, limitedBy: s.endIndex), i < s.endIndex {
            if let b = UInt8(s[i..<j], radix: 16) { out.append(b) }
            i = j
        }
        return out
    }

    static func hex(_ v: UInt32) -> String {
        withUnsafeBytes(of: v.littleEndian) { $0.map { String(format: "%02x", $0) }.joined() }
    }

    static func uint32(_ hexLE: String) -> UInt32 {
        let b = hexBytes(hexLE)
        guard b.count == 4 else { return UInt32.max }
        return UInt32(b[0]) | UInt32(b[1]) << 8 | UInt32(b[2]) << 16 | UInt32(b[3]) << 24
    }

    // MARK: pool

    final class PoolStats: @unchecked Sendable {
        let lock = NSLock()
        var logins: [String] = []
        var accepted = 0
        var rejected = 0
        func record(_ f: (PoolStats) -> Void) { lock.lock(); f(self); lock.unlock() }
    }

    /// `tls`: a server context; each connection is then Stratum inside TLS (pools' `stratum+ssl`).
    static func runPool(host: String, port: Int, dialect: String, target: UInt32, jobEvery: Double, shareEvery: Double? = nil,
                        tls: UnsafeMutableRawPointer? = nil, deadline: Date) throws {
        let stats = PoolStats()
        let ctx = tls.map { UncheckedContext(ctx: $0) }
        try serve(host: host, port: port, until: deadline) { conn in
            do {
                if let ctx { try conn.acceptTLS(ctx.ctx) }
                switch dialect {
                case "monero": try servePoolMonero(conn, target: target, jobEvery: jobEvery, shareEvery: shareEvery, stats: stats, deadline: deadline)
                case "ethproxy": try servePoolEthProxy(conn, target: target, jobEvery: jobEvery, stats: stats, deadline: deadline)
                case "ethstratum": try servePoolEthStratum(conn, target: target, jobEvery: jobEvery, stats: stats, deadline: deadline)
                default: try servePoolBitcoin(conn, target: target, jobEvery: jobEvery, stats: stats, deadline: deadline)
                }
            } catch {
                log("pool connection: \(error)")
            }
        }
        stats.record { log("pool done: logins \($0.logins) accepted \($0.accepted) rejected \($0.rejected)") }
    }

    /// A Monero pool connection: login reply with a job, submits and keepalives answered at once,
    /// and a new job pushed unasked every `jobEvery` seconds (the seed stays for the connection,
    /// as it does for 2048 blocks on a real pool). `shareEvery`: variable difficulty, as real pools
    /// run it: each pushed job carries a target moved towards one share every `shareEvery` seconds
    /// from the submits since the last move (at most 4x either way), so the share rate does not
    /// depend on how fast the miner's machine happens to be; `target` is then the first job's.
    static func servePoolMonero(_ c: Conn, target first: UInt32, jobEvery: Double, shareEvery: Double? = nil, stats: PoolStats,
                                deadline: Date) throws {
        var target = first
        var sharesSinceRetarget = 0
        var lastRetarget = Date()
        func retarget() {
            guard let shareEvery else { return }
            let seconds = Date().timeIntervalSince(lastRetarget)
            // Observed seconds per share (no share yet: at least the time waited), over the wanted.
            guard sharesSinceRetarget > 0 || seconds >= shareEvery else { return }
            let factor = min(4, max(0.25, (sharesSinceRetarget == 0 ? 2 * seconds : seconds / Double(sharesSinceRetarget)) / shareEvery))
            target = UInt32(min(Double(UInt32.max), max(1, (Double(target) * factor).rounded())))
            sharesSinceRetarget = 0
            lastRetarget = Date()
        }
        var blob = moneroBlob()
        var jobID = randomHex(8)
        var lastJob = Date()
        var loggedIn = false
        let seed = randomHex(64)
        func job() -> [String: Any] {
            ["blob": blob, "job_id": jobID, "target": hex(target), "algo": "rx/0", "height": 3_100_000, "seed_hash": seed]
        }
        while Date() < deadline {
            if loggedIn, Date().timeIntervalSince(lastJob) > jobEvery {
                retarget()
                blob = moneroBlob()
                jobID = randomHex(8)
                lastJob = Date()
                try c.send(json(["jsonrpc": "2.0", "method": "job", "params": job()]) + "\n")
            }
            guard c.readable(within: 0.2) else { continue }
            guard let line = try c.readLine() else { break }
            guard let req = parseJSON(line), let method = req["method"] as? String else { continue }
            let id = req["id"] ?? NSNull()
            switch method {
            case "login":
                let p = req["params"] as? [String: Any] ?? [:]
                stats.record { $0.logins.append("\(p["login"] ?? "") agent=\(p["agent"] ?? "")") }
                try c.send(json(["id": id, "jsonrpc": "2.0", "error": NSNull(),
                                 "result": ["id": randomHex(16), "job": job(), "status": "OK", "extensions": ["keepalive"]]]) + "\n")
                loggedIn = true
                lastJob = Date()
                lastRetarget = lastJob
            case "submit":
                let p = req["params"] as? [String: Any] ?? [:]
                let nonce = uint32(p["nonce"] as? String ?? "")
                let ok = (p["job_id"] as? String) == jobID && hashValue(hexBytes(blob), nonce: nonce) < target
                stats.record { if ok { $0.accepted += 1 } else { $0.rejected += 1 } }
                // Every submit counts for the share rate: XMRig's RandomX shares cannot pass this
                // pool's SHA-256 check, yet their rate is what the target steers.
                sharesSinceRetarget += 1
                if ok {
                    try c.send(json(["id": id, "jsonrpc": "2.0", "error": NSNull(), "result": ["status": "OK"]]) + "\n")
                } else {
                    try c.send(json(["id": id, "jsonrpc": "2.0", "error": ["code": -1, "message": "Low difficulty share"]]) + "\n")
                }
            case "keepalived":
                try c.send(json(["id": id, "jsonrpc": "2.0", "error": NSNull(), "result": ["status": "KEEPALIVED"]]) + "\n")
            default:
                try c.send(json(["id": id, "jsonrpc": "2.0", "error": ["code": -1, "message": "Unknown method"]]) + "\n")
            }
        }
    }

    static func servePoolBitcoin(_ c: Conn, target: UInt32, jobEvery: Double, stats: PoolStats, deadline: Date) throws {
        let extranonce1 = randomHex(8)
        var jobID = randomHex(8)
        var prev = randomHex(64)
        var lastJob = Date()
        func notify() throws {
            try c.send(json(["id": NSNull(), "method": "mining.set_difficulty", "params": [Double(UInt32.max) / Double(target)]]) + "\n")
            try c.send(json(["id": NSNull(), "method": "mining.notify",
                             "params": [jobID, prev, "01000000010000", "ffffffff0100", [String](), "20000000", "1703a30c", "65a1b2c3", true]]) + "\n")
        }
        while Date() < deadline, let line = try c.readLine() {
            guard let req = parseJSON(line), let method = req["method"] as? String else { continue }
            let id = req["id"] ?? NSNull()
            switch method {
            case "mining.subscribe":
                try c.send(json(["id": id, "error": NSNull(),
                                 "result": [[["mining.set_difficulty", randomHex(8)], ["mining.notify", randomHex(8)]], extranonce1, 4]]) + "\n")
            case "mining.authorize":
                let p = req["params"] as? [Any] ?? []
                stats.record { $0.logins.append("\(p.first ?? "")") }
                try c.send(json(["id": id, "error": NSNull(), "result": true]) + "\n")
                try notify()
            case "mining.submit":
                let p = req["params"] as? [String] ?? []
                var ok = false
                if p.count == 5, p[1] == jobID {
                    let work = hexBytes(prev + "01000000010000" + extranonce1 + p[2] + "ffffffff0100" + p[3])
                    ok = hashValue(work, nonce: uint32(p[4])) < target
                }
                stats.record { if ok { $0.accepted += 1 } else { $0.rejected += 1 } }
                try c.send(json(["id": id, "error": ok ? NSNull() : [23, "Low difficulty share", NSNull()] as Any, "result": ok]) + "\n")
            default:
                try c.send(json(["id": id, "error": [20, "Unknown method", NSNull()], "result": NSNull()]) + "\n")
            }
            if Date().timeIntervalSince(lastJob) > jobEvery {
                jobID = randomHex(8)
                prev = randomHex(64)
                lastJob = Date()
                try notify()
            }
        }
    }

    /// EthProxy ("stratum1"), as Ethereum-family pools speak it to ethminer and its forks:
    /// `eth_submitLogin`, `eth_getWork` (header, seed, target), `eth_submitWork`, `eth_submitHashrate`,
    /// and new work pushed as a reply with id 0.
    static func servePoolEthProxy(_ c: Conn, target: UInt32, jobEvery: Double, stats: PoolStats, deadline: Date) throws {
        var header = "0x" + randomHex(64)
        var lastJob = Date()
        func work() -> [String] { [header, "0x" + randomHex(64), "0x" + hex(target) + String(repeating: "0", count: 56)] }
        while Date() < deadline, let line = try c.readLine() {
            guard let req = parseJSON(line), let method = req["method"] as? String else { continue }
            let id = req["id"] ?? NSNull()
            switch method {
            case "eth_submitLogin":
                let p = req["params"] as? [Any] ?? []
                stats.record { $0.logins.append("\(p.first ?? "") worker=\(req["worker"] ?? "")") }
                try c.send(json(["id": id, "jsonrpc": "2.0", "result": true]) + "\n")
            case "eth_getWork":
                try c.send(json(["id": id, "jsonrpc": "2.0", "result": work()]) + "\n")
            case "eth_submitWork":
                let p = req["params"] as? [String] ?? []
                let nonce = p.first.map { uint32(String($0.suffix(8)).reversedHexBytes) } ?? UInt32.max
                let ok = p.count == 3 && p[1] == header && hashValue(hexBytes(String(header.dropFirst(2))), nonce: nonce) < target
                stats.record { if ok { $0.accepted += 1 } else { $0.rejected += 1 } }
                try c.send(json(["id": id, "jsonrpc": "2.0", "result": ok]) + "\n")
            case "eth_submitHashrate":
                try c.send(json(["id": id, "jsonrpc": "2.0", "result": true]) + "\n")
            default:
                try c.send(json(["id": id, "jsonrpc": "2.0", "error": ["code": -32601, "message": "Method not found"]]) + "\n")
            }
            if Date().timeIntervalSince(lastJob) > jobEvery {
                header = "0x" + randomHex(64)
                lastJob = Date()
                try c.send(json(["id": 0, "jsonrpc": "2.0", "result": work()]) + "\n")
            }
        }
    }

    /// NiceHash's EthereumStratum/1.0.0: `mining.subscribe` naming the protocol, `mining.authorize`,
    /// `mining.set_difficulty`, `mining.notify` (job id, seed hash, header hash, clean), `mining.submit`.
    static func servePoolEthStratum(_ c: Conn, target: UInt32, jobEvery: Double, stats: PoolStats, deadline: Date) throws {
        var jobID = randomHex(8)
        var header = randomHex(64)
        var lastJob = Date()
        func notify() throws {
            try c.send(json(["id": NSNull(), "method": "mining.set_difficulty", "params": [Double(UInt32.max) / Double(target) / 4_294_967_296]]) + "\n")
            try c.send(json(["id": NSNull(), "method": "mining.notify", "params": [jobID, randomHex(64), header, true]]) + "\n")
        }
        while Date() < deadline, let line = try c.readLine() {
            guard let req = parseJSON(line), let method = req["method"] as? String else { continue }
            let id = req["id"] ?? NSNull()
            switch method {
            case "mining.subscribe":
                try c.send(json(["id": id, "error": NSNull(), "result": [["mining.notify", randomHex(8), "EthereumStratum/1.0.0"], "0a1b"]]) + "\n")
            case "mining.authorize":
                let p = req["params"] as? [Any] ?? []
                stats.record { $0.logins.append("\(p.first ?? "")") }
                try c.send(json(["id": id, "error": NSNull(), "result": true]) + "\n")
                try notify()
            case "mining.submit":
                let p = req["params"] as? [String] ?? []
                let ok = p.count == 3 && p[1] == jobID && hashValue(hexBytes(header), nonce: uint32(String(p[2].suffix(8)).reversedHexBytes)) < target
                stats.record { if ok { $0.accepted += 1 } else { $0.rejected += 1 } }
                try c.send(json(["id": id, "error": ok ? NSNull() : [23, "Low difficulty share", NSNull()] as Any, "result": ok]) + "\n")
            default:
                try c.send(json(["id": id, "error": [20, "Unknown method", NSNull()], "result": NSNull()]) + "\n")
            }
            if Date().timeIntervalSince(lastJob) > jobEvery {
                jobID = randomHex(8)
                header = randomHex(64)
                lastJob = Date()
                try notify()
            }
        }
    }

    // MARK: miner

    /// Searches nonces until one is below `target` or `stop` passes; returns (nonce, hashes).
    static func search(_ work: [UInt8], target: UInt32, start: UInt32, until stop: Date) -> (UInt32?, Int) {
        var n = start
        var count = 0
        while true {
            if hashValue(work, nonce: n) < target { return (n, count + 1) }
            count += 1
            n &+= 1
            if count % 256 == 0 && Date() >= stop { return (nil, count) }
        }
    }

    /// A Monero block hashing blob as pools send it (76 bytes, hex): major and minor version 16
    /// (the current hard fork), the timestamp as a varint, the previous block's hash, a 4-byte
    /// nonce, the transactions' tree root and their count.
    static func moneroBlob() -> String {
        var b: [UInt8] = [16, 16]
        var t = UInt64(Date().timeIntervalSince1970)
        while t >= 0x80 { b.append(UInt8(t & 0x7f) | 0x80); t >>= 7 }
        b.append(UInt8(t))
        b += hexBytes(randomHex(64)) + [0, 0, 0, 0] + hexBytes(randomHex(64)) + [UInt8.random(in: 1...100)]
        return b.map { String(format: "%02x", $0) }.joined()
    }

    static func runMiner(pool: String, dialect: String, wallet: String, agent: String = "XMRig/6.21.0 (Linux x86_64) libuv/1.44.2 gcc/12.2.0",
                         tls: Bool = false, deadline: Date) throws {
        let (host, port) = try hostPort(pool)
        let c = try Conn.connect(host: host, port: port, retryFor: 15)
        if tls { try c.startTLS(sni: host) }
        var shares = 0
        var accepted = 0
        var nextID = 2
        if dialect == "monero" {
            try c.send(json(["id": 1, "jsonrpc": "2.0", "method": "login",
                             "params": ["login": wallet, "pass": "x", "agent": agent, "algo": ["rx/0"]]]) + "\n")
            guard let first = try c.readLine(), let resp = parseJSON(first), let result = resp["result"] as? [String: Any],
                  var job = result["job"] as? [String: Any] else { throw WorkloadError(description: "no login reply") }
            var lastKeepalive = Date()
            // A job the pool pushed, unasked: it replaces the one being worked (with its target).
            func pushedJob(_ msg: [String: Any]) -> [String: Any]? { msg["method"] as? String == "job" ? msg["params"] as? [String: Any] : nil }
            while Date() < deadline {
                while c.readable(within: 0), let line = try c.readLine() {
                    if let p = parseJSON(line).flatMap(pushedJob) { job = p }
                }
                let blob = hexBytes(job["blob"] as? String ?? "")
                let tgt = uint32(job["target"] as? String ?? "")
                let (nonce, _) = search(blob, target: tgt, start: UInt32.random(in: 0...UInt32.max), until: min(deadline, Date().addingTimeInterval(0.5)))
                if let nonce {
                    shares += 1
                    try c.send(json(["id": nextID, "jsonrpc": "2.0", "method": "submit",
                                     "params": ["id": result["id"] ?? "", "job_id": job["job_id"] ?? "", "nonce": hex(nonce), "result": randomHex(64)]]) + "\n")
                    nextID += 1
                    while let line = try c.readLine(), let msg = parseJSON(line) {
                        if let p = pushedJob(msg) { job = p; continue }
                        if (msg["result"] as? [String: Any])?["status"] as? String == "OK" { accepted += 1 }
                        break
                    }
                }
                if Date().timeIntervalSince(lastKeepalive) > 30 {
                    lastKeepalive = Date()
                    try c.send(json(["id": nextID, "jsonrpc": "2.0", "method": "keepalived", "params": ["id": result["id"] ?? ""]]) + "\n")
                    nextID += 1
                    _ = try c.readLine()
                }
            }
        } else if dialect == "ethproxy" {
            try c.send(json(["id": 1, "jsonrpc": "2.0", "method": "eth_submitLogin", "params": [wallet, "x"], "worker": "rig1"]) + "\n")
            _ = try c.readLine()
            try c.send(json(["id": 2, "jsonrpc": "2.0", "method": "eth_getWork", "params": [String]()]) + "\n")
            nextID = 3
            var work: [String] = []
            while work.isEmpty, let line = try c.readLine(), let msg = parseJSON(line) { work = msg["result"] as? [String] ?? [] }
            var lastRate = Date.distantPast
            while Date() < deadline, work.count >= 3 {
                let header = String(work[0].dropFirst(2))
                let tgt = uint32(String(work[2].dropFirst(2).prefix(8)))
                let (nonce, hashes) = search(hexBytes(header), target: tgt, start: UInt32.random(in: 0...UInt32.max), until: min(deadline, Date().addingTimeInterval(2)))
                if Date().timeIntervalSince(lastRate) > 10 {
                    lastRate = Date()
                    try c.send(json(["id": nextID, "jsonrpc": "2.0", "method": "eth_submitHashrate", "params": ["0x" + String(hashes, radix: 16), "0x" + randomHex(64)]]) + "\n")
                    nextID += 1
                    _ = try c.readLine()
                }
                guard let nonce else { continue }
                shares += 1
                try c.send(json(["id": nextID, "jsonrpc": "2.0", "method": "eth_submitWork",
                                 "params": ["0x00000000" + hex(nonce).reversedHexBytes, work[0], "0x" + randomHex(64)]]) + "\n")
                nextID += 1
                while let line = try c.readLine(), let msg = parseJSON(line) {
                    if let r = msg["result"] as? [String] { work = r; continue }
                    if msg["result"] as? Bool == true { accepted += 1 }
                    break
                }
            }
        } else if dialect == "ethstratum" {
            try c.send(json(["id": 1, "method": "mining.subscribe", "params": ["ethminer 0.19.0", "EthereumStratum/1.0.0"]]) + "\n")
            _ = try c.readLine()
            try c.send(json(["id": 2, "method": "mining.authorize", "params": [wallet + ".rig1", "x"]]) + "\n")
            nextID = 3
            var job: [Any] = []
            var tgt = UInt32.max
            while job.isEmpty, let line = try c.readLine(), let msg = parseJSON(line) {
                if msg["method"] as? String == "mining.set_difficulty", let d = (msg["params"] as? [Double])?.first, d > 0 {
                    tgt = UInt32(min(Double(UInt32.max), Double(UInt32.max) / (d * 4_294_967_296)))
                }
                if msg["method"] as? String == "mining.notify", let p = msg["params"] as? [Any] { job = p }
            }
            while Date() < deadline, job.count >= 3 {
                let (nonce, _) = search(hexBytes(job[2] as? String ?? ""), target: tgt, start: UInt32.random(in: 0...UInt32.max), until: min(deadline, Date().addingTimeInterval(2)))
                guard let nonce else { continue }
                shares += 1
                try c.send(json(["id": nextID, "method": "mining.submit", "params": [wallet + ".rig1", job[0], "0000" + hex(nonce).reversedHexBytes]]) + "\n")
                nextID += 1
                while let line = try c.readLine(), let msg = parseJSON(line) {
                    if msg["method"] as? String == "mining.notify", let p = msg["params"] as? [Any] { job = p; continue }
                    if msg["method"] as? String == "mining.set_difficulty" { continue }
                    if msg["result"] as? Bool == true { accepted += 1 }
                    break
                }
            }
        } else {
            try c.send(json(["id": 1, "method": "mining.subscribe", "params": ["cgminer/4.12.1"]]) + "\n")
            guard let sub = try c.readLine().flatMap(parseJSON), let r = sub["result"] as? [Any], r.count == 3,
                  let en1 = r[1] as? String else { throw WorkloadError(description: "no subscribe reply") }
            try c.send(json(["id": 2, "method": "mining.authorize", "params": [wallet + ".worker1", "x"]]) + "\n")
            nextID = 3
            var jobParams: [Any] = []
            var tgt = UInt32.max
            // Read until the first job.
            while jobParams.isEmpty, let line = try c.readLine(), let msg = parseJSON(line) {
                if msg["method"] as? String == "mining.set_difficulty", let d = (msg["params"] as? [Double])?.first, d > 0 {
                    tgt = UInt32(min(Double(UInt32.max), Double(UInt32.max) / d))
                }
                if msg["method"] as? String == "mining.notify", let p = msg["params"] as? [Any] { jobParams = p }
            }
            while Date() < deadline, jobParams.count >= 8 {
                let en2 = randomHex(8)
                let ntime = jobParams[7] as? String ?? ""
                let work = hexBytes((jobParams[1] as? String ?? "") + (jobParams[2] as? String ?? "") + en1 + en2 + (jobParams[3] as? String ?? "") + ntime)
                let (nonce, _) = search(work, target: tgt, start: UInt32.random(in: 0...UInt32.max), until: min(deadline, Date().addingTimeInterval(2)))
                guard let nonce else { continue }
                shares += 1
                try c.send(json(["id": nextID, "method": "mining.submit", "params": [wallet + ".worker1", jobParams[0], en2, ntime, hex(nonce)]]) + "\n")
                nextID += 1
                while let line = try c.readLine(), let msg = parseJSON(line) {
                    if msg["method"] as? String == "mining.notify", let p = msg["params"] as? [Any] { jobParams = p; continue }
                    if msg["method"] as? String == "mining.set_difficulty" { continue }
                    if msg["result"] as? Bool == true { accepted += 1 }
                    break
                }
            }
        }
        print("{\"shares\": \(shares), \"accepted\": \(accepted)}")
    }
}

extension String {
    /// "78563412" for "12345678": the big-endian hex of a little-endian hex word (how a nonce is
    /// written in the Ethereum dialects); the pool reads the last 8 digits back the same way.
    var reversedHexBytes: String {
        var pairs: [Substring] = []
        var i = startIndex
        while let j = index(i, offsetBy: 2, limitedBy: endIndex), i < endIndex {
            pairs.append(self[i..<j])
            i = j
        }
        return pairs.reversed().joined()
    }
}
