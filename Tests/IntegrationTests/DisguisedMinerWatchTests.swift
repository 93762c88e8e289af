import Foundation
import Testing
import TestSupport

/// `watch` names a disguised XMRig within seconds of mining, whatever the disguise: real XMRig
/// (Debian 13's build) mining over TLS on 443 to the workload pool on a test network
/// (198.18.1.160/27), rebranded (every "xmrig" renamed), packed by this repository's own packer
/// (decrypted into anonymous memory and run by its own loader), launched from a memfd, and the
/// plain build throttled to a quarter core; and a packed one whose loader sleeps before it
/// unpacks, with no pool (so never busy), named when it unpacks. Each is named XMRig or RandomX, high or critical:
/// by the algorithm constants in its file or its memory, and by RandomX's run-time signature
/// (rounding modes, memory shape) with CPU at its limit. Honest CPU-bound containers (compression,
/// a numeric job over 256 MiB of random doubles, a C build) at their limit stay quiet.
@Suite(.serialized) struct DisguisedMinerWatchTests {
    static let sleeperDelay = 8

    @Test func disguisedXMRigNamedWithinSecondsHonestCPUQuiet() throws {
        try Podman.require()
        try UPXTools.require()
        try prerequisite(getuid() == 0, "root is required under CI=true (ptrace and process_vm_readv of containers)")
        try requireTools(["openssl"])
        let lab = try WorkloadLab("disguise")
        defer { lab.cleanup() }
        let certs = try lab.certificates(commonName: "pool.disguise.example")
        _ = try lab.createNetwork(subnet: "198.18.1.160/27")
        // The miners' image: XMRig's Debian 13 root; the disguised builds and the config beside it.
        let xmrigTag = "localhost/mw-it-xmrig:\(lab.run)"
        try Podman.importRootfs(UPXTools.xmrigRoot, tag: xmrigTag)
        lab.adopt(image: xmrigTag)
        let files = lab.dir.path + "/miners"
        try FileManager.default.createDirectory(atPath: files, withIntermediateDirectories: true)
        let original = Array(try Data(contentsOf: URL(fileURLWithPath: UPXTools.xmrig("amd64"))))
        let rebranded = try lab.dir.file("miners/sysupdate", Disguises.rebrand(original), mode: 0o755)
        let packer = try Packer.build(in: lab.dir)
        try Packer.pack(packer, rebranded, to: files + "/svc-helper")
        try Packer.pack(packer, rebranded, to: files + "/launcher", memfd: true)
        try Packer.pack(packer, rebranded, to: files + "/late-helper", delay: Self.sleeperDelay)
        // What attackers ship: the pool and settings in a config file, nothing telling on the command line.
        _ = try lab.dir.file("miners/app.json", Array("""
            {"autosave": false, "background": false, "colors": false, "donate-level": 0, "print-time": 60,
             "cpu": {"enabled": true, "huge-pages": false, "max-threads-hint": 50},
             "randomx": {"mode": "light", "init": 1},
             "pools": [{"url": "198.18.1.162:443", "tls": true, "user": "4AdUndXHHZ6cfufTMvppY6JwXNouMBzSkbLYfpAV5Usx3skxNgYeYTRj5UzqtReoS44qo9mtmXCqY45DJ852K5Jv2684Rge", "pass": "x", "keepalive": true}]}
            """.utf8))
        _ = try run(["chmod", "-R", "a+rX", files])
        _ = try lab.start("pool", ip: "198.18.1.162", options: ["-v", "\(certs):/certs:ro"],
                          ["stratum-pool", "--listen", "198.18.1.162:443", "--tls-cert", "/certs/cert.pem", "--tls-key", "/certs/key.pem",
                           "--job-every", "5", "--target", "028f5c28", "--duration", "80"])
        // The workload program (the pool, the honest jobs) carries miner strings of its own: only
        // the algorithm rules (and the verdicts) judge files here, as no string rule could; the
        // image-integrity rules name a packed file, which has its memory read from its start.
        let bundled = fixturePath("../../Sources/MinewatchSignatures/Rules")
        let rules = ["--no-bundled-rules", "--rules", fixturePath("behaviour-only-rules.yaml"), "--rules", bundled + "/05-image-integrity.yaml",
                     "--rules", bundled + "/15-algorithm-constants.yaml", "--rules", bundled + "/80-verdicts.yaml"]
        let (w, out) = try lab.watch("watch", seconds: 50, ["--interval", "1s", "--no-capture"] + rules)
        defer { w.stop() }
        usleep(2_500_000)
        let miners: [(String, String, String)] = [
            ("rebranded", "/m/sysupdate", "0.5"), ("packed", "/m/svc-helper", "0.5"), ("memfd", "/m/launcher", "0.5"), ("throttled", "/usr/bin/xmrig", "0.25"),
        ]
        var ids: [String: String] = [:]
        for (role, exe, cpus) in miners {
            ids[role] = try lab.container(role, options: ["--cpus", cpus, "-v", "\(files):/m:ro"], command: [xmrigTag, exe, "-c", "/m/app.json"])
        }
        // A loader that sleeps before it unpacks, with no pool to mine for (so never hot): its
        // memory holds nothing at its first look; named when it unpacks, not when it mines.
        let sleeper = try lab.container("sleeper", network: "none", options: ["--cpus", "0.5", "-v", "\(files):/m:ro"],
                                        command: [xmrigTag, "/m/late-helper", "-c", "/m/app.json"])
        var honest: [String: String] = [:]
        honest["compress"] = try lab.start("compress", network: "none", options: ["--cpus", "0.5"], ["compress", "--duration", "45"])
        honest["numeric"] = try lab.start("numeric", network: "none", options: ["--cpus", "0.5"], ["numeric", "--duration", "45"])
        let build = "i=0; while [ $i -lt 400 ]; do printf 'static double f%d(double x){return x*%d.5+1;}\\nint g(void){return (int)f%d(2.0);}\\n' $i $i $i > /tmp/u$i.c;"
            + " gcc -O2 -c /tmp/u$i.c -o /tmp/u$i.o || exit 1; i=$((i+1)); done"
        honest["build"] = try lab.container("build", network: "none", options: Podman.hostMounts + ["--cpus", "0.5", "--tmpfs", "/tmp"],
                                            command: [lab.tag, "/bin/sh", "-c", build])
        #expect(w.wait(seconds: 70) { !w.process.isRunning }, "watch did not finish")
        let alerts = readAlerts(out)
        if let keep = ProcessInfo.processInfo.environment["MW_KEEP_OUTPUT"] {
            _ = try? run(["cp", out, keep])
            for role in ["packed", "build", "numeric", "compress"] { _ = try? run(["sh", "-c", "podman logs \(lab.name(role)) > \(keep)/\(role).log 2>&1"]) }
        }
        var report: [String] = []
        for (role, _, _) in miners {
            guard let id = ids[role], let started = Podman.startedAt(id) else { Issue.record("\(role) did not start"); continue }
            let mine = alerts.filter { ($0["container"] as? [String: Any])?["id"] as? String == id }
            let named = mine.filter { a in
                ["high", "critical"].contains(a["severity"] as? String ?? "") && ["xmrig", "randomx"].contains(a["family"] as? String ?? "")
            }
            let first = named.compactMap { ($0["detectedAt"] as? String).flatMap { ISO8601DateFormatter().date(from: $0) } }.min()
            let after = first.map { $0.timeIntervalSince(started) }
            report.append("\(role): \(mine.map { "\($0["detector"] ?? "") \($0["severity"] ?? "") \($0["family"] ?? "")" }) first named after \(after.map { String(format: "%.1f s", $0) } ?? "never")")
            #expect(after.map { $0 <= 12 } == true, "\(role) not named XMRig/RandomX high or critical within 12 s of its start: \(report.last ?? "")")
            // The run-time signature needs no file: RandomX named by the CPU detector too.
            #expect(mine.contains { $0["detector"] as? String == "cpu-miner" && $0["family"] as? String == "randomx" }, "\(role): \(report.last ?? "")")
        }
        if let started = Podman.startedAt(sleeper) {
            let named = alerts.filter { a in
                (a["container"] as? [String: Any])?["id"] as? String == sleeper && a["detector"] as? String == "miner-process"
                    && a["severity"] as? String == "critical" && a["family"] as? String == "xmrig"
            }
            let first = named.compactMap { ($0["detectedAt"] as? String).flatMap { ISO8601DateFormatter().date(from: $0) } }.min()
            let after = first.map { $0.timeIntervalSince(started) }
            report.append("sleeper (\(Self.sleeperDelay) s): first named after \(after.map { String(format: "%.1f s", $0) } ?? "never")")
            #expect(after.map { $0 >= Double(Self.sleeperDelay) - 1 && $0 <= Double(Self.sleeperDelay) + 12 } == true,
                    "a loader that unpacks \(Self.sleeperDelay) s after its start is named within 12 s of unpacking: \(report.last ?? "")")
        } else {
            Issue.record("sleeper did not start")
        }
        if let id = ids["packed"] {
            let fromMemory = alerts.first { ($0["container"] as? [String: Any])?["id"] as? String == id && $0["detector"] as? String == "miner-process" }
            let ev = (fromMemory?["evidence"] as? [[String: Any]]) ?? []
            #expect(fromMemory?["severity"] as? String == "critical" && ev.contains { ($0["name"] as? String ?? "").hasSuffix(":mapping") },
                    "packed: \(String(describing: fromMemory))")
        }
        for (role, id) in honest {
            let mine = alerts.filter { ($0["container"] as? [String: Any])?["id"] as? String == id }
            #expect(mine.allSatisfy { ($0["severity"] as? String).map { ["info", "low"].contains($0) } ?? false },
                    "\(role) alerted: \(mine.map { "\($0["detector"] ?? "") \($0["severity"] ?? "") \($0["summary"] ?? "")" })")
        }
        print("disguised XMRig in watch: " + report.joined(separator: "; "))
    }
}
