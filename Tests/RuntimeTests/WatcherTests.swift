import Foundation
import MinewatchCore
import MinewatchModel
import MinewatchHost
@testable import MinewatchRuntime
import MinewatchSignatures
import Synchronization
import Testing
import TestSupport

/// A fake /proc (the test double of the procfs reader): one directory per pid with the files the
/// reader uses, and `exe` as a symlink to a file of the test's choosing.
struct FakeProc {
    let dir: TempDir
    var root: String { dir.path + "/proc" }

    init() throws {
        dir = try TempDir("proc")
        _ = try dir.file("proc/uptime", Array("1000.00 900.00\n".utf8))
    }

    func add(pid: Int32, comm: String, cgroup: String, cmdline: [String], env: [String] = [], exe: [UInt8], startTicks: Int = 90000,
             netns: Int = 4026531992, tcp: String? = nil, exeLink: String? = nil, mountinfo: String? = nil) throws {
        let stat = "\(pid) (\(comm)) S 1 \(pid) \(pid) 0 -1 0 0 0 0 0 500 20 0 0 20 0 1 0 \(startTicks) 1000 100 0"
        _ = try dir.file("proc/\(pid)/stat", Array(stat.utf8))
        _ = try dir.file("proc/\(pid)/cgroup", Array("0::\(cgroup)\n".utf8))
        _ = try dir.file("proc/\(pid)/cmdline", Array((cmdline.joined(separator: "\0") + "\0").utf8))
        _ = try dir.file("proc/\(pid)/environ", Array((env.joined(separator: "\0") + "\0").utf8))
        let bin = try dir.file("bins/\(pid)-\(comm)", exe, mode: 0o755)
        try FileManager.default.createSymbolicLink(atPath: "\(root)/\(pid)/exe", withDestinationPath: exeLink ?? bin)
        if let mountinfo { _ = try dir.file("proc/\(pid)/mountinfo", Array(mountinfo.utf8)) }
        try FileManager.default.createDirectory(atPath: "\(root)/\(pid)/ns", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: "\(root)/\(pid)/ns/net", withDestinationPath: "net:[\(netns)]")
        if let tcp { _ = try dir.file("proc/\(pid)/net/tcp", Array(tcp.utf8)) }
    }
}

@Suite struct WatcherTests {
    static let rules = CompiledRules(BundledRules.load().0)
    static let cid = String(repeating: "c0ffee00", count: 8)

    @Test func minerProcessAlertsOncePerContainer() throws {
        let proc = try FakeProc()
        try proc.add(pid: 100, comm: "kworker", cgroup: "/libpod_parent/libpod-\(Self.cid)", cmdline: ["/usr/sbin/kworker", "-B"],
                     exe: Samples.elf(Samples.xmrigStrings))
        try proc.add(pid: 101, comm: "nginx", cgroup: "/system.slice/nginx.service", cmdline: ["nginx"],
                     exe: Samples.elf(Samples.xmrigStrings))  // a host process: not watched by default
        try proc.add(pid: 102, comm: "sh", cgroup: "/docker/\(String(repeating: "ab", count: 32))", cmdline: ["sh"],
                     exe: Samples.elf(["GNU C Library"]))
        let clock = FixedClock(date: Date(timeIntervalSince1970: 2_000_000))
        let w = Watcher(rules: Self.rules, proc: ProcfsReader(root: proc.root), clock: clock)
        w.settings.scratchPrefixes = []  // the fake executables live under /tmp
        let alerts = w.poll()
        #expect(alerts.count == 1)
        let a = try #require(alerts.first)
        #expect(a.container.id == Self.cid && a.container.runtime == "podman")
        #expect(a.detector == .minerProcess && a.family == "xmrig" && a.severity == .critical)
        #expect(a.pid == 100)
        #expect(a.detectedAt == clock.date)
        #expect(a.evidence.contains { $0.name == "MW-BIN-XMRIG:banner" && $0.offset != nil })
        // The same process is not scanned again; another miner process in the same container adds no alert.
        try proc.add(pid: 103, comm: "kworker2", cgroup: "/libpod_parent/libpod-\(Self.cid)", cmdline: ["x"],
                     exe: Samples.elf(Samples.xmrigStrings, seed: 9))
        #expect(w.poll().isEmpty)
    }

    @Test func commandLineAndEnvironmentIndicators() throws {
        let proc = try FakeProc()
        let pkt = WalletEncoder.bech32(hrp: "pkt", program: Array(repeating: 3, count: 20))
        try proc.add(pid: 200, comm: "sugoi", cgroup: "/kubepods/burstable/pod0f0e0d0c-1111-2222-3333-444455556666/\(Self.cid)",
                     cmdline: ["./sugoi", "ann", "-p", pkt, "http://pool.pkt.world"], exe: Samples.elf(["nothing to see"]))
        try proc.add(pid: 201, comm: "app", cgroup: "/docker/\(String(repeating: "cd", count: 32))", cmdline: ["/app"],
                     env: ["PATH=/bin", "POOL_URL=stratum+tcp://198.18.1.2:3333", "WALLET=x"], exe: Samples.elf(["nothing"]))
        let w = Watcher(rules: Self.rules, proc: ProcfsReader(root: proc.root), clock: FixedClock(date: Date()))
        w.settings.scratchPrefixes = []  // the fake executables live under /tmp
        let alerts = w.poll().sorted { ($0.pid ?? 0) < ($1.pid ?? 0) }
        #expect(alerts.count == 2)
        #expect(alerts.first?.family == "packetcrypt")
        #expect(alerts.first?.evidence.contains { $0.kind == .wallet && $0.value == pkt } == true)
        #expect(alerts.first?.container.runtime == "kubernetes")
        #expect(alerts.last?.evidence.contains { $0.kind == .pool && $0.value == "stratum+tcp://198.18.1.2:3333" } == true)
    }

    @Test func poolContactIsOutboundOnlyAndLow() throws {
        let proc = try FakeProc()
        // Outbound 198.18.1.5:41234 -> 198.18.1.2:3333; a web server on 8080 with a client from 198.18.1.9.
        let tcp = """
          sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
           0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1
           1: 050112C6:A052 020112C6:0D05 01 00000000:00000000 00:00000000 00000000     0        0 2 1
           2: 050112C6:1F90 090112C6:C350 01 00000000:00000000 00:00000000 00000000     0        0 3 1
        """
        try proc.add(pid: 400, comm: "worker", cgroup: "/docker/\(Self.cid)", cmdline: ["worker"], exe: Samples.elf(["plain"]),
                     netns: 4026532001, tcp: tcp)
        let web = """
          sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
           0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1
           1: 050112C6:1F90 090112C6:C350 01 00000000:00000000 00:00000000 00000000     0        0 3 1
        """
        let other = String(repeating: "ef", count: 32)
        try proc.add(pid: 401, comm: "nginx", cgroup: "/docker/\(other)", cmdline: ["nginx"], exe: Samples.elf(["plain"]),
                     netns: 4026532002, tcp: web)
        let w = Watcher(rules: Self.rules, proc: ProcfsReader(root: proc.root), clock: FixedClock(date: Date()))
        w.settings.scratchPrefixes = []  // the fake executables live under /tmp
        let alerts = w.poll()
        #expect(alerts.count == 1, "\(alerts.map(\.summary))")
        let a = try #require(alerts.first)
        #expect(a.detector == .poolContact && a.severity == .low && a.container.id == Self.cid)
        #expect(a.evidence.map(\.value) == ["198.18.1.2:3333"])
        #expect(w.poll().isEmpty, "one alert per container per detector")
    }

    @Test func vanishedProcessesAndPidReuse() throws {
        let proc = try FakeProc()
        try proc.add(pid: 300, comm: "ok", cgroup: "/docker/\(Self.cid)", cmdline: ["ok"], exe: Samples.elf(["fine"]))
        let w = Watcher(rules: Self.rules, proc: ProcfsReader(root: proc.root), clock: FixedClock(date: Date()))
        w.settings.scratchPrefixes = []  // the fake executables live under /tmp
        #expect(w.poll().isEmpty)
        // pid 300 exits and the pid is reused by a miner (new start time): it is inspected again.
        try FileManager.default.removeItem(atPath: "\(proc.root)/300")
        #expect(w.poll().isEmpty, "a vanished process is no error")
        try proc.add(pid: 300, comm: "m", cgroup: "/docker/\(Self.cid)", cmdline: ["m"], exe: Samples.elf(Samples.cpuminerStrings, seed: 4), startTicks: 95000)
        #expect(w.poll().first?.family == "cpuminer")
    }

    @Test func execIntoAMinerIsNoticed() throws {
        // Same pid and start time (exec keeps both), new executable: inspected again.
        let proc = try FakeProc()
        let id = String(repeating: "e4", count: 32)
        try proc.add(pid: 800, comm: "sh", cgroup: "/docker/\(id)", cmdline: ["sh", "-c", "exec ./m"], exe: Samples.elf(["plain"]))
        let w = Watcher(rules: Self.rules, proc: ProcfsReader(root: proc.root), clock: FixedClock(date: Date()))
        w.settings.scratchPrefixes = []  // the fake executables live under /tmp
        #expect(w.poll().isEmpty)
        try FileManager.default.removeItem(atPath: "\(proc.root)/800")
        try proc.add(pid: 800, comm: "m", cgroup: "/docker/\(id)", cmdline: ["./m"], exe: Samples.elf(Samples.xmrigStrings, seed: 2))
        #expect(w.poll().first?.family == "xmrig")
    }

    @Test(arguments: [true, false]) func processThatJoinsAContainerAfterAPassIsWatched(largePidSpace: Bool) throws {
        // A container's first process starts outside it (the runtime's init) and joins its cgroup
        // before it execs the container's program; a pass that saw it before that saw a host
        // process. Seen in CI: a pass in that window left a miner container unwatched for good.
        let proc = try FakeProc()
        if largePidSpace { _ = try proc.dir.file("proc/sys/kernel/pid_max", Array("4194304\n".utf8)) }
        let id = String(repeating: "5a", count: 32)
        // uptime 1000 s: started 10 s ago (young), and an old host process (100 s).
        try proc.add(pid: 900, comm: "runc:[2:INIT]", cgroup: "/user.slice/user-0.slice/session-1.scope", cmdline: ["runc", "init"],
                     exe: Samples.elf(["plain"]), startTicks: 99_000)
        try proc.add(pid: 901, comm: "bash", cgroup: "/user.slice/user-0.slice/session-1.scope", cmdline: ["bash"], exe: Samples.elf(["plain"]))
        let w = Watcher(rules: Self.rules, proc: ProcfsReader(root: proc.root), clock: FixedClock(date: Date()))
        w.settings.scratchPrefixes = []  // the fake executables live under /tmp
        #expect(w.poll().isEmpty)
        #expect(w.poll().isEmpty)
        try FileManager.default.removeItem(atPath: "\(proc.root)/900")
        try proc.add(pid: 900, comm: "sysupdate", cgroup: "/libpod_parent/libpod-\(id)", cmdline: ["/m/sysupdate"],
                     exe: Samples.elf(Samples.xmrigStrings, seed: 5), startTicks: 99_000)
        let alerts = w.poll()
        #expect(alerts.count == 1 && alerts.first?.family == "xmrig" && alerts.first?.container.id == id && alerts.first?.pid == 900,
                "\(alerts.map(\.summary))")
    }
}

@Suite struct DriftTests {
    static let rules = CompiledRules(BundledRules.load().0)

    @Test func reasons() throws {
        let d = DriftDetector()
        #expect(d.reasons(exeLink: "/usr/bin/python3", upperDir: nil).isEmpty)
        #expect(d.reasons(exeLink: "/dev/shm/.x/kdevtmpfsi (deleted)", upperDir: nil).count == 2)
        #expect(d.reasons(exeLink: "/memfd:x (deleted)", upperDir: nil).first == "runs from a memfd (no file on disk)")
        let upper = try TempDir("upper")
        defer { upper.cleanup() }
        _ = try upper.file("usr/local/bin/dropped", Array("x".utf8))
        #expect(d.reasons(exeLink: "/usr/local/bin/dropped", upperDir: upper.path).first?.contains("overlay upper layer") == true)
        #expect(d.reasons(exeLink: "/usr/bin/env", upperDir: upper.path).isEmpty)
        let mi = "73 48 0:40 / / rw,relatime - overlay overlay rw,lowerdir=/a/l/X,upperdir=/var/lib/containers/storage/overlay/abc/diff,workdir=/w,uuid=on\n74 73 0:41 / /proc rw - proc proc rw\n"
        #expect(ProcParsers.overlayUpperDir(mi) == "/var/lib/containers/storage/overlay/abc/diff")
    }

    @Test func watcherAlertsOncePerContainer() throws {
        let proc = try FakeProc()
        let cid = String(repeating: "d1", count: 32)
        try proc.add(pid: 700, comm: "kdevtmpfsi", cgroup: "/docker/\(cid)", cmdline: ["/dev/shm/.x/kdevtmpfsi"], exe: [],
                     exeLink: "/dev/shm/.x/kdevtmpfsi (deleted)")
        try proc.add(pid: 701, comm: "kinsing", cgroup: "/docker/\(cid)", cmdline: ["/tmp/kinsing"], exe: [], exeLink: "/tmp/kinsing")
        let w = Watcher(rules: Self.rules, proc: ProcfsReader(root: proc.root), clock: FixedClock(date: Date()))
        let alerts = w.poll().filter { $0.detector == .drift }
        #expect(alerts.count == 1)
        #expect(alerts.first?.severity == .medium)
        #expect(alerts.first?.evidence.contains { $0.value == "its executable was deleted after it started" } == true)
    }
}

/// A process whose cgroup used no CPU since the last pass is not read again: it cannot have
/// exited, exec'd or renamed itself without running. Unless the last pass read it before it read
/// the cgroup's CPU time (a container's first process exec'ing its entrypoint just then).
@Suite struct IdleCgroupTests {
    /// A fake /proc and a cgroup v2 tree for one podman container: its id and cgroup path.
    static func container(_ id: String) throws -> (FakeProc, TempDir, String, String) {
        let proc = try FakeProc()
        let cg = try TempDir("cg")
        _ = try cg.file("cgroup.controllers", Array("cpu memory\n".utf8))
        return (proc, cg, id, "/libpod_parent/libpod-\(id)")
    }

    /// Sets the cgroup's CPU time (cpu.stat's usage_usec).
    static func usage(_ cg: TempDir, _ path: String, _ usec: Int) throws {
        _ = try cg.file(String(path.dropFirst()) + "/cpu.stat", Array("usage_usec \(usec)\nuser_usec 0\n".utf8))
    }

    @Test func processesOfAnIdleCgroupAreNotReadAgain() throws {
        let (proc, cg, id, path) = try Self.container(String(repeating: "1d1e", count: 16))
        defer { proc.dir.cleanup(); cg.cleanup() }
        func usage(_ usec: Int) throws { try Self.usage(cg, path, usec) }
        try usage(5000)
        // A pid space of 32,768 whose last pid handed out is 5000: pid 4100 is not handed out
        // again while the allocation does not move.
        _ = try proc.dir.file("proc/sys/kernel/pid_max", Array("32768\n".utf8))
        func allocation(last: Int, created: Int) throws {
            _ = try proc.dir.file("proc/loadavg", Array("0.10 0.20 0.30 1/300 \(last)\n".utf8))
            _ = try proc.dir.file("proc/stat", Array("cpu  1 2 3 4\nprocesses \(created)\n".utf8))
        }
        try allocation(last: 5000, created: 90000)
        try proc.add(pid: 4100, comm: "worker", cgroup: path, cmdline: ["/worker"], exe: Samples.elf(["plain"]))
        let clock = StepClock(Date(timeIntervalSince1970: 1_900_000_000))
        let sampler = HostSampler(proc: ProcfsReader(root: proc.root), cgroups: CgroupReader(root: cg.path), clock: clock, sockets: nil)
        func comm() -> String? { sampler.sample().containers.first { $0.ref.id == id }?.processes.first?.sample.comm }
        #expect(comm() == "worker")
        // The first pass read it before it read the cgroup's CPU time: an exec in between would
        // not show in that time, so the next pass reads it again though the cgroup stood still.
        _ = try proc.dir.file("proc/4100/stat", Array("4100 (execd) S 1 4100 4100 0 -1 0 0 0 0 0 600 20 0 0 20 0 1 0 90000 1000 100 0".utf8))
        clock.date += 2
        #expect(comm() == "execd")
        // Read after the cgroup's CPU time: the stat file says otherwise, but the cgroup's CPU
        // time did not move: not read.
        _ = try proc.dir.file("proc/4100/stat", Array("4100 (renamed) S 1 4100 4100 0 -1 0 0 0 0 0 600 20 0 0 20 0 1 0 90000 1000 100 0".utf8))
        clock.date += 2
        #expect(comm() == "execd")
        // The cgroup used CPU: read.
        try usage(5001)
        clock.date += 2
        #expect(comm() == "renamed")
        // The kernel handed out pids 5001...4200 (wrapping) since: 4100 may be another process
        // now (a zombie reaped, its pid reused by another container's process), read although
        // the cgroup is idle.
        _ = try proc.dir.file("proc/4100/stat", Array("4100 (reused) S 1 4100 4100 0 -1 0 0 0 0 0 600 20 0 0 20 0 1 0 90000 1000 100 0".utf8))
        try allocation(last: 4200, created: 90000 + 32000)
        clock.date += 2
        #expect(comm() == "reused")
        try allocation(last: 4200, created: 90000 + 32000)
        _ = try proc.dir.file("proc/4100/stat", Array("4100 (renamed) S 1 4100 4100 0 -1 0 0 0 0 0 600 20 0 0 20 0 1 0 90000 1000 100 0".utf8))
        clock.date += 2
        #expect(comm() == "reused", "no pid handed out since: idle, not read")
        // A cgroup whose CPU time cannot be read is never taken for idle.
        _ = try cg.file(String(path.dropFirst()) + "/cpu.stat", Array("unreadable\n".utf8))
        _ = try proc.dir.file("proc/4100/stat", Array("4100 (again) S 1 4100 4100 0 -1 0 0 0 0 0 600 20 0 0 20 0 1 0 90000 1000 100 0".utf8))
        clock.date += 2
        #expect(comm() == "again")
        clock.date += 2
        #expect(comm() == "again")
    }

    /// An idle container (its cgroup used no CPU since the last pass) whose namespace holds no
    /// TCP connection keeps the interface counters last read, for up to 30 s: nothing of it sent
    /// or took a byte. Read as soon as it runs.
    @Test func idleNamespacesWithoutConnectionsKeepTheirCounters() throws {
        let (proc, cg, id, path) = try Self.container(String(repeating: "1d2e", count: 16))
        defer { proc.dir.cleanup(); cg.cleanup() }
        func usage(_ usec: Int) throws { try Self.usage(cg, path, usec) }
        try usage(5000)
        try proc.add(pid: 4300, comm: "sleep", cgroup: path, cmdline: ["sleep", "3600"], exe: Samples.elf(["plain"]), netns: 4026535001)
        // Received packets only: the bridge's broadcasts (no TCP connection, no segment).
        func dev(rx: Int) throws { try SocketDumpTests.counters(proc, pid: 4300, rx: rx, tx: 3, opens: 0, established: 0) }
        try dev(rx: 10)
        let clock = StepClock(Date(timeIntervalSince1970: 1_900_000_000))
        let sampler = HostSampler(proc: ProcfsReader(root: proc.root), cgroups: CgroupReader(root: cg.path), clock: clock, sockets: nil)
        func rxPackets() -> UInt64? { sampler.sample().containers.first { $0.ref.id == id }?.interfaces?.rxPackets }
        #expect(rxPackets() == 10)
        // The bridge's broadcasts arrive; nothing of the container runs: the last counters stand.
        try dev(rx: 12)
        clock.date += 2
        #expect(rxPackets() == 10)
        clock.date += 20
        #expect(rxPackets() == 10)
        // 30 s after the last read: read again.
        clock.date += 10
        #expect(rxPackets() == 12)
        // It ran: read at once.
        try dev(rx: 15)
        try usage(5001)
        clock.date += 2
        #expect(rxPackets() == 15)
    }
}

/// A container none of whose tasks ran since the last pass, with no TCP connection, is "still":
/// its detectors saw it once so, and are not given it again until it moves; its telemetry still
/// moves every pass.
@Suite struct StillContainerTests {
    /// One idle container of one process in its own namespace (no connection), at 5000 µs of CPU.
    struct Fixture {
        let proc: FakeProc, cg: TempDir, id: String, path: String
        let clock = StepClock(Date(timeIntervalSince1970: 1_900_000_000))
        init(_ tag: String, pid: Int32, netns: Int, exe: [UInt8] = Samples.elf(["plain"]), exeLink: String? = nil) throws {
            (proc, cg, id, path) = try IdleCgroupTests.container(String(repeating: tag, count: 16))
            try usage(5000)
            try proc.add(pid: pid, comm: "sleep", cgroup: path, cmdline: ["sleep", "3600"], exe: exe, netns: netns, exeLink: exeLink)
            try SocketDumpTests.counters(proc, pid: pid, rx: 10, tx: 3, opens: 0, established: 0)
        }
        func usage(_ usec: Int) throws { try IdleCgroupTests.usage(cg, path, usec) }
        func cleanup() { proc.dir.cleanup(); cg.cleanup() }
        func watcher() -> Watcher {
            Watcher(rules: WatcherTests.rules, proc: ProcfsReader(root: proc.root), cgroups: CgroupReader(root: cg.path), clock: clock, sockets: nil)
        }
    }

    @Test func stillIsIdleUnchangedAndUnconnected() throws {
        let f = try Fixture("5711", pid: 4400, netns: 4026535101)
        defer { f.cleanup() }
        let (proc, cg, id, path, clock) = (f.proc, f.cg, f.id, f.path, f.clock)
        let usage = f.usage
        let sampler = HostSampler(proc: ProcfsReader(root: proc.root), cgroups: CgroupReader(root: cg.path), clock: clock, sockets: nil)
        func still() -> Bool? { sampler.sample().containers.first { $0.ref.id == id }?.still }
        #expect(still() == false, "the first pass: nothing to compare with")
        clock.date += 2
        #expect(still() == true)
        clock.date += 2
        #expect(still() == true)
        // It ran: not still.
        try usage(5001)
        clock.date += 2
        #expect(still() == false)
        clock.date += 2
        #expect(still() == true)
        // Its interface counters are read again 30 s after the last read: that pass is not still.
        clock.date += 30
        #expect(still() == false)
        clock.date += 2
        #expect(still() == true)
        // A second process (a new pid, `exec` into the container): new, so not still.
        try proc.add(pid: 4401, comm: "sh", cgroup: path, cmdline: ["sh"], exe: Samples.elf(["plain"]), netns: 4026535101)
        clock.date += 2
        #expect(still() == false)
        clock.date += 2
        #expect(still() == true)
        // A TCP connection (the namespace's counters moved, a socket listed): not still while it is open.
        _ = try proc.dir.file("proc/4400/net/tcp", Array("""
              sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
               0: 0200000A:A000 0100000A:0050 01 00000000:00000000 00:00000000 00000000     0        0 77001 1 0 0 10 0

            """.utf8))
        try SocketDumpTests.counters(proc, pid: 4400, rx: 20, tx: 13, opens: 1, established: 1)
        try usage(5002)
        clock.date += 2
        #expect(still() == false)
        clock.date += 2
        #expect(still() == false, "idle, but it holds a connection the kernel may still be moving bytes over")
    }

    /// A container whose processes sit in two cgroups (systemd's scopes and services) is still
    /// only when both stood still.
    @Test func everyCgroupOfTheContainerMustStandStill() throws {
        let f = try Fixture("5714", pid: 4450, netns: 4026535151)
        defer { f.cleanup() }
        let service = f.path + "/system.slice/work.service"
        try f.proc.add(pid: 4451, comm: "work", cgroup: service, cmdline: ["work"], exe: Samples.elf(["plain"]), netns: 4026535151)
        try IdleCgroupTests.usage(f.cg, service, 100)
        let sampler = HostSampler(proc: ProcfsReader(root: f.proc.root), cgroups: CgroupReader(root: f.cg.path), clock: f.clock, sockets: nil)
        func still() -> Bool? { sampler.sample().containers.first { $0.ref.id == f.id }?.still }
        #expect(still() == false)
        f.clock.date += 2
        #expect(still() == true)
        // The service ran; the first process's cgroup did not.
        try IdleCgroupTests.usage(f.cg, service, 200)
        f.clock.date += 2
        #expect(still() == false)
        f.clock.date += 2
        #expect(still() == true)
    }

    @Test func watcherJudgesAStillContainerOnceAndKeepsItsTelemetryMoving() throws {
        let f = try Fixture("5712", pid: 4500, netns: 4026535201)
        defer { f.cleanup() }
        let (id, clock, w) = (f.id, f.clock, f.watcher())
        func pass() -> (judgedStill: Bool?, time: Date?) {
            _ = w.poll()
            return (w.store[id]?.judgedStill, w.currentTelemetry.first { $0.container.id == id }?.time)
        }
        #expect(pass().judgedStill == false)
        clock.date += 2
        let judged = pass()
        #expect(judged.judgedStill == true, "still, and every detector settled")
        #expect(judged.time == clock.date)
        clock.date += 2
        let rested = pass()
        #expect(rested.judgedStill == true)
        #expect(rested.time == clock.date, "telemetry moves on a pass the detectors skip")
        #expect(w.currentTelemetry.first { $0.container.id == id }?.cpuCores == 0)
        // It ran: judged, and not still.
        try f.usage(9000)
        clock.date += 2
        #expect(pass().judgedStill == false)
        // New rules or settings: judged again even while still.
        clock.date += 2
        #expect(pass().judgedStill == true)
        w.settings = DetectorSettings()
        #expect(w.store[id]?.judgedStill == false)
    }

    /// A container nothing names is looked up for telemetry after 2, 4, then every 8 s, not
    /// every pass; once named, never again.
    @Test func anUnnamedContainerIsLookedUpLessAndLessOften() throws {
        let f = try Fixture("5715", pid: 4700, netns: 4026535401)
        defer { f.cleanup() }
        let (id, clock, w) = (f.id, f.clock, f.watcher())
        let asked = Mutex(0), named = Mutex(false)
        w.describeCached = { _ in
            asked.withLock { $0 += 1 }
            return named.withLock { $0 } ? ContainerMetadata(name: "web-1", image: "localhost/web:1") : nil
        }
        var times: [Int] = []
        for second in stride(from: 0, through: 40, by: 1) {
            let before = asked.withLock { $0 }
            _ = w.poll()
            if asked.withLock({ $0 }) > before { times.append(second) }
            clock.date += 1
        }
        #expect(times == [0, 2, 6, 14, 22, 30, 38], "\(times)")
        named.withLock { $0 = true }
        for _ in 0..<40 {
            _ = w.poll()
            clock.date += 1
        }
        #expect(w.currentTelemetry.first { $0.container.id == id }?.container.name == "web-1")
        let after = asked.withLock { $0 }
        for _ in 0..<10 {
            _ = w.poll()
            clock.date += 1
        }
        #expect(asked.withLock { $0 } == after, "named: not asked again")
    }

    @Test func aDetectorWithWorkPutOffKeepsAStillContainerJudged() throws {
        // Its executable cannot be read yet (the link points nowhere): the process detector
        // tries again every pass, still or not.
        let f = try Fixture("5713", pid: 4600, netns: 4026535301, exe: [], exeLink: "/nonexistent/worker")
        defer { f.cleanup() }
        let (id, clock, w) = (f.id, f.clock, f.watcher())
        for _ in 0..<3 {
            _ = w.poll()
            clock.date += 2
        }
        #expect(w.store[id] != nil)
        #expect(w.store[id]?.judgedStill == false)
    }
}

/// Which process holds which socket is read from the fds when the namespace has a socket it did
/// not have when they were last read, or the processes changed; traffic alone is no reason.
@Suite struct SocketOwnerTests {
    @Test func fdsAreReadForNewSocketsOnly() throws {
        let (proc, cg, id, path) = try IdleCgroupTests.container(String(repeating: "50c4", count: 16))
        defer { proc.dir.cleanup(); cg.cleanup() }
        try IdleCgroupTests.usage(cg, path, 5000)
        try proc.add(pid: 4700, comm: "server", cgroup: path, cmdline: ["server"], exe: Samples.elf(["plain"]), netns: 4026535401)
        try proc.add(pid: 4701, comm: "worker", cgroup: path, cmdline: ["worker"], exe: Samples.elf(["plain"]), netns: 4026535401)
        func tcp(_ inodes: [Int]) throws {
            let lines = inodes.enumerated().map { i, inode in
                "   \(i): 0200000A:\(String(format: "%04X", 40000 + i)) 0100000A:0050 01 00000000:00000000 00:00000000 00000000     0        0 \(inode) 1 0 0 10 0"
            }
            let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n" + lines.joined(separator: "\n") + "\n"
            _ = try proc.dir.file("proc/4700/net/tcp", Array(text.utf8))
        }
        func hold(_ pid: Int32, fd: Int, inode: Int) throws {
            try FileManager.default.createDirectory(atPath: "\(proc.root)/\(pid)/fd", withIntermediateDirectories: true)
            try? FileManager.default.removeItem(atPath: "\(proc.root)/\(pid)/fd/\(fd)")
            try FileManager.default.createSymbolicLink(atPath: "\(proc.root)/\(pid)/fd/\(fd)", withDestinationPath: "socket:[\(inode)]")
        }
        try tcp([81001])
        try hold(4700, fd: 3, inode: 81001)
        var packets = 10
        func pass(opens: Int, cpu: Int) throws -> [UInt64: Int32]? {
            packets += 10
            try SocketDumpTests.counters(proc, pid: 4700, packets: packets, opens: opens, established: opens)
            try IdleCgroupTests.usage(cg, path, cpu)
            return sampler.sample().containers.first { $0.ref.id == id }?.owners
        }
        let clock = StepClock(Date(timeIntervalSince1970: 1_900_000_000))
        let sampler = HostSampler(proc: ProcfsReader(root: proc.root), cgroups: CgroupReader(root: cg.path), clock: clock, sockets: nil)
        #expect(try pass(opens: 1, cpu: 5001) == [81001: 4700])
        // Traffic over the same socket; the fd table says another process holds it now (passed
        // over a Unix socket): not read again, the owner stands.
        try FileManager.default.removeItem(atPath: "\(proc.root)/4700/fd/3")
        try hold(4701, fd: 3, inode: 81001)
        clock.date += 2
        #expect(try pass(opens: 1, cpu: 5002) == [81001: 4700])
        // A new socket in the namespace: the fds are read again.
        try tcp([81001, 81002])
        try hold(4700, fd: 4, inode: 81002)
        clock.date += 2
        #expect(try pass(opens: 2, cpu: 5003) == [81001: 4701, 81002: 4700])
    }
}
