import Foundation
import Testing
import TestSupport

/// Bandwidth hijacking beyond PacketCrypt against real containers on a test network
/// (198.18.1.128/26), watched three ways at once: with the bundled rules and capture (services
/// by name, heartbeats), and with behaviour-only rules (no service rule, no content signature)
/// with and without capture. A residential-proxy node relaying for an unknown vendor through a
/// TLS tunnel, PacketCrypt-style miners with one and three pools (with capture; without it they
/// are an upload-heavy trait), a DePIN heartbeat to a known network and a proxyware entrypoint
/// are alerted; uploaders (logs, metrics, an encrypted
/// backup), relays that are not proxyjacking (a forward proxy with its own clients, a reverse
/// proxy, a mesh sidecar, a crawler, a tunnel agent for one service) and a heartbeat to an
/// unknown name raise nothing at medium or above. The bridge is recorded and read by `pcap`.
@Suite(.serialized) struct ProxywareWatchTests {
    @Test func relaysUploadersServicesAndHeartbeats() throws {
        try Podman.require()
        let lab = try WorkloadLab("px")
        defer { lab.cleanup() }
        let dir = lab.dir
        // The proxyware-style image: the workload program as /app/honeygain.
        _ = try dir.file("hg-root/app/honeygain", try Array(Data(contentsOf: URL(fileURLWithPath: workloadBinary()))), mode: 0o755)
        let hgTag = "localhost/mw-hg:\(UUID().uuidString.prefix(8).lowercased())"
        try Podman.importRootfs(dir.path + "/hg-root", tag: hgTag, changes: ["WORKDIR /app"])
        lab.adopt(image: hgTag)
        let certs = try lab.certificates(commonName: "test")
        let net = try lab.createNetwork(subnet: "198.18.1.128/26")
        let bridge = Podman.inspectNetwork(net, "{{.NetworkInterface}}")
        // Every container gets its address (servers below .175, clients from .175), so none
        // takes a server's address first.
        var nextClient = 175
        var ipOf: [String: String] = [:]
        func start(_ role: String, ip: String? = nil, image: String? = nil, hosts: [String] = [], _ args: [String]) throws -> String {
            let address = ip ?? "198.18.1.\(nextClient)"
            if ip == nil { nextClient += 1 }
            ipOf[role] = address
            let options = hosts.flatMap { ["--add-host", $0] } + ["-v", "\(certs):/certs:ro"]
            guard let image else { return try lab.start(role, ip: address, options: options, args) }
            return try lab.container(role, ip: address, options: options + Podman.hostMounts, command: [image] + args)
        }
        let tls = ["--tls-cert", "/certs/cert.pem", "--tls-key", "/certs/key.pem"]
        let d = "100"
        // Servers: five targets, a collector, a backup server, the vendor, an edge for the tunnel
        // agent, the heartbeat servers, the PacketCrypt pools.
        let targets = (0..<5).map { "198.18.1.\(140 + $0):80" }
        for (i, t) in targets.enumerated() { _ = try start("t\(i)", ip: String(t.dropLast(3)), ["http-server", "--listen", t, "--duration", d]) }
        _ = try start("collector", ip: "198.18.1.150", ["http-server", "--listen", "198.18.1.150:80", "--duration", d])
        _ = try start("backupsrv", ip: "198.18.1.151", ["http-server", "--listen", "198.18.1.151:443", "--duration", d] + tls)
        _ = try start("vendor", ip: "198.18.1.130", ["proxy-vendor", "--listen", "198.18.1.130:443", "--customers", "198.18.1.130:9000", "--duration", d] + tls)
        _ = try start("edge", ip: "198.18.1.131", ["proxy-vendor", "--listen", "198.18.1.131:443", "--customers", "198.18.1.131:9000", "--duration", d] + tls)
        _ = try start("hbgrass", ip: "198.18.1.160", ["heartbeat-server", "--listen", "198.18.1.160:443", "--duration", d] + tls)
        _ = try start("hbmon", ip: "198.18.1.161", ["heartbeat-server", "--listen", "198.18.1.161:443", "--duration", d] + tls)
        for p in 0..<3 { _ = try start("pool\(p)", ip: "198.18.1.\(170 + p)", ["ann-handler", "--listen", "198.18.1.\(170 + p):80", "--duration", d]) }
        usleep(1_500_000)
        let (dump, pcapFile) = try lab.recordBridge(bridge)
        defer { dump.stop() }
        // Three watchers.
        let behaviour = fixturePath("behaviour-only-rules.yaml")
        // The services' rule file alone (the workload program carries every miner's strings, so
        // the content rules would name it a miner; the service rules must name it by service).
        let services = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Sources/MinewatchSignatures/Rules/30-bandwidth-services.yaml").path
        let (w1, bundledOut) = try lab.watch("services", seconds: 75, ["--no-bundled-rules", "--rules", behaviour, "--rules", services])
        let (w2, noCapOut) = try lab.watch("nocap", seconds: 75, ["--no-bundled-rules", "--rules", behaviour, "--no-capture"])
        let (w3, capOut) = try lab.watch("cap", seconds: 75, ["--no-bundled-rules", "--rules", behaviour])
        defer { w1.stop(); w2.stop(); w3.stop() }
        usleep(1_500_000)
        let dl = "60"
        // Bad: the proxy node (an unknown binary, an unknown vendor host, a TLS tunnel), its
        // customers, PacketCrypt-style miners, a DePIN heartbeat, a proxyware entrypoint.
        let node = try start("node", ["proxy-node", "--vendor", "198.18.1.130:443", "--sni", "edge-7.unlisted-vendor.example", "--duration", dl])
        usleep(500_000)
        _ = try start("customers", ["proxy-customer", "--vendor", "198.18.1.130:9000", "--streams", "4", "--rate", "200000", "--duration", dl]
                      + targets.flatMap { ["--target", $0] })
        let pkt1 = try start("pkt1", ["ann-miner", "--pool", "http://198.18.1.170", "--paymentaddr", "pkt1qquyqjzstpsxsurcszyfpx9q4zct3sxg6z52rdt",
                                      "--rate", "100", "--duration", dl])
        let pkt3 = try start("pkt3", ["ann-miner", "--pool", "http://198.18.1.170", "--pool", "http://198.18.1.171", "--pool", "http://198.18.1.172",
                                      "--paymentaddr", "pkt1qquyqjzstpsxsurcszyfpx9q4zct3sxg6z52rdt", "--rate", "100", "--duration", dl])
        let depin = try start("depin", hosts: ["proxy.wynd.network:198.18.1.160"],
                              ["heartbeat", "--server", "proxy.wynd.network:443", "--sni", "proxy.wynd.network", "--period", "5", "--duration", dl])
        let hg = try start("honeygain", image: hgTag, ["/app/honeygain", "-tou-accept", "-email", "someone@example.com", "-pass", "x", "-device", "n1"])
        // Honest look-alikes.
        var benign: [(String, String)] = []
        func good(_ role: String, hosts: [String] = [], ip: String? = nil, _ args: [String]) throws {
            benign.append((role, try start(role, ip: ip, hosts: hosts, args)))
        }
        try good("logship", ["log-shipper", "--url", "http://198.18.1.150/_bulk", "--rate", "250000", "--every", "0.5", "--duration", dl])
        try good("remotewrite", ["remote-write", "--url", "http://198.18.1.150/api/v1/write", "--bytes", "120000", "--duration", dl])
        try good("backup", ["backup", "--url", "https://198.18.1.151/repo", "--rate", "600000", "--duration", dl])
        try good("fwdproxy", ip: "198.18.1.152", ["forward-proxy", "--listen", "198.18.1.152:3128", "--duration", d])
        try good("proxyclient", ["proxy-customer", "--http-proxy", "198.18.1.152:3128", "--streams", "4", "--rate", "200000", "--duration", dl]
                 + targets.flatMap { ["--target", $0] })
        try good("revproxy", ip: "198.18.1.153", ["reverse-proxy", "--listen", "198.18.1.153:80", "--duration", d] + targets.prefix(4).flatMap { ["--backend", $0] })
        try good("revclient", ["download", "--url", "http://198.18.1.153/file/200000", "--clients", "2", "--rate", "150000", "--duration", dl])
        try good("sidecar", ip: "198.18.1.154", ["sidecar", "--listen", "198.18.1.154:80", "--calls", "3", "--duration", d] + targets.prefix(3).flatMap { ["--upstream", $0] })
        try good("meshclient", ["download", "--url", "http://198.18.1.154/file/200000", "--rate", "200000", "--duration", dl])
        try good("crawler", ["crawler", "--queue", "198.18.1.150:80", "--pages", "2", "--page-bytes", "100000", "--duration", dl] + targets.flatMap { ["--target", $0] })
        try good("tunnelagent", ["proxy-node", "--vendor", "198.18.1.131:443", "--sni", "edge.tunnel.example", "--allow", targets[1], "--duration", dl])
        usleep(500_000)
        try good("edgeusers", ["proxy-customer", "--vendor", "198.18.1.131:9000", "--target", targets[1], "--streams", "3", "--rate", "200000", "--duration", dl])
        try good("monitor", hosts: ["metrics.internal.example:198.18.1.161"],
                 ["heartbeat", "--server", "metrics.internal.example:443", "--sni", "metrics.internal.example", "--period", "5", "--duration", dl])
        for w in [w1, w2, w3] { #expect(w.wait(seconds: 100) { !w.process.isRunning }, "watch did not finish") }
        dump.stop()
        if let keep = ProcessInfo.processInfo.environment["MW_KEEP_OUTPUT"] {
            for f in [bundledOut, noCapOut, capOut, pcapFile] { _ = try? TestSupport.run(["cp", f, keep]) }
        }

        let started: [String: Date] = Dictionary(uniqueKeysWithValues: [node, pkt1, pkt3, depin, hg].compactMap { id in Podman.startedAt(id).map { (id, $0) } })
        func alerts(_ file: String) -> [[String: Any]] { readAlerts(file) }
        func ttd(_ a: [String: Any], _ id: String) -> Double {
            let detected = ISO8601DateFormatter().date(from: a["detectedAt"] as? String ?? "") ?? .distantFuture
            return detected.timeIntervalSince(started[id] ?? .distantPast)
        }
        var report: [String] = []
        // The proxy node, with no service rule loaded (w2 without capture, w3 with): relay, high, within 30 s.
        for (label, file) in [("no capture", noCapOut), ("capture", capOut)] {
            let all = alerts(file)
            let relay = try #require(all.first { $0.containerID == node && $0["detector"] as? String == "relay" }, "\(label): no relay alert: \(all.map { $0["summary"] ?? "" })")
            #expect(relay["severity"] as? String == "high" && relay["technique"] as? String == "T1496.002")
            let ev = relay["evidence"] as? [[String: Any]] ?? []
            #expect(ev.contains { $0["name"] as? String == "vendor" && $0["value"] as? String == "198.18.1.130:443" }, "\(ev)")
            let m = relay["metrics"] as? [String: Double] ?? [:]
            #expect((m["targets"] ?? 0) >= 3 && (m["relayedBytesPerSecond"] ?? 0) >= 125_000, "\(m)")
            let t = ttd(relay, node)
            #expect(t <= 30, "\(label): relay detected after \(t) s")
            report.append(String(format: "relay (%@): %.1f s, %.0f targets, towards targets %.2f:1, back %.2f:1, %.0f kB/s relayed", label, t,
                                 m["targets"] ?? 0, m["balanceTowardsTargets"] ?? 0, m["balanceBack"] ?? 0, (m["relayedBytesPerSecond"] ?? 0) / 1000))
            // PacketCrypt-style miners: high within 30 s with capture. Without it, nothing but the
            // upload shape and what honest uploaders share (polls, similar volume to several
            // pools) is seen: a trait, never an alert.
            for (name, id) in [("pkt 1 pool", pkt1), ("pkt 3 pools", pkt3)] {
                let mine = all.filter { $0.containerID == id && ["high", "critical"].contains($0["severity"] as? String ?? "") }
                if label == "no capture" {
                    #expect(mine.isEmpty, "\(name) without capture: \(mine.map { $0["summary"] ?? "" })")
                    // Three pools: the upload shape holds (a trait). One pool at 100 announcements/s
                    // posts one batch every 10 s: two exchanges a window, under the three the shape
                    // needs, so it may not even be a trait.
                    let traits = readTelemetry(file).filter { $0.containerID == id }.flatMap { ($0["traits"] as? [[String: Any]]) ?? [] }
                    let heavy = traits.contains { $0["name"] as? String == "upload-heavy" }
                    if id == pkt3 { #expect(heavy, "\(name) without capture: no upload-heavy trait") }
                    report.append("\(name) (no capture): \(heavy ? "upload-heavy trait" : "nothing")")
                    continue
                }
                let first = try #require(mine.min { ttd($0, id) < ttd($1, id) }, "\(label): \(name) not alerted high: \(all.filter { $0.containerID == id })")
                #expect(ttd(first, id) <= 30, "\(label): \(name) after \(ttd(first, id)) s by \(first["detector"] ?? "")")
                report.append(String(format: "%@ (%@): %.1f s by %@", name, label, ttd(first, id), first["detector"] as? String ?? ""))
            }
        }
        // Services by name (bundled rules): the DePIN heartbeat and the proxyware entrypoint.
        let named = alerts(bundledOut)
        let grass = try #require(named.first { $0.containerID == depin && $0["detector"] as? String == "bandwidth-service" }, "\(named.filter { $0.containerID == depin })")
        #expect(grass["severity"] as? String == "high" && grass["family"] as? String == "grass")
        let proc = try #require(named.first { $0.containerID == hg && $0["detector"] as? String == "miner-process" })
        #expect(proc["severity"] as? String == "high" && proc["family"] as? String == "honeygain" && proc["technique"] as? String == "T1496.002")
        report.append(String(format: "DePIN heartbeat: %.1f s; honeygain entrypoint: %.1f s", ttd(grass, depin), ttd(proc, hg)))
        // Nothing at medium or above for any honest container, in any watcher; the heartbeat to an
        // unknown name is a trait in telemetry.
        for (file, label) in [(bundledOut, "services"), (noCapOut, "no capture"), (capOut, "capture")] {
            let all = alerts(file)
            for (role, id) in benign {
                let loud = all.filter { $0.containerID == id && ["medium", "high", "critical"].contains($0["severity"] as? String ?? "") }
                #expect(loud.isEmpty, "\(label): benign \(role) alerted: \(loud.map { $0["summary"] ?? "" })")
            }
        }
        let records = readTelemetry(bundledOut)
        let monitor = benign.first { $0.0 == "monitor" }?.1 ?? ""
        #expect(records.contains { $0.containerID == monitor && ($0["traits"] as? [[String: Any]])?.contains { $0["name"] as? String == "heartbeat" } == true },
                "the monitoring heartbeat is reported as a trait")
        let logship = benign.first { $0.0 == "logship" }?.1 ?? ""
        #expect(records.contains { $0.containerID == logship && ($0["traits"] as? [[String: Any]])?.contains { $0["name"] as? String == "upload-heavy" } == true },
                "the log shipper's upload shape is a trait")
        print("proxyware: " + report.joined(separator: "; "))

        // The same model in pcap, per client address, on the recorded bridge.
        let ips = ipOf
        let r = try minewatch(["pcap", "-f", "json", pcapFile])
        let cap = try #require(((try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any])?["captures"] as? [[String: Any]])?.first, "\(r.err)")
        let findings = cap["findings"] as? [[String: Any]] ?? []
        let relay = try #require(findings.first { $0["ruleId"] as? String == "MW-NET-RELAY" }, "\(findings.map { "\($0["ruleId"] ?? "") \($0["path"] ?? "")" })")
        #expect(relay["path"] as? String == ips["node"], "relay attributed to \(relay["path"] ?? "") (node is \(ips["node"] ?? ""))")
        #expect(findings.contains { $0["ruleId"] as? String == "MW-NET-SERVICE" && $0["family"] as? String == "grass" && $0["severity"] as? String == "high" })
        for (role, _) in benign {
            guard let ip = ips[role], !ip.isEmpty else { continue }
            let loud = findings.filter { ($0["path"] as? String).map { $0 == ip || $0.hasPrefix(ip + ":") } == true
                && ["medium", "high", "critical"].contains($0["severity"] as? String ?? "") }
            #expect(loud.isEmpty, "pcap: benign \(role) (\(ip)): \(loud.map { $0["title"] ?? "" })")
        }
    }
}
