import Foundation
import Testing
import TestSupport

/// `minewatch watch` against real podman containers: a renamed, really mining XMRig-like process
/// (the repository's Stratum miner with XMRig's strings appended to its executable) is alerted by
/// the miner-process detector within the time bound; a benign container is not.
@Suite(.serialized) struct WatchTests {
    @Test func minerProcessAlertedBenignQuiet() throws {
        try Podman.require()
        let dir = try TempDir("watch")
        defer { dir.cleanup() }
        var exe = Array(try Data(contentsOf: URL(fileURLWithPath: workloadBinary())))
        exe += Array("\0XMRig/%s libuv/%s%s\0donate.v2.xmrig.com\0--cpu-affinity\0".utf8)
        _ = try dir.file("root/usr/local/sbin/kworker", exe, mode: 0o755)
        _ = try dir.file("root/etc/hostname", Array("w\n".utf8))
        let tag = "localhost/mw-watch:\(UUID().uuidString.prefix(8).lowercased())"
        try Podman.importRootfs(dir.path + "/root", tag: tag)
        defer { Podman.removeImage(tag) }
        let mounts = Podman.hostMounts
        let alerts = dir.path + "/alerts.jsonl"
        // podman's Docker-compatible API gives the alert a name and an image.
        let sock = dir.path + "/podman.sock"
        let api = try BackgroundProcess(["podman", "system", "service", "--time=0", "unix://\(sock)"], label: "podman-api")
        defer { api.stop() }
        #expect(api.wait { FileManager.default.fileExists(atPath: sock) })
        let watch = try BackgroundProcess([minewatchBinary(), "watch", "--interval", "1", "--duration", "20", "--output", alerts,
                                           "--engine-socket", sock], label: "watch")
        defer { watch.stop() }
        usleep(1_000_000)
        let minerName = "mw-watch-miner-\(UUID().uuidString.prefix(6).lowercased())"
        let benignName = "mw-watch-benign-\(UUID().uuidString.prefix(6).lowercased())"
        let drifterName = "mw-watch-drift-\(UUID().uuidString.prefix(6).lowercased())"
        defer { _ = try? run(["podman", "rm", "-f", "-t", "0", minerName, benignName, drifterName]) }
        let benignID = try Podman.runDetached(["--network", "none", "--name", benignName] + mounts + [tag, "/bin/sleep", "30"])
        let minerID = try Podman.runDetached(["--network", "none", "--name", minerName] + mounts + [tag, "/bin/sh", "-c",
            "/usr/local/sbin/kworker stratum-pool --listen 127.0.0.1:3333 --duration 30 & sleep 0.5; " +
            "exec /usr/local/sbin/kworker stratum-miner --pool 127.0.0.1:3333 --dialect monero --wallet x --duration 30"])
        // A binary written at run time and started from /var/tmp: drift.
        let drifterID = try Podman.runDetached(["--network", "none", "--name", drifterName] + mounts + [tag, "/bin/sh", "-c",
            "mkdir -p /var/tmp && cp /bin/sleep /var/tmp/kdevtmpfsi && exec /var/tmp/kdevtmpfsi 30"])
        // watch ends by itself (--duration); bounded wait.
        #expect(watch.wait(seconds: 40) { !watch.process.isRunning })
        let lines = ((try? String(contentsOfFile: alerts, encoding: .utf8)) ?? "").split(separator: "\n")
        let objs = lines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        let forMiner = objs.filter { ($0["container"] as? [String: Any])?["id"] as? String == minerID }
        // One alert per container per detector; as root the packets of its loopback Stratum session
        // (pool and miner in one container) add the protocol detector.
        let detectors = Set(forMiner.compactMap { $0["detector"] as? String })
        #expect(forMiner.count == detectors.count, "one alert per container per detector: \(objs)")
        #expect(detectors.isSuperset(of: ["miner-process", "pool-contact"]) && detectors.isSubset(of: ["miner-process", "pool-contact", "mining-protocol"]), "\(detectors)")
        if getuid() == 0 { #expect(detectors.contains("mining-protocol")) }
        let contact = forMiner.first { $0["detector"] as? String == "pool-contact" }
        #expect(contact?["severity"] as? String == "low")
        #expect((contact?["evidence"] as? [[String: Any]])?.contains { $0["value"] as? String == "127.0.0.1:3333" } == true)
        let a = try #require(forMiner.first { $0["detector"] as? String == "miner-process" })
        // Named by the executable's content: XMRig's strings, with their offsets.
        let ev = (a["evidence"] as? [[String: Any]]) ?? []
        #expect(ev.contains { ($0["name"] as? String)?.hasPrefix("MW-BIN-XMRIG:") == true && $0["offset"] is Int }, "\(ev)")
        #expect((a["container"] as? [String: Any])?["name"] as? String == minerName)
        #expect((a["container"] as? [String: Any])?["image"] as? String == tag)
        #expect(a["family"] as? String == "xmrig")
        #expect(a["severity"] as? String == "critical")
        // The file read, even when the process was sampled as the shell that then exec'd it.
        #expect((a["exe"] as? String)?.hasSuffix("/usr/local/sbin/kworker") == true, "\(a["exe"] ?? "nil"): \(a["summary"] ?? "")")
        let ttd = a["timeToDetect"] as? Double ?? 99
        #expect(ttd <= 5, "known miner process within 5 s, was \(ttd) s")
        #expect(!objs.contains { ($0["container"] as? [String: Any])?["id"] as? String == benignID }, "benign container alerted: \(objs.filter { ($0["container"] as? [String: Any])?["id"] as? String == benignID }.map { $0["summary"] ?? "" })")
        let drift = objs.filter { ($0["container"] as? [String: Any])?["id"] as? String == drifterID }
        #expect(drift.count == 1 && drift.first?["detector"] as? String == "drift", "\(drift)")
        let reasons = (drift.first?["evidence"] as? [[String: Any]])?.compactMap { $0["value"] as? String } ?? []
        #expect(reasons.contains("runs from /var/tmp/kdevtmpfsi"))
        #expect(reasons.contains { $0.contains("overlay upper layer") }, "\(reasons)")
    }
}

/// The cpu-miner detector with real CPU limits: a Stratum miner (an innocent name, no content
/// rules) pinned at its 0.25-core limit with a pool connection is alerted; a compressor at the same
/// limit with no other evidence is not. (A small limit, so the test holds while other tests load
/// both cores.)
@Suite(.serialized) struct CPUWatchTests {
    @Test func cpuMinerAtItsLimitAlertedCompressionQuiet() throws {
        try Podman.require()
        let lab = try WorkloadLab("cpu")
        defer { lab.cleanup() }
        let dir = lab.dir
        let miner = try lab.container("miner", options: ["--cpus", "0.25"] + Podman.hostMounts, command: [lab.tag, "/bin/sh", "-c",
            "/usr/local/bin/svc stratum-pool --listen 127.0.0.1:3333 --dialect bitcoin --duration 60 & sleep 0.3; " +
            "exec /usr/local/bin/svc stratum-miner --pool 127.0.0.1:3333 --dialect bitcoin --wallet x --duration 60"])
        let zip = try lab.start("zip", options: ["--cpus", "0.25"], ["compress", "--threads", "2", "--duration", "60"])
        let rules = fixturePath("behaviour-only-rules.yaml")
        let out = dir.path + "/alerts.jsonl"
        let r = try TestSupport.run([minewatchBinary(), "watch", "--interval", "2", "--duration", "40", "--output", out,
                                     "--no-bundled-rules", "--rules", rules, "--container", miner, "--container", zip])
        #expect(r.status == 0, "\(r.err)")
        let all = readAlerts(out)
        let cpu = try #require(all.first { $0.containerID == miner && $0["detector"] as? String == "cpu-miner" }, "\(all)")
        #expect(cpu["severity"] as? String == "high")
        let m = cpu["metrics"] as? [String: Double] ?? [:]
        #expect(m["limitCores"] == 0.25 && (m["cores"] ?? 0) >= 0.22 && (m["seconds"] ?? 0) >= 20, "\(m)")
        #expect(all.contains { $0.containerID == miner && $0["detector"] as? String == "pool-contact" })
        #expect(!all.contains { $0.containerID == zip }, "compression alerted: \(all.filter { $0.containerID == zip })")
    }
}
