import Foundation
import MinewatchCore
import MinewatchModel
import MinewatchHost
import MinewatchRuntime
import MinewatchSignatures
import Testing
import TestSupport

final class StepClock: WallClock, @unchecked Sendable {
    var date: Date
    init(_ d: Date) { date = d }
    func now() -> Date { date }
}

@Suite struct CPUDetectorTests {
    let t0 = Date(timeIntervalSince1970: 1_000_000)

    func samples(_ coresPerStep: [Double], step: Double = 5, limit: Double? = 1) -> [CPUDetector.Sample] {
        var out = [CPUDetector.Sample(time: t0, cpuNanos: 0, limitCores: limit)]
        var ns: Double = 0
        for (i, c) in coresPerStep.enumerated() {
            ns += c * step * 1e9
            out.append(.init(time: t0.addingTimeInterval(Double(i + 1) * step), cpuNanos: UInt64(ns), limitCores: limit))
        }
        return out
    }

    @Test func sustainedAtTheLimit() {
        let d = CPUDetector(threshold: 0.9, window: 20, hostCores: 2)
        let hit = d.sustained(samples([1, 1, 0.95, 1]))
        #expect(hit != nil)
        #expect(abs((hit?.cores ?? 0) - 0.9875) < 0.001 && hit?.limit == 1)
        #expect(d.sustained(samples([1, 1, 1])) == nil, "15 s is shorter than the window")
        #expect(d.sustained(samples([1, 1, 0.5, 1, 1])) == nil, "a dip restarts the window")
        #expect(d.sustained(samples([0.7, 0.7, 0.7, 0.7, 0.7])) == nil, "below 90% of the limit")
        // No quota: the machine's cores are the limit.
        #expect(d.sustained(samples([1, 1, 1, 1, 1], limit: nil)) == nil)
        #expect(d.sustained(samples([1.9, 1.9, 1.9, 1.9, 1.9], limit: nil)) != nil)
    }
}

@Suite struct CPUWatcherTests {
    static let rules = CompiledRules(BundledRules.load().0)

    /// A cgroup v2 tree whose cpu.stat the test advances.
    struct FakeCgroup {
        let dir: TempDir
        var root: String { dir.path + "/cg" }
        init() throws {
            dir = try TempDir("cg")
            _ = try dir.file("cg/cgroup.controllers", Array("cpu memory\n".utf8))
        }
        func set(_ path: String, usageSeconds: Double, quotaCores: Double = 1) throws {
            _ = try dir.file("cg\(path)/cpu.stat", Array("usage_usec \(UInt64(usageSeconds * 1e6))\nuser_usec 0\n".utf8))
            _ = try dir.file("cg\(path)/cpu.max", Array("\(Int(quotaCores * 100000)) 100000\n".utf8))
        }
    }

    @Test func cpuAlertNeedsOtherEvidence() throws {
        let proc = try FakeProc()
        let cg = try FakeCgroup()
        let miner = String(repeating: "1a", count: 32), build = String(repeating: "2b", count: 32)
        let mPath = "/system.slice/docker-\(miner).scope", bPath = "/system.slice/docker-\(build).scope"
        try proc.add(pid: 500, comm: "kworker", cgroup: mPath, cmdline: ["kworker"], exe: Samples.elf(Samples.xmrigStrings), netns: 1)
        try proc.add(pid: 501, comm: "make", cgroup: bPath, cmdline: ["make", "-j2"], exe: Samples.elf(["GNU Make"]), netns: 2)
        let clock = StepClock(Date(timeIntervalSince1970: 5_000_000))
        let w = Watcher(rules: Self.rules, proc: ProcfsReader(root: proc.root), cgroups: CgroupReader(root: cg.root), clock: clock)
        w.settings.scratchPrefixes = []  // the fake executables live under /tmp
        var all: [Alert] = []
        for step in 0...5 {
            try cg.set(mPath, usageSeconds: Double(step) * 5)        // 1 core of a 1-core limit
            try cg.set(bPath, usageSeconds: Double(step) * 5 * 0.98)  // a busy build, no miner evidence
            all += w.poll()
            clock.date = clock.date.addingTimeInterval(5)
        }
        let cpu = all.filter { $0.detector == .cpuMiner }
        #expect(cpu.count == 1, "\(all.map { ($0.detector, $0.container.id.prefix(4)) })")
        #expect(cpu.first?.container.id == miner)
        #expect(cpu.first?.severity == .high)
        #expect((cpu.first?.metrics["cores"] ?? 0) > 0.9)
        #expect((cpu.first?.timeToDetect ?? 0) >= 20)
        #expect(!all.contains { $0.container.id == build }, "a busy build alone is no alert")
    }
}
