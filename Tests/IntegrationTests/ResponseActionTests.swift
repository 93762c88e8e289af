import Foundation
import Testing
import TestSupport

/// `watch --action` against real containers: the miner-process detector finds the repository's
/// Stratum miner (its executable carries the protocol strings the bundled rules know) and the
/// action really freezes the cgroup, kills the process, or stops the container through podman's
/// Docker-compatible API; --dry-run leaves the container running. Each run is limited to its own
/// container with --container so that concurrent tests are never touched.
@Suite(.serialized) struct ResponseActionTests {
    /// A miner watched on its own: the pool runs in a container of its own (no network) and the
    /// miner joins its network namespace, so the watched container holds only the miner, as pid 1
    /// from its start; the alert, and so a kill, can name no other process.
    static func miner(_ lab: WorkloadLab, _ role: String) throws -> String {
        let pool = try lab.start(role + "-pool", ["stratum-pool", "--listen", "127.0.0.1:3333", "--duration", "60"])
        return try lab.start(role, network: "container:\(pool)",
                             ["stratum-miner", "--pool", "127.0.0.1:3333", "--dialect", "monero", "--wallet", "x", "--duration", "60"])
    }

    /// Runs watch on one container until it ends; returns its alerts.
    static func watch(_ lab: WorkloadLab, _ id: String, _ args: [String], seconds: Int = 6) throws -> [[String: Any]] {
        let out = lab.dir.path + "/alerts-\(UUID().uuidString.prefix(6)).jsonl"
        let r = try run([minewatchBinary(), "watch", "--interval", "1", "--duration", String(seconds), "--output", out, "--container", id] + args)
        #expect(r.status == 0, "watch: \(r.err)")
        return readAlerts(out)
    }

    static func response(_ alerts: [[String: Any]]) -> [String: Any]? {
        alerts.compactMap { $0["response"] as? [String: Any] }.first
    }

    @Test func freezeKillStopAndDryRun() throws {
        try Podman.require()
        let lab = try WorkloadLab("act")
        defer { lab.cleanup() }

        // freeze: the container's freezer cgroup is FROZEN and its CPU time stops moving.
        let frozen = try Self.miner(lab, "freeze")
        let fa = try Self.watch(lab, frozen, ["--action", "freeze", "--act-on", "high"])
        let fr = try #require(Self.response(fa), "no response: \(fa)")
        #expect(fr["ok"] as? Bool == true && fr["result"] as? String == "frozen", "\(fr)")
        let cg = "/sys/fs/cgroup/freezer/libpod_parent/libpod-\(frozen)/freezer.state"
        let v2 = "/sys/fs/cgroup/libpod_parent/libpod-\(frozen)/cgroup.freeze"
        let state = (try? String(contentsOfFile: cg, encoding: .utf8)) ?? (try? String(contentsOfFile: v2, encoding: .utf8)) ?? ""
        #expect(state.hasPrefix("FROZEN") || state.hasPrefix("1"), "freezer state: \(state)")
        let usage = "/sys/fs/cgroup/cpuacct/libpod_parent/libpod-\(frozen)/cpuacct.usage"
        if let a = try? String(contentsOfFile: usage, encoding: .utf8) {
            usleep(1_500_000)
            #expect(a == (try? String(contentsOfFile: usage, encoding: .utf8)), "a frozen miner used CPU")
        }
        try? "THAWED".write(toFile: cg, atomically: false, encoding: .utf8)

        // kill: the miner (the container's only process) dies, so the container exits.
        let killed = try Self.miner(lab, "kill")
        let ka = try Self.watch(lab, killed, ["--action", "kill", "--act-on", "critical"])
        let kr = try #require(Self.response(ka), "no response: \(ka)")
        #expect(kr["ok"] as? Bool == true && kr["result"] as? String == "killed", "\(kr)")
        #expect((kr["target"] as? String)?.contains("svc") == true, "\(kr)")
        var exited = false
        let until = Date().addingTimeInterval(20)  // podman notices through conmon; slow on a busy machine
        while !exited && Date() < until {
            exited = Podman.inspect(killed, "{{.State.Running}}") == "false"
            if !exited { usleep(200_000) }
        }
        #expect(exited, "killed miner's container still running: \(kr), processes: \(Podman.top(killed))")

        // dry run: says what it would do, the container keeps running.
        let spared = try Self.miner(lab, "dry")
        let da = try Self.watch(lab, spared, ["--action", "kill", "--dry-run"])
        let dr = try #require(Self.response(da), "no response: \(da)")
        #expect(dr["dryRun"] as? Bool == true && (dr["result"] as? String)?.hasPrefix("would kill pid") == true, "\(dr)")
        #expect(Podman.inspect(spared, "{{.State.Running}}") == "true")

        // stop: through the engine API (podman's Docker-compatible socket).
        let sock = lab.dir.path + "/podman.sock"
        let api = try BackgroundProcess(["podman", "system", "service", "--time=0", "unix://\(sock)"], label: "podman-api")
        defer { api.stop() }
        #expect(api.wait { FileManager.default.fileExists(atPath: sock) })
        let stopped = try Self.miner(lab, "stop")
        let sa = try Self.watch(lab, stopped, ["--action", "stop", "--engine-socket", sock], seconds: 8)
        let sr = try #require(Self.response(sa), "no response: \(sa)")
        #expect(sr["ok"] as? Bool == true && sr["result"] as? String == "stopped", "\(sr)")
        #expect(Podman.inspect(stopped, "{{.State.Status}}") == "exited")
    }
}
