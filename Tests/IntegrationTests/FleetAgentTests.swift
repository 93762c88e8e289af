import Foundation
import Testing
import TestSupport

/// `watch` as a fleet runs it: a config file with an exception, three outputs (JSON lines, OCSF,
/// a Falcosidekick-shaped receiver that checks every field and fails the first post), metrics
/// with a bearer token scraped by Debian's real Prometheus, and a PromQL query through its HTTP
/// API that returns the alert count the test miner caused. A benign uploader whose backup server
/// listens on a pool port is silenced by the exception, and counted.
@Suite(.serialized) struct FleetAgentTests {
    static func get(_ url: String, token: String? = nil) -> (Int, String) {
        var args = ["curl", "-s", "-m", "10", "-o", "-", "-w", "\n%{http_code}"]
        if let token { args += ["-H", "Authorization: Bearer \(token)"] }
        guard let r = try? run(args + [url]) else { return (0, "") }
        let text = String(decoding: r.out, as: UTF8.self)
        let code = Int(text.split(separator: "\n").last ?? "") ?? 0
        return (code, String(text.dropLast(String(code).count + 1)))
    }

    @Test func configExceptionsOutputsAndPrometheus() throws {
        try Podman.require()
        try requireTools(["prometheus", "curl", "python3"])
        let lab = try WorkloadLab("fleet")
        defer { lab.cleanup() }
        try lab.createNetwork(subnet: "198.18.1.192/27")
        let dir = lab.dir, tag = lab.tag, run = lab.run
        _ = try lab.start("pool", ip: "198.18.1.200", ["stratum-pool", "--listen", "198.18.1.200:3333", "--dialect", "monero", "--duration", "80"])
        // The NAS a backup job writes to listens on 3333, a pool port: pool-contact fires on it.
        _ = try lab.start("nas", ip: "198.18.1.201", ["http-server", "--listen", "198.18.1.201:3333", "--duration", "80"])

        let falcoPort = freeLoopbackPort(), metricsPort = freeLoopbackPort(), promPort = freeLoopbackPort()
        let received = dir.path + "/falco.jsonl"
        let receiver = try BackgroundProcess(["python3", fixturePath("falco-receiver.py"), String(falcoPort), received, "--fail-first", "1"], label: "falco")
        defer { receiver.stop() }
        #expect(receiver.wait { loopbackPortOpen(falcoPort) })
        let token = "fleet-test-token-\(run)-0123456789"
        _ = try dir.file("token", Array((token + "\n").utf8))
        let alerts = dir.path + "/alerts.jsonl", ocsf = dir.path + "/ocsf.jsonl"
        // podman's Docker-compatible API names the containers and their images.
        let sock = dir.path + "/podman.sock"
        let api = try BackgroundProcess(["podman", "system", "service", "--time=0", "unix://\(sock)"], label: "podman-api")
        defer { api.stop() }
        #expect(api.wait { FileManager.default.fileExists(atPath: sock) })
        let config = try dir.file("minewatch.yaml", Array("""
        interval: 1s
        engine_socket: \(sock)
        bundled_rules: false
        rules: [\(fixturePath("behaviour-only-rules.yaml"))]
        outputs:
          jsonl: {path: \(alerts), telemetry: true}
          ocsf: {path: \(ocsf)}
          falcosidekick: {url: "http://127.0.0.1:\(falcoPort)/", timeout: 2s, retries: 5}
        metrics_listen: 0.0.0.0:\(metricsPort)
        token_file: token
        exceptions:
          - name: backup-to-nas
            reason: the nightly backup writes to our NAS, which listens on 3333
            image: "localhost/mw-workload:*"
            detector: [pool-contact, bandwidth-miner]
            destination: [198.18.1.201/32]
        """.utf8))
        let validate = try TestSupport.run([minewatchBinary(), "config", "validate", config])
        #expect(validate.status == 0, "\(validate.err)")
        let watch = try BackgroundProcess([minewatchBinary(), "watch", "--config", config, "--duration", "45s"], label: "fleet-watch")
        defer { watch.stop() }
        #expect(watch.wait { loopbackPortOpen(metricsPort) }, "\(watch.output)")

        // Off loopback the endpoint wants the token.
        #expect(Self.get("http://127.0.0.1:\(metricsPort)/metrics").0 == 401)
        #expect(Self.get("http://127.0.0.1:\(metricsPort)/metrics", token: "not-the-token-0123456789").0 == 401)
        #expect(Self.get("http://127.0.0.1:\(metricsPort)/metrics", token: token).0 == 200)

        let promConfig = try dir.file("prometheus.yml", Array("""
        global: {scrape_interval: 1s, evaluation_interval: 1s}
        scrape_configs:
          - job_name: minewatch
            authorization: {type: Bearer, credentials_file: \(dir.path)/token}
            static_configs: [{targets: ["127.0.0.1:\(metricsPort)"]}]
        """.utf8))
        let prom = try BackgroundProcess(["prometheus", "--config.file=\(promConfig)", "--storage.tsdb.path=\(dir.path)/tsdb",
                                          "--web.listen-address=127.0.0.1:\(promPort)"], label: "prometheus")
        defer { prom.stop() }
        #expect(prom.wait(seconds: 30) { loopbackPortOpen(promPort) }, "\(prom.output.suffix(2000))")

        let miner = try lab.start("miner", ["stratum-miner", "--pool", "198.18.1.200:3333", "--dialect", "monero", "--wallet", "x", "--duration", "60"])
        let backup = try lab.start("backup", ["upload", "--url", "http://198.18.1.201:3333/upload", "--bytes", "400000000", "--rate", "300000", "--duration", "60"])

        // The miner's alert reaches the file; then Prometheus must show the same count.
        #expect(watch.wait(seconds: 30) { readAlerts(alerts).contains { $0.containerID == miner } }, "\(watch.output)")
        usleep(2_000_000)
        let count = readAlerts(alerts).filter { $0.containerID == miner }.count
        var promValue = ""
        let query = "sum(minewatch_alerts_total)"
        let seen = watch.wait(seconds: 30) {
            let (code, body) = Self.get("http://127.0.0.1:\(promPort)/api/v1/query?query=\(query.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")")
            guard code == 200, let obj = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any],
                  let result = (obj["data"] as? [String: Any])?["result"] as? [[String: Any]],
                  let value = result.first?["value"] as? [Any], let v = value.last as? String else { return false }
            promValue = v
            return Int(v) == readAlerts(alerts).count
        }
        #expect(seen, "Prometheus says \(promValue), the agent wrote \(readAlerts(alerts).count)")
        #expect(count >= 1)
        let (_, silencedBody) = Self.get("http://127.0.0.1:\(promPort)/api/v1/query?query=minewatch_alerts_silenced_total")
        #expect(silencedBody.contains("backup-to-nas"), "\(silencedBody)")

        #expect(watch.wait(seconds: 60) { !watch.process.isRunning })
        let all = readAlerts(alerts)
        #expect(!all.contains { $0.containerID == backup }, "the exception silences the backup: \(all.filter { $0.containerID == backup })")
        #expect(watch.output.contains("silenced by exceptions: backup-to-nas 1"), "\(watch.output)")
        #expect(all.contains { $0.containerID == miner && $0["detector"] as? String == "pool-contact" && $0["severity"] as? String == "low"
            && ($0["container"] as? [String: Any])?["image"] as? String == tag })
        // Telemetry shows what was silenced.
        let tele = ((try? String(contentsOfFile: alerts, encoding: .utf8)) ?? "").split(separator: "\n")
            .compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            .filter { $0["type"] as? String == "telemetry" && ($0["container"] as? [String: Any])?["id"] as? String == backup }
        #expect(tele.contains { ($0["silenced"] as? [String])?.contains("backup-to-nas (pool-contact)") == true })

        // Every alert reached the receiver once, in the shape it checks (after one 503 and a retry).
        let events = ((try? String(contentsOfFile: received, encoding: .utf8)) ?? "").split(separator: "\n")
            .compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(events.count == all.count, "\(events.count) events for \(all.count) alerts")
        #expect(events.allSatisfy { ($0["problems"] as? [String])?.isEmpty == true }, "\(events.compactMap { $0["problems"] })")
        let fields = events.compactMap { ($0["event"] as? [String: Any])?["output_fields"] as? [String: Any] }
        #expect(fields.contains { $0["container.id"] as? String == String(miner.prefix(12)) && $0["fd.rip"] as? String == "198.18.1.200" && $0["fd.rport"] as? Int == 3333 })
        #expect(events.allSatisfy { ($0["event"] as? [String: Any])?["source"] as? String == "minewatch" })

        // And as OCSF Detection Findings.
        let findings = ((try? String(contentsOfFile: ocsf, encoding: .utf8)) ?? "").split(separator: "\n")
            .compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(findings.count == all.count)
        #expect(findings.allSatisfy { $0["class_uid"] as? Int == 2004 && $0["type_uid"] as? Int == 200401 })
    }

    /// The example alerting rules in the README pass promtool's checks.
    @Test func exampleAlertingRulesAreValid() throws {
        try requireTools(["promtool"])
        let r = try TestSupport.run(["promtool", "check", "rules", repositoryPath("deploy/prometheus/minewatch-alerts.yaml")])
        #expect(r.status == 0, "\(String(decoding: r.out, as: UTF8.self)) \(r.err)")
    }
}

/// SIGHUP reloads the config and the rules: a bad file keeps the old one and says why; a good
/// one takes effect (a new exception, a detector switched off) while every container keeps its
/// state (a miner that alerted before is not alerted again).
@Suite(.serialized) struct ReloadTests {
    @Test func sighupReloadsAndKeepsState() throws {
        try Podman.require()
        let lab = try WorkloadLab("reload")
        defer { lab.cleanup() }
        let dir = lab.dir
        let alerts = dir.path + "/alerts.jsonl"
        let rules = fixturePath("behaviour-only-rules.yaml")
        let good = """
        interval: 1s
        capture: false
        bundled_rules: false
        rules: [\(rules)]
        outputs: {jsonl: {path: \(alerts)}}
        """
        let config = try dir.file("minewatch.yaml", Array(good.utf8))
        let watch = try BackgroundProcess([minewatchBinary(), "watch", "--config", config, "--duration", "40s"], label: "reload-watch")
        defer { watch.stop() }
        let miner = try lab.container("miner", options: Podman.hostMounts, command: [lab.tag, "/bin/sh", "-c",
            "/usr/local/bin/svc stratum-pool --listen 127.0.0.1:3333 --duration 45 & sleep 0.5; " +
            "exec /usr/local/bin/svc stratum-miner --pool 127.0.0.1:3333 --dialect monero --wallet x --duration 45"])
        #expect(watch.wait(seconds: 20) { readAlerts(alerts).contains { $0.containerID == miner && $0["detector"] as? String == "pool-contact" } }, "\(watch.output)")
        let pid = watch.process.processIdentifier

        // A broken file: the old configuration stays, and stderr says where the file is wrong.
        try Data("interval: 1s\ncolour: red\n".utf8).write(to: URL(fileURLWithPath: config))
        kill(pid, SIGHUP)
        #expect(watch.wait(seconds: 10) { watch.output.contains("keeping the configuration in force") }, "\(watch.output)")
        #expect(watch.output.contains("\(config):2: colour: unknown key"))

        // A good one: an exception and a detector switched off take effect, state is kept.
        try Data((good + """

        detectors: {drift: false}
        exceptions:
          - {name: later, reason: a test, container: "nothing-*", detector: [relay]}
        """).utf8).write(to: URL(fileURLWithPath: config))
        kill(pid, SIGHUP)
        #expect(watch.wait(seconds: 10) { watch.output.contains("reload: ") && watch.output.contains("1 exceptions, 1 detectors off; per-container state kept") }, "\(watch.output)")
        usleep(4_000_000)
        kill(pid, SIGTERM)
        #expect(watch.wait(seconds: 15) { !watch.process.isRunning })
        let mine = readAlerts(alerts).filter { $0.containerID == miner }
        let detectors = mine.compactMap { $0["detector"] as? String }
        #expect(detectors.count == Set(detectors).count, "alerted again after reload: \(detectors)")
        #expect(detectors.contains("pool-contact"))
    }
}
