import Foundation
import Testing
import TestSupport

/// The agent's history and dashboard for real: an agent with `--history` and `--dashboard`
/// watches a bandwidth miner (PacketCrypt-style announcements to two pools, low CPU) and a
/// CPU-bound benign container; headless Chromium renders the page and the test reads the DOM
/// (both points, the miner marked with its detector) and saves a screenshot; `minewatch history`
/// answers what the miner was doing before its alert.
@Suite(.serialized) struct DashboardTests {
    static func chromium() -> String? {
        ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    @Test func dashboardInABrowserAndHistoryOffline() throws {
        try Podman.require()
        let found = Self.chromium()
        try prerequisite(found != nil, "chromium is missing (scripts/install-deps installs it)")
        // The miner is named by its packets (capture needs root): without them an announcement
        // miner is only an upload-heavy trait.
        try prerequisite(getuid() == 0, "root is required under CI=true for packet capture")
        let browser = try #require(found)
        let lab = try WorkloadLab("dash")
        defer { lab.cleanup() }
        try lab.createNetwork(subnet: "198.18.1.160/27")
        let dir = lab.dir
        _ = try lab.start("pool1", ip: "198.18.1.170", ["ann-handler", "--listen", "198.18.1.170:80", "--duration", "120"])
        _ = try lab.start("pool2", ip: "198.18.1.171", ["ann-handler", "--listen", "198.18.1.171:80", "--duration", "120"])
        let port = freeLoopbackPort()
        let history = dir.path + "/history.db"
        // podman's Docker-compatible API names the containers.
        let sock = dir.path + "/podman.sock"
        let api = try BackgroundProcess(["podman", "system", "service", "--time=0", "unix://\(sock)"], label: "podman-api")
        defer { api.stop() }
        #expect(api.wait { FileManager.default.fileExists(atPath: sock) })
        let watch = try BackgroundProcess([minewatchBinary(), "watch", "--interval", "1s", "--duration", "75s", "--output", dir.path + "/alerts.jsonl",
                                           "--no-bundled-rules", "--rules", fixturePath("behaviour-only-rules.yaml"),
                                           "--engine-socket", sock, "--history", history, "--dashboard", "--listen", "127.0.0.1:\(port)"], label: "dash-watch")
        defer { watch.stop() }
        #expect(watch.wait { loopbackPortOpen(port) }, "\(watch.output)")
        let miner = try lab.start("miner", ["ann-miner", "--pool", "http://198.18.1.170", "--pool", "http://198.18.1.171",
                                        "--paymentaddr", "pkt1qquyqjzstpsxsurcszyfpx9q4zct3sxg6z52rdt", "--rate", "300", "--duration", "110"])
        // CPU-bound and honest: a compressor at its 0.5-core limit.
        let busy = try lab.start("build", options: ["--cpus", "0.5"], ["compress", "--threads", "1", "--duration", "110"])
        #expect(watch.wait(seconds: 60) { readAlerts(dir.path + "/alerts.jsonl").contains { $0.containerID == miner && $0["detector"] as? String == "bandwidth-miner" } },
                "\(readAlerts(dir.path + "/alerts.jsonl").map { $0["summary"] ?? "" })")
        usleep(3_000_000)

        // The page in a real browser: both points, the miner marked with its detector.
        let url = "http://127.0.0.1:\(port)/"
        let flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars", "--no-first-run",
                     "--user-data-dir=\(dir.path)/chromium", "--virtual-time-budget=15000"]
        let dom = try TestSupport.run(["timeout", "120", browser] + flags + ["--dump-dom", url])
        let html = String(decoding: dom.out, as: UTF8.self)
        #expect(dom.status == 0, "\(dom.err.suffix(1500))")
        func point(_ id: String) -> String? {
            guard let r = html.range(of: "<circle[^>]*data-id=\"\(id)\"[^>]*>", options: .regularExpression) else { return nil }
            return String(html[r])
        }
        let minerPoint = point(miner), busyPoint = point(busy)
        #expect(minerPoint?.contains("class=\"point alerted") == true, "miner point: \(minerPoint ?? "absent") in \(html.prefix(3000))")
        #expect(minerPoint?.range(of: "data-detectors=\"[^\"]*bandwidth-miner", options: .regularExpression) != nil, "\(minerPoint ?? "")")
        #expect(busyPoint != nil && busyPoint?.contains("alerted") == false, "benign point: \(busyPoint ?? "absent")")
        // Where the point makes its case: the miner low on CPU and high on upload, the build the other way round.
        func attr(_ tag: String?, _ name: String) -> Double? {
            guard let tag, let r = tag.range(of: "\(name)=\"[0-9.]+\"", options: .regularExpression) else { return nil }
            return Double(tag[r].dropFirst(name.count + 2).dropLast())
        }
        if let mx = attr(minerPoint, "cx"), let my = attr(minerPoint, "cy"), let bx = attr(busyPoint, "cx"), let by = attr(busyPoint, "cy") {
            #expect(mx < bx && my < by, "miner at (\(mx), \(my)), build at (\(bx), \(by)): the miner should be left of and above the build")
        } else {
            Issue.record("no coordinates: \(minerPoint ?? "") \(busyPoint ?? "")")
        }
        #expect(html.contains("bandwidth-miner</td>"), "the alert list shows the alert")
        #expect(html.contains("data-series=\"uploadBytesPerSecond\""), "the selected container's timeline is drawn")
        // A screenshot for the README (kept under .build, copied to docs/ by hand).
        let shotDir = repositoryPath(".build/test-artifacts")
        try FileManager.default.createDirectory(atPath: shotDir, withIntermediateDirectories: true)
        let shot = shotDir + "/dashboard.png"
        try? FileManager.default.removeItem(atPath: shot)
        let png = try TestSupport.run(["timeout", "120", browser] + flags + ["--window-size=1400,1250", "--screenshot=\(shot)", url])
        #expect(png.status == 0 && ((try? Data(contentsOf: URL(fileURLWithPath: shot)))?.prefix(4) == Data([0x89, 0x50, 0x4e, 0x47])), "\(png.err.suffix(1000))")

        // The history, offline while the agent still writes it.
        let alerts = try TestSupport.run([minewatchBinary(), "history", "alerts", "--history", history, "--since", "10m", "--format", "json"])
        #expect(alerts.status == 0, "\(alerts.err)")
        let obj = try JSONSerialization.jsonObject(with: Data(alerts.out)) as? [String: Any]
        let list = (obj?["alerts"] as? [[String: Any]]) ?? []
        #expect(list.contains { ($0["container"] as? [String: Any])?["id"] as? String == miner && $0["detector"] as? String == "bandwidth-miner" })
        #expect(!list.contains { ($0["container"] as? [String: Any])?["id"] as? String == busy })
        let report = try TestSupport.run([minewatchBinary(), "history", "container", "--history", history, "--per-pass", lab.name("miner")])
        let text = String(decoding: report.out, as: UTF8.self)
        #expect(report.status == 0, "\(report.err)")
        #expect(text.contains("container \(miner)") && text.contains("ALERT high bandwidth-miner"), "\(text.prefix(3000))")
        // Before the alert the table shows what it was doing: uploading, with its destinations.
        let beforeAlert = text.components(separatedBy: "ALERT").first ?? ""
        #expect(beforeAlert.contains("198.18.1.170:80 out") || beforeAlert.contains("198.18.1.171:80 out"), "\(beforeAlert.suffix(1500))")
        let missing = try TestSupport.run([minewatchBinary(), "history", "container", "--history", history, "no-such-container"])
        #expect(missing.status == 1 && missing.err.contains("no container no-such-container"))
        #expect(watch.wait(seconds: 60) { !watch.process.isRunning })
    }

    /// SIGKILL while the agent writes: the file is never corrupt, and a restarted agent goes on
    /// with the same file.
    @Test func killedMidWriteTheHistoryStaysSound() throws {
        try Podman.require()
        let lab = try WorkloadLab("crash")
        defer { lab.cleanup() }
        let dir = lab.dir
        for i in 0..<6 { try lab.container("\(i)", options: Podman.hostMounts, command: [lab.tag, "/bin/sleep", "120"]) }
        let history = dir.path + "/history.db"
        var lastSamples = 0
        for round in 0..<3 {
            let watch = try BackgroundProcess([minewatchBinary(), "watch", "--interval", "100ms", "--output", "/dev/null", "--telemetry", "--no-capture",
                                               "--history", history], label: "crash-watch")
            // Let it write for a while (a batch every pass), then kill it without warning. It must
            // have written first: on a loaded machine a debug build's start-up (rules compiled,
            // the first pass) can take longer than any fixed wait.
            let wrote = watch.wait(seconds: 60) {
                guard FileManager.default.fileExists(atPath: history) else { return false }
                let r = try? TestSupport.run(["sqlite3", history, "SELECT COUNT(*) FROM samples;"])
                return r.flatMap { Int(String(decoding: $0.out, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) }.map { $0 > lastSamples } ?? false
            }
            #expect(wrote, "round \(round): no samples written within 60 s")
            usleep(UInt32(300_000 + round * 350_000))
            kill(watch.process.processIdentifier, SIGKILL)
            watch.process.waitUntilExit()
            let check = try TestSupport.run(["sqlite3", history, "PRAGMA integrity_check; SELECT COUNT(*) FROM samples;"])
            let lines = String(decoding: check.out, as: UTF8.self).split(separator: "\n").map(String.init)
            #expect(check.status == 0 && lines.first == "ok", "round \(round): \(lines) \(check.err)")
            let samples = Int(lines.last ?? "") ?? 0
            #expect(samples > lastSamples, "round \(round): \(samples) samples after \(lastSamples)")
            lastSamples = samples
        }
        let reader = try TestSupport.run([minewatchBinary(), "history", "alerts", "--history", history, "--format", "json"])
        #expect(reader.status == 0, "\(reader.err)")
    }
}
