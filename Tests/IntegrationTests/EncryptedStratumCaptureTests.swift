import Foundation
import Testing
import TestSupport

/// Stratum inside TLS, found by its shape in a capture with no clear text: this repository's
/// workload miner and the real XMRig (`--tls`, Debian 13's build, light mode, one thread) against
/// the workload pool's TLS listener; and the honest push channels that look most alike (a chat
/// room over a WebSocket, a gRPC event feed, MQTT over TLS through Debian's mosquitto) stay below
/// medium. Everything on loopback, bounded to 40 s.
@Suite(.serialized) struct EncryptedStratumCaptureTests {
    func findings(_ out: String) -> [[String: Any]] {
        let obj = try? JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any]
        return ((obj?["captures"] as? [[String: Any]]) ?? []).flatMap { ($0["findings"] as? [[String: Any]]) ?? [] }
    }

    @Test func tlsStratumIsFoundByShapeAndPushChannelsStayLow() throws {
        try prerequisite(FileManager.default.isExecutableFile(atPath: "/usr/sbin/tcpdump") || FileManager.default.isExecutableFile(atPath: "/usr/bin/tcpdump"),
                         "tcpdump is missing (scripts/install-deps installs it)")
        try prerequisite(FileManager.default.isExecutableFile(atPath: "/usr/sbin/mosquitto"), "mosquitto is missing (scripts/install-deps installs it)")
        let py = try run(["/usr/bin/python3", "-c", "import grpc, websockets"])
        try prerequisite(py.status == 0, "python3-grpcio or python3-websockets is missing (scripts/install-deps installs them)")
        try UPXTools.require()
        let dir = try TempDir("tlsstratum")
        defer { dir.cleanup() }
        let gen = try run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                           "-subj", "/CN=test", "-keyout", dir.path + "/key.pem", "-out", dir.path + "/cert.pem"])
        #expect(gen.status == 0, "\(gen.err)")
        _ = try run(["chmod", "0755", dir.path])
        _ = try run(["chmod", "0644", dir.path + "/key.pem", dir.path + "/cert.pem"])
        let cert = dir.path + "/cert.pem", key = dir.path + "/key.pem"
        let base = Int.random(in: 21000..<40000)
        let (workload, xmrig, chat, grpc, mqtt) = (base, base + 1, base + 2, base + 3, base + 4)
        let file = dir.path + "/lo.pcap"
        let dump = try BackgroundProcess(["tcpdump", "-i", "lo", "-U", "-s", "512", "-w", file, "tcp portrange \(base)-\(base + 4)"], label: "tcpdump-lo")
        defer { dump.stop() }
        #expect(dump.wait(seconds: 10) { dump.output.contains("listening on") }, "\(dump.output)")
        _ = try dir.file("mosquitto.conf", Array("""
            listener \(mqtt) 127.0.0.1
            certfile \(cert)
            keyfile \(key)
            allow_anonymous true
            persistence false

            """.utf8))
        let w = workloadBinary(), lookalikes = fixturePath("push-lookalikes.py")
        // A pool pushes a job every 3 s and steers each miner towards a share every 4 s (variable
        // difficulty, as real pools do), so the share rate does not depend on how busy the machine
        // is. With fixed targets it did: the workload miner's 1 in 65,536 (00010000) gave 2 shares
        // in 40 s next to two CPU hogs at 1 in 262,144 and 112 on an idle machine (2.8 a second:
        // most job pushes then came within 0.5 s of a submit, so they read as its answers, and the
        // shape was rightly not found; CI saw that). The starting targets are easy: the workload
        // miner's (double SHA-256 in a debug build) 1 in 65,536 hashes, XMRig's (one light-mode
        // thread) difficulty about 31 (083c72a1).
        var procs: [BackgroundProcess] = []
        defer { procs.forEach { $0.stop() } }
        procs.append(try BackgroundProcess([w, "stratum-pool", "--listen", "127.0.0.1:\(workload)", "--tls-cert", cert, "--tls-key", key, "--job-every", "3",
                                            "--target", "00010000", "--share-every", "4", "--duration", "48"], label: "pool-a"))
        procs.append(try BackgroundProcess([w, "stratum-pool", "--listen", "127.0.0.1:\(xmrig)", "--tls-cert", cert, "--tls-key", key, "--job-every", "3",
                                            "--target", "083c72a1", "--share-every", "4", "--duration", "48"], label: "pool-b"))
        procs.append(try BackgroundProcess(["/usr/bin/python3", lookalikes, "ws-chat-server", "\(chat)", cert, key, "46"], label: "chat-server"))
        procs.append(try BackgroundProcess(["/usr/bin/python3", lookalikes, "grpc-server", "\(grpc)", cert, key, "46"], label: "grpc-server"))
        procs.append(try BackgroundProcess(["/usr/sbin/mosquitto", "-c", dir.path + "/mosquitto.conf"], label: "mosquitto"))
        usleep(1_000_000)
        procs.append(try BackgroundProcess([w, "stratum-miner", "--pool", "127.0.0.1:\(workload)", "--tls", "--wallet", "4AdUndXHHZ6cfufTMvppY6JwXNouMBzSkbLYfpAV5Usx3skxNgYeYTRj5UzqtReoS44qo9mtmXCqY45DJ852K5Jv2684Rge",
                                            "--duration", "40"], label: "miner"))
        procs.append(try BackgroundProcess(["timeout", "-s", "KILL", "40", "chroot", UPXTools.xmrigRoot, "/usr/bin/xmrig", "-o", "127.0.0.1:\(xmrig)", "--tls",
                                            "-u", "x", "-p", "x", "--donate-level=0", "--randomx-mode=light", "-t", "1", "--no-huge-pages", "--no-color"],
                                           label: "xmrig"))
        procs.append(try BackgroundProcess(["/usr/bin/python3", lookalikes, "ws-chat-client", "\(chat)", "40"], label: "chat-client"))
        procs.append(try BackgroundProcess(["/usr/bin/python3", lookalikes, "grpc-client", "\(grpc)", cert, "40"], label: "grpc-client"))
        procs.append(try BackgroundProcess(["timeout", "-s", "KILL", "40", "mosquitto_sub", "-h", "127.0.0.1", "-p", "\(mqtt)", "--cafile", cert, "--insecure",
                                            "-t", "site/#", "-q", "1"], label: "mqtt-sub"))
        procs.append(try BackgroundProcess(["sh", "-c", "for i in $(seq 1 19); do echo \"{\\\"sensor\\\":\\\"t1\\\",\\\"temp\\\":2$((i % 10)).$i,\\\"seq\\\":$i}\"; sleep 2; done"
                                            + " | timeout -s KILL 40 mosquitto_pub -h 127.0.0.1 -p \(mqtt) --cafile \(cert) --insecure -t site/t1 -q 1 -l"], label: "mqtt-pub"))
        usleep(41_000_000)
        procs.forEach { $0.stop() }
        usleep(500_000)
        dump.stop()
        let r = try minewatch(["pcap", "-f", "json", file])
        let all = findings(r.out)
        func at(_ port: Int) -> [[String: Any]] { all.filter { ($0["path"] as? String ?? "").hasSuffix(":\(port)") } }
        func shape(_ port: Int) -> [String: Any]? { at(port).first { $0["ruleId"] as? String == "MW-NET-STRATUM-SHAPE" } }
        let summary = all.map { "\($0["ruleId"] ?? "") \($0["severity"] ?? "") \($0["path"] ?? "")" }
        #expect(shape(workload) != nil, "workload miner over TLS not found: \(summary)")
        #expect(shape(xmrig) != nil, "XMRig --tls not found: \(summary)")
        // No clear text: nothing was recognised as Stratum by its content.
        #expect(!all.contains { ($0["ruleId"] as? String) == "MW-NET-STRATUM" }, "\(summary)")
        for (name, port) in [("chat WebSocket", chat), ("gRPC feed", grpc), ("MQTT", mqtt)] {
            #expect(at(port).allSatisfy { ($0["severity"] as? String).map { ["info", "low"].contains($0) } ?? false }, "\(name): \(summary)")
        }
        #expect(shape(chat) == nil && shape(grpc) == nil, "\(summary)")
        if shape(workload) == nil || shape(xmrig) == nil {
            // Kept for a look: the capture holds only this test's loopback ports.
            _ = try? run(["cp", file, FileManager.default.temporaryDirectory.path + "/mw-tlsstratum-failed.pcap"])
        }
    }
}
