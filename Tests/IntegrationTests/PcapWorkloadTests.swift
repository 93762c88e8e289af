import Foundation
import Testing
import TestSupport

/// Captures recorded with tcpdump from the repository's own workloads talking over loopback, then
/// read by `minewatch pcap`: the identities and counts it extracts match what the programs did, and
/// benign traffic raises no mining finding.
@Suite(.serialized) struct PcapWorkloadTests {
    static func requireTcpdump() throws {
        try prerequisite((try? run(["tcpdump", "--version"]).status) == 0 && getuid() == 0,
                     "tcpdump and root are required under CI=true (scripts/install-deps installs tcpdump)")
    }

    /// Records `filter` on `interface` while `body` runs.
    static func record(_ file: String, interface: String = "lo", nano: Bool = false, filter: String, _ body: () throws -> Void) throws {
        // A 64 MiB kernel buffer: loopback segments are up to 64 KiB each.
        var args = ["tcpdump", "-i", interface, "-B", "65536", "-U", "-s", "0", "-w", file]
        if nano { args += ["--time-stamp-precision=nano"] }
        let dump = try BackgroundProcess(args + [filter], label: "tcpdump")
        defer { dump.stop() }
        #expect(dump.wait(seconds: 10) { dump.output.contains("listening on") })
        try body()
        usleep(500_000)
    }

    static func pcap(_ files: [String]) throws -> [[String: Any]] {
        let r = try minewatch(["pcap", "-f", "json"] + files)
        #expect(r.status == 0 || r.status == 1, "\(r.err)")
        let obj = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any]
        return obj?["captures"] as? [[String: Any]] ?? []
    }

    @Test func stratumBothDialects() throws {
        try Self.requireTcpdump()
        let dir = try TempDir("pcap-stratum")
        defer { dir.cleanup() }
        let wallet = "48edfHu7V9Z84YzzMa6fUueoELZ9ZRXq9VetWzYGzKt52XU5xvqgzYnDK9URnRoJMk1j8nLwEVsaSWJ4fhdUyZijBGUicoD"
        for (dialect, login) in [("monero", wallet), ("bitcoin", "1BoatSLRHtKNngkdXEeobR76b53LETtpyT")] {
            let port = freeLoopbackPort()
            let file = dir.path + "/\(dialect).pcap"
            try Self.record(file, filter: "tcp port \(port)") {
                let pool = try BackgroundProcess([workloadBinary(), "stratum-pool", "--listen", "127.0.0.1:\(port)", "--dialect", dialect,
                                                  "--target", "ffffffff", "--duration", "20"], label: "pool")
                defer { pool.stop() }
                #expect(pool.wait { loopbackPortOpen(port) })
                let r = try run([workloadBinary(), "stratum-miner", "--pool", "127.0.0.1:\(port)", "--dialect", dialect, "--wallet", login, "--duration", "4"])
                #expect(r.status == 0, "\(r.err)")
            }
            let cap = try #require(try Self.pcap([file]).first)
            let sessions = cap["sessions"] as? [[String: Any]] ?? []
            let s = try #require(sessions.first, "no session in \(cap)")
            let facts = s["facts"] as? [String: Any] ?? [:]
            #expect(s["protocolName"] as? String == (dialect == "monero" ? "stratum-monero" : "stratum"))
            #expect((facts["login"] as? String)?.hasPrefix(login) == true, "\(facts)")
            #expect((facts["agent"] as? String)?.contains(dialect == "monero" ? "XMRig" : "cgminer") == true)
            #expect((facts["submits"] as? Int ?? 0) >= 1 && (facts["accepted"] as? Int ?? 0) >= 1 && (facts["jobs"] as? Int ?? 0) >= 1, "\(facts)")
            let findings = cap["findings"] as? [[String: Any]] ?? []
            let f = try #require(findings.first { $0["ruleId"] as? String == "MW-NET-STRATUM" })
            #expect(f["severity"] as? String == "critical")
            if dialect == "monero" {
                #expect((f["evidence"] as? [[String: Any]])?.contains { $0["kind"] as? String == "wallet" && $0["value"] as? String == wallet } == true)
            }
        }
    }

    /// A rebranded Monero miner (its agent string names no program, its login is a worker name,
    /// not a wallet) is still named from the wire: the pool's jobs are RandomX (seed_hash and a
    /// Monero block header blob; the miner offered rx/0).
    @Test func rebrandedStratumClientIsNamedFromTheWire() throws {
        try Self.requireTcpdump()
        let dir = try TempDir("pcap-rebranded")
        defer { dir.cleanup() }
        let port = freeLoopbackPort()
        let file = dir.path + "/rebranded.pcap"
        try Self.record(file, filter: "tcp port \(port)") {
            let pool = try BackgroundProcess([workloadBinary(), "stratum-pool", "--listen", "127.0.0.1:\(port)", "--dialect", "monero",
                                              "--target", "ffffffff", "--duration", "20"], label: "pool")
            defer { pool.stop() }
            #expect(pool.wait { loopbackPortOpen(port) })
            let r = try run([workloadBinary(), "stratum-miner", "--pool", "127.0.0.1:\(port)", "--dialect", "monero", "--wallet", "rig-07",
                             "--agent", "SysMonitor/2.1 (Linux x86_64)", "--duration", "4"])
            #expect(r.status == 0, "\(r.err)")
        }
        let cap = try #require(try Self.pcap([file]).first)
        let findings = cap["findings"] as? [[String: Any]] ?? []
        let f = try #require(findings.first { $0["ruleId"] as? String == "MW-NET-STRATUM" }, "\(findings)")
        #expect(f["severity"] as? String == "critical" && f["family"] as? String == "monero", "\(f)")
        let ev = f["evidence"] as? [[String: Any]] ?? []
        #expect(ev.contains { $0["name"] as? String == "family from the wire" && ($0["value"] as? String)?.contains("RandomX") == true }, "\(ev)")
    }

    /// Ethereum-family pools: EthProxy (`eth_submitLogin`, `eth_getWork`, `eth_submitWork`,
    /// `eth_submitHashrate`) and NiceHash's EthereumStratum/1.0.0, recorded and recognised.
    @Test func stratumEthereumDialects() throws {
        try Self.requireTcpdump()
        let dir = try TempDir("pcap-eth")
        defer { dir.cleanup() }
        let wallet = "0x52bc44d5378309ee2abf1539bf71de1b7d7be3b5"
        for (dialect, agent) in [("ethproxy", nil), ("ethstratum", "ethminer 0.19.0")] {
            let port = freeLoopbackPort()
            let file = dir.path + "/\(dialect).pcap"
            try Self.record(file, filter: "tcp port \(port)") {
                let pool = try BackgroundProcess([workloadBinary(), "stratum-pool", "--listen", "127.0.0.1:\(port)", "--dialect", dialect,
                                                  "--target", "ffffffff", "--duration", "20"], label: "pool")
                defer { pool.stop() }
                #expect(pool.wait { loopbackPortOpen(port) })
                let r = try run([workloadBinary(), "stratum-miner", "--pool", "127.0.0.1:\(port)", "--dialect", dialect, "--wallet", wallet, "--duration", "4"])
                #expect(r.status == 0 && String(decoding: r.out, as: UTF8.self).contains("\"accepted\": "), "\(r.err)")
            }
            let cap = try #require(try Self.pcap([file]).first)
            let s = try #require((cap["sessions"] as? [[String: Any]])?.first, "no session in \(cap)")
            let facts = s["facts"] as? [String: Any] ?? [:]
            #expect(s["protocolName"] as? String == "stratum-ethereum", "\(dialect): \(s)")
            #expect((facts["login"] as? String)?.hasPrefix(wallet) == true, "\(facts)")
            if let agent { #expect(facts["agent"] as? String == agent) }
            #expect((facts["submits"] as? Int ?? 0) >= 1 && (facts["accepted"] as? Int ?? 0) >= 1 && (facts["jobs"] as? Int ?? 0) >= 1, "\(facts)")
            let f = try #require((cap["findings"] as? [[String: Any]])?.first { $0["ruleId"] as? String == "MW-NET-STRATUM" })
            #expect(f["severity"] as? String == "critical")
            #expect((f["title"] as? String)?.contains("Ethereum") == true)
            if agent != nil { #expect(f["family"] as? String == "ethminer") }
        }
    }

    /// PacketCrypt on two pools and benign loads, captured at the same time for 28 s: cooked v2
    /// (`-i any`) with nanosecond timestamps, also converted to pcapng.
    @Test func packetCryptAndBenignLoads() throws {
        try Self.requireTcpdump()
        let dir = try TempDir("pcap-pkt")
        defer { dir.cleanup() }
        let p1 = freeLoopbackPort(), p2 = freeLoopbackPort(), web = freeLoopbackPort()
        let minerFile = dir.path + "/pkt.pcap", benignFile = dir.path + "/benign.pcap"
        let h1 = try BackgroundProcess([workloadBinary(), "ann-handler", "--listen", "127.0.0.1:\(p1)", "--duration", "60"], label: "h1")
        let h2 = try BackgroundProcess([workloadBinary(), "ann-handler", "--listen", "127.0.0.1:\(p2)", "--duration", "60"], label: "h2")
        let server = try BackgroundProcess([workloadBinary(), "http-server", "--listen", "127.0.0.1:\(web)", "--duration", "60"], label: "web")
        defer { h1.stop(); h2.stop(); server.stop() }
        #expect(h1.wait { loopbackPortOpen(p1) } && h2.wait { loopbackPortOpen(p2) } && server.wait { loopbackPortOpen(web) })
        let payto = "pkt1qquyqjzstpsxsurcszyfpx9q4zct3sxg6z52rdt"
        var minerOut = ""
        try Self.record(benignFile, filter: "tcp port \(web)") {
            try Self.record(minerFile, interface: "any", nano: true, filter: "tcp port \(p1) or tcp port \(p2)") {
                let dl = try BackgroundProcess([workloadBinary(), "download", "--url", "http://127.0.0.1:\(web)/file/20000000", "--rate", "500000", "--duration", "28"], label: "dl")
                let up = try BackgroundProcess([workloadBinary(), "upload", "--url", "http://127.0.0.1:\(web)/upload", "--bytes", "28000000", "--rate", "1000000", "--duration", "40"], label: "up")
                let api = try BackgroundProcess([workloadBinary(), "api-client", "--url", "http://127.0.0.1:\(web)/api", "--rps", "10", "--duration", "28"], label: "api")
                defer { dl.stop(); up.stop(); api.stop() }
                let r = try run([workloadBinary(), "ann-miner", "--pool", "http://127.0.0.1:\(p1)", "--pool", "http://127.0.0.1:\(p2)",
                                 "--paymentaddr", payto, "--rate", "300", "--duration", "28"])
                minerOut = String(decoding: r.out, as: UTF8.self)
                _ = up.wait(seconds: 15) { !up.process.isRunning }
            }
        }
        let sent = (try JSONSerialization.jsonObject(with: Data(minerOut.utf8)) as? [String: Any])?["announcements"] as? Int ?? -1
        #expect(sent > 1000, "miner said \(minerOut)")
        let ng = dir.path + "/pkt.pcapng"
        #expect(try run(["editcap", "-F", "pcapng", minerFile, ng]).status == 0)
        for cap in try Self.pcap([minerFile, ng]) {
            let findings = cap["findings"] as? [[String: Any]] ?? []
            let pkt = try #require(findings.first { $0["ruleId"] as? String == "MW-NET-PACKETCRYPT" }, "\(findings)")
            #expect(pkt["severity"] as? String == "critical" && pkt["family"] as? String == "packetcrypt")
            let ev = pkt["evidence"] as? [[String: Any]] ?? []
            #expect(ev.filter { $0["name"] as? String == "handler" }.count == 2)
            #expect(ev.contains { $0["name"] as? String == "x-pc-payto" && $0["value"] as? String == payto && $0["kind"] as? String == "wallet" })
            // The announcements the miner says it sent, to each of two handlers, were counted (a capture
            // that drops a segment loses at most the batches it cut; none is invented).
            let counted = Int((pkt["note"] as? String)?.split(separator: " ").first ?? "") ?? -1
            #expect(counted <= sent * 2 && counted >= sent * 2 * 9 / 10, "\(counted) counted, \(sent) sent to each of 2 handlers")
            let bw = findings.first { $0["ruleId"] as? String == "MW-NET-BANDWIDTH" }
            #expect(bw?["severity"] as? String == "high", "the bandwidth shape: \(findings.map { $0["ruleId"] ?? "" })")
        }
        let benign = try #require(try Self.pcap([benignFile]).first)
        let bf = benign["findings"] as? [[String: Any]] ?? []
        #expect(bf.isEmpty, "benign capture: \(bf)")
        #expect((benign["packets"] as? Int ?? 0) > 1000)
    }
}
