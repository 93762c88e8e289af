import Foundation
import MinewatchModel
import MinewatchCore
import MinewatchHost
import MinewatchRuntime
import Testing
import TestSupport

/// The test double of the actuator: records what it was asked to do.
final class RecordingActuator: ResponseActuator, @unchecked Sendable {
    var calls: [String] = []
    var fail = false
    func freeze(cgroupPaths: [String: String]) throws(MinewatchError) -> String {
        calls.append("freeze \(cgroupPaths["freezer"] ?? cgroupPaths[""] ?? "?")")
        if fail { throw MinewatchError(.io, operation: "freeze", message: "read-only file system") }
        return "/sys/fs/cgroup/freezer\(cgroupPaths["freezer"] ?? "")/freezer.state"
    }
    func kill(pid: Int32, startTicks: UInt64) throws(MinewatchError) { calls.append("kill \(pid) \(startTicks)") }
    func stop(containerID: String) throws(MinewatchError) { calls.append("stop \(containerID)") }
}

@Suite struct ResponderTests {
    static let cid = String(repeating: "5e", count: 32)

    func sample(pid: Int32, container: String? = ResponderTests.cid) -> ProcessSample {
        ProcessSample(pid: pid, ppid: 1, comm: "m", exe: "/m", cmdline: ["/m"], startTicks: 4242, cpuTicks: 0,
                      container: container.map { ContainerRef(id: $0, runtime: .podman, cgroupPath: "/libpod_parent/libpod-\($0)") },
                      cgroupPaths: ["freezer": "/libpod_parent/libpod-\(container ?? "")"], netns: nil)
    }

    func alert(_ sev: Severity, pid: Int32? = 77, container: String = ResponderTests.cid) -> Alert {
        let t = Date()
        return Alert(time: t, container: .init(id: container, name: "c", image: "i", runtime: "podman"), detector: .bandwidthMiner,
                     severity: sev, family: nil, summary: "s", evidence: [], metrics: [:], pid: pid, exe: nil,
                     startedAt: t, detectedAt: t, timeToDetect: 0)
    }

    @Test func freezesOnceAtOrAboveActOn() {
        let act = RecordingActuator()
        let r = Responder(action: .freeze, actOn: .high, dryRun: false, actuator: act, ownContainer: nil, ownPid: 1)
        #expect(r.respond(to: alert(.medium), processes: [sample(pid: 77)]) == nil)
        let out = r.respond(to: alert(.high), processes: [sample(pid: 77)])
        #expect(out?.ok == true && out?.result == "frozen" && out?.action == "freeze")
        #expect(r.respond(to: alert(.critical), processes: [sample(pid: 77)]) == nil, "one freeze per container")
        #expect(act.calls == ["freeze /libpod_parent/libpod-\(Self.cid)"])
    }

    @Test func dryRunDoesNothing() {
        let act = RecordingActuator()
        for action in [ResponseAction.freeze, .kill, .stop] {
            let r = Responder(action: action, actOn: .low, dryRun: true, actuator: act, ownContainer: nil, ownPid: 1)
            let out = r.respond(to: alert(.high), processes: [sample(pid: 77)])
            #expect(out?.dryRun == true && out?.result.hasPrefix("would ") == true, "\(action)")
        }
        #expect(act.calls.isEmpty)
    }

    @Test func neverTheHostGroupNorItself() {
        let act = RecordingActuator()
        let r = Responder(action: .kill, actOn: .low, dryRun: false, actuator: act, ownContainer: Self.cid, ownPid: 1)
        #expect(r.respond(to: alert(.critical, container: "host"), processes: [sample(pid: 77, container: nil)])?.result.hasPrefix("refused") == true)
        #expect(r.respond(to: alert(.critical), processes: [sample(pid: 77)])?.result.hasPrefix("refused") == true)
        let r2 = Responder(action: .freeze, actOn: .low, dryRun: false, actuator: act, ownContainer: nil, ownPid: 78)
        #expect(r2.respond(to: alert(.critical), processes: [sample(pid: 77), sample(pid: 78)])?.result.contains("minewatch runs in this container") == true)
        #expect(act.calls.isEmpty)
    }

    @Test func killNeedsAProcessOfThatContainer() {
        let act = RecordingActuator()
        let r = Responder(action: .kill, actOn: .low, dryRun: false, actuator: act, ownContainer: nil, ownPid: 1)
        #expect(r.respond(to: alert(.high, pid: nil), processes: [sample(pid: 77)])?.ok == false)
        #expect(r.respond(to: alert(.high, pid: 99), processes: [sample(pid: 77)])?.ok == false)
        #expect(r.respond(to: alert(.high, pid: 77), processes: [sample(pid: 77)])?.result == "killed")
        #expect(act.calls == ["kill 77 4242"])
    }

    @Test func failuresAreReportedNotThrown() {
        let act = RecordingActuator()
        act.fail = true
        let r = Responder(action: .freeze, actOn: .low, dryRun: false, actuator: act, ownContainer: nil, ownPid: 1)
        let out = r.respond(to: alert(.high), processes: [sample(pid: 77)])
        #expect(out?.ok == false && out?.result.contains("read-only file system") == true)
    }

    @Test func hostActuatorWritesTheFreezerFiles() throws {
        let dir = try TempDir("cg")
        defer { dir.cleanup() }
        _ = try dir.file("freezer/libpod_parent/libpod-x/freezer.state", Array("THAWED\n".utf8))
        let a = HostActuator(cgroupRoot: dir.path, engine: nil)
        let file = try a.freeze(cgroupPaths: ["freezer": "/libpod_parent/libpod-x"])
        #expect(try String(contentsOfFile: file, encoding: .utf8) == "FROZEN")
        // cgroup v2: cgroup.freeze, then cgroup.events says frozen.
        let v2 = try TempDir("cg2")
        defer { v2.cleanup() }
        _ = try v2.file("cgroup.controllers", Array("cpu memory\n".utf8))
        _ = try v2.file("system.slice/docker-x.scope/cgroup.freeze", Array("0\n".utf8))
        _ = try v2.file("system.slice/docker-x.scope/cgroup.events", Array("populated 1\nfrozen 1\n".utf8))
        let f2 = try HostActuator(cgroupRoot: v2.path, engine: nil).freeze(cgroupPaths: ["": "/system.slice/docker-x.scope"])
        #expect(try String(contentsOfFile: f2, encoding: .utf8) == "1")
        // No cgroup: a clear error.
        #expect(throws: MinewatchError.self) { try a.freeze(cgroupPaths: [:]) }
        // Kill refuses a pid whose start time changed (pid reuse).
        #expect(throws: MinewatchError.self) { try a.kill(pid: getpid(), startTicks: 1) }
    }
}
