import Foundation
@testable import MinewatchHost
import Testing
import TestSupport

/// Files kept open between passes (cgroup counters, /proc/<pid>/net files) and what is read less
/// often for an idle container (memory, the executable link).
@Suite struct KeptFilesTests {
    @Test func keptFilesAreReadAgainAndClosedWhenNotRead() throws {
        let dir = try TempDir("kept")
        defer { dir.cleanup() }
        let a = try dir.file("a", Array("1\n".utf8)), b = try dir.file("b", Array("2\n".utf8))
        let files = KeptFiles()
        #expect(files.read(a) == Array("1\n".utf8))
        #expect(files.read(b) == Array("2\n".utf8))
        #expect(files.count == 2)
        files.sweep()
        // Rewritten in place, as the kernel regenerates its files: the kept descriptor reads the new bytes.
        _ = try dir.file("a", Array("12345\n".utf8))
        #expect(files.read(a) == Array("12345\n".utf8))
        files.sweep()
        #expect(files.count == 1, "b was not read during the last pass: closed")
        // A file longer than one read, and a limit.
        let big = try dir.file("big", [UInt8](repeating: 65, count: 10_000))
        #expect(files.read(big)?.count == 10_000)
        #expect(files.read(big, key: "other", limit: 100)?.count == 100)
        #expect(files.read(dir.path + "/missing") == nil)
        // Keys: the same path under two keys is two descriptors.
        #expect(files.count == 3)
    }

    @Test func keptFilesStayWithinCapacity() throws {
        let dir = try TempDir("kept")
        defer { dir.cleanup() }
        let files = KeptFiles(capacity: 2)
        for i in 0..<5 {
            let p = try dir.file("f\(i)", Array("\(i)".utf8))
            #expect(files.read(p) == Array("\(i)".utf8), "read even when it cannot be kept")
        }
        #expect(files.count == 2)
    }

    /// Memory is read again only when the cgroup used CPU (or 30 s passed); CPU every pass.
    @Test func idleCgroupMemoryIsNotReadEveryPass() throws {
        let dir = try TempDir("cg")
        defer { dir.cleanup() }
        _ = try dir.file("cg/cgroup.controllers", Array("cpu memory\n".utf8))
        func set(usec: Int, memory: Int) throws {
            _ = try dir.file("cg/pod/cpu.stat", Array("usage_usec \(usec)\nuser_usec 0\n".utf8))
            _ = try dir.file("cg/pod/memory.current", Array("\(memory)\n".utf8))
        }
        let reader = CgroupReader(root: dir.path + "/cg")
        try set(usec: 1000, memory: 4096)
        #expect(reader.stats(paths: ["": "/pod"])?.memoryBytes == 4096)
        reader.endPass()
        try set(usec: 1000, memory: 8192)
        #expect(reader.stats(paths: ["": "/pod"])?.memoryBytes == 4096, "no CPU used: memory as last read")
        reader.endPass()
        try set(usec: 2000, memory: 8192)
        let s = try #require(reader.stats(paths: ["": "/pod"]))
        #expect(s.cpuNanos == 2_000_000 && s.memoryBytes == 8192)
        reader.endPass()
    }

    /// Whether a cgroup ran since the last pass: its CPU time read once a pass (cgroup v1 and v2),
    /// compared with the last pass's; unreadable or first seen is never idle.
    @Test func idleSinceLastPassComparesCPUTimeOncePerPass() throws {
        let dir = try TempDir("cg")
        defer { dir.cleanup() }
        _ = try dir.file("v1/cpuacct/pod/cpuacct.usage", Array("700\n".utf8))
        _ = try dir.file("v2/cgroup.controllers", Array("cpu\n".utf8))
        _ = try dir.file("v2/pod/cpu.stat", Array("usage_usec 9\nnr_periods 4\nnr_throttled 1\n".utf8))
        let v1 = CgroupReader(root: dir.path + "/v1"), v2 = CgroupReader(root: dir.path + "/v2")
        let p1 = ["cpuacct": "/pod", "cpu": "/pod"], p2 = ["": "/pod"]
        #expect(!v1.idleSinceLastPass(paths: p1) && !v2.idleSinceLastPass(paths: p2), "no last pass")
        #expect(v1.stats(paths: p1)?.cpuNanos == 700 && v2.stats(paths: p2)?.cpuNanos == 9000)
        v1.endPass(); v2.endPass()
        #expect(v1.idleSinceLastPass(paths: p1) && v2.idleSinceLastPass(paths: p2))
        // Read once a pass: a change after the first read shows at the next pass.
        _ = try dir.file("v1/cpuacct/pod/cpuacct.usage", Array("701\n".utf8))
        _ = try dir.file("v2/pod/cpu.stat", Array("usage_usec 10\nnr_periods 5\nnr_throttled 2\n".utf8))
        #expect(v1.stats(paths: p1)?.cpuNanos == 700)
        let s2 = try #require(v2.stats(paths: p2))
        #expect(s2.cpuNanos == 9000 && s2.periods == 4 && s2.throttledPeriods == 1)
        v1.endPass(); v2.endPass()
        #expect(!v1.idleSinceLastPass(paths: p1) && !v2.idleSinceLastPass(paths: p2))
        #expect(v1.stats(paths: p1)?.cpuNanos == 701 && v2.stats(paths: p2)?.periods == 5)
        v1.endPass(); v2.endPass()
        _ = try dir.file("v1/cpuacct/pod/cpuacct.usage", Array("unreadable\n".utf8))
        #expect(!v1.idleSinceLastPass(paths: p1))
        #expect(!v1.idleSinceLastPass(paths: ["memory": "/pod"]), "no CPU controller named")
    }

    /// A process's sample finds its cgroup's record by the sample's shared identity, and gives the
    /// answers its paths give: copies share it, a sample changed by an exec (a new identity, the
    /// same paths) finds the same cgroup, and an identity whose record went unasked for 32 passes
    /// is forgotten with it and made again when asked.
    @Test func sampleLookupsAgreeWithPathLookups() throws {
        let dir = try TempDir("cg")
        defer { dir.cleanup() }
        _ = try dir.file("v1/cpuacct/pod/cpuacct.usage", Array("700\n".utf8))
        let reader = CgroupReader(root: dir.path + "/v1")
        let paths = ["cpuacct": "/pod", "cpu": "/pod"]
        var s = ProcessSample(pid: 7, ppid: 1, comm: "sh", exe: "/bin/sh", cmdline: ["sh"], startTicks: 1, cpuTicks: 0,
                              container: nil, cgroupPaths: paths, netns: nil)
        #expect(!reader.idleSinceLastPass(s), "first pass: no last pass to compare with")
        #expect(reader.usageReadThisPass(s), "read by the question")
        #expect(reader.stats(of: s)?.cpuNanos == 700)
        reader.endPass()
        #expect(!reader.usageReadThisPass(s))
        let copy = s
        #expect(reader.idleSinceLastPass(copy) && reader.usageReadThisPass(s) && reader.idleSinceLastPass(paths: paths))
        reader.endPass()
        s.exe = "/usr/bin/xmrig"  // an exec: another identity, the same cgroup
        _ = try dir.file("v1/cpuacct/pod/cpuacct.usage", Array("900\n".utf8))
        #expect(!reader.idleSinceLastPass(s) && !reader.idleSinceLastPass(copy) && reader.stats(of: copy)?.cpuNanos == 900)
        for _ in 0..<70 { reader.endPass() }
        _ = reader.idleSinceLastPass(paths: ["cpuacct": "/other"])
        reader.endPass()
        #expect(reader.byIdentity.isEmpty && reader.records.count <= 1, "unasked for 32 passes: forgotten")
        #expect(reader.stats(of: s)?.cpuNanos == 900 && reader.byIdentity.count == 1)
        let none = ProcessSample(pid: 8, ppid: 1, comm: "x", exe: nil, cmdline: [], startTicks: 1, cpuTicks: 0, container: nil, cgroupPaths: [:], netns: nil)
        #expect(!reader.idleSinceLastPass(none) && reader.stats(of: none) == nil)
    }

    /// cpu.stat read in place: v2's usage and throttling counts in any order, v1's throttling
    /// alone; a number that is not one (or overflows) counts as absent. A hybrid host whose v1
    /// CPU accounting cannot be read has the unified tree's.
    @Test func cpuStatIsReadInPlace() throws {
        func parse(_ text: String) -> (UInt64?, UInt64?, UInt64?) {
            let bytes = Array(text.utf8)
            let r = bytes.withUnsafeBufferPointer { CgroupReader.cpuStat($0) }
            return (r.usageMicros, r.throttling?.0, r.throttling?.1)
        }
        #expect(parse("usage_usec 1234\nuser_usec 1000\nsystem_usec 234\nnr_periods 50\nnr_throttled 7\nthrottled_usec 99\n") == (1234, 50, 7))
        #expect(parse("nr_throttled 3\nnr_periods 9\nthrottled_time 5") == (nil, 9, 3), "v1's, no trailing newline")
        #expect(parse("usage_usec 99999999999999999999999\nnr_periods x\nnr_throttled 1\n") == (nil, nil, nil))
        #expect(parse("") == (nil, nil, nil))
        let dir = try TempDir("cg")
        defer { dir.cleanup() }
        _ = try dir.file("cg/cpuacct/pod/cpuacct.usage", Array("not a number\n".utf8))
        _ = try dir.file("cg/unified/pod/cpu.stat", Array("usage_usec 42\n".utf8))
        let reader = CgroupReader(root: dir.path + "/cg")
        #expect(reader.stats(paths: ["cpuacct": "/pod", "cpu": "/pod", "": "/pod"])?.cpuNanos == 42_000)
    }

    /// The executable link of a process that looks unchanged is read only when asked (`recheck`);
    /// a changed address space (an exec) or CPU time has it read at once.
    @Test func executableLinkIsReadWhenTheProcessMayHaveExeced() throws {
        let dir = try TempDir("proc")
        defer { dir.cleanup() }
        let root = dir.path + "/proc"
        func stat(vsize: Int, ticks: Int) throws {
            _ = try dir.file("proc/77/stat", Array("77 (sleep) S 1 77 77 0 -1 0 0 0 0 0 \(ticks) 0 0 0 20 0 1 0 5000 \(vsize) 100 0".utf8))
        }
        try stat(vsize: 1000, ticks: 1)
        _ = try dir.file("proc/77/cgroup", Array("0::/docker/x\n".utf8))
        _ = try dir.file("proc/77/cmdline", Array("sleep\0".utf8))
        try FileManager.default.createSymbolicLink(atPath: root + "/77/exe", withDestinationPath: "/bin/sleep")
        let reader = ProcfsReader(root: root)
        let known = try #require(reader.process(77))
        #expect(known.exe == "/bin/sleep" && known.vsize == 1000)
        try FileManager.default.removeItem(atPath: root + "/77/exe")
        try FileManager.default.createSymbolicLink(atPath: root + "/77/exe", withDestinationPath: "/tmp/sleep")
        #expect(reader.process(77, known: known, recheck: false)?.exe == "/bin/sleep", "unchanged stat: the link is not read")
        #expect(reader.process(77, known: known, recheck: true)?.exe == "/tmp/sleep")
        try stat(vsize: 2_000_000, ticks: 1)
        #expect(reader.process(77, known: known, recheck: false)?.exe == "/tmp/sleep", "a new address space: read")
        try stat(vsize: 1000, ticks: 2)
        #expect(reader.process(77, known: known, recheck: false)?.exe == "/tmp/sleep", "CPU used: read")
    }
}

/// Which pids may have been handed out again between two passes (a host process listed at both
/// is then read again; any other is the same process).
@Suite struct PidAllocationTests {
    @Test func onlyPidsHandedOutSinceTheLastPassMayBeReused() {
        let before = PidAllocation(lastPid: 1000, created: 50_000)
        // 40 processes or threads made, the cursor moved from 1000 to 1040.
        let after = PidAllocation(lastPid: 1040, created: 50_040)
        #expect(after.mayHaveReused(1020, since: before, pidMax: 32768))
        #expect(after.mayHaveReused(1040, since: before, pidMax: 32768))
        #expect(!after.mayHaveReused(1000, since: before, pidMax: 32768))
        #expect(!after.mayHaveReused(500, since: before, pidMax: 32768))
        #expect(!after.mayHaveReused(20_000, since: before, pidMax: 32768))
        // Wrapped around the end of the pid space: the tail and the start were handed out.
        let wrapped = PidAllocation(lastPid: 400, created: 50_100)
        let late = PidAllocation(lastPid: 32_700, created: 50_000)
        #expect(wrapped.mayHaveReused(32_750, since: late, pidMax: 32768) && wrapped.mayHaveReused(300, since: late, pidMax: 32768))
        #expect(!wrapped.mayHaveReused(1000, since: late, pidMax: 32768) && !wrapped.mayHaveReused(32_000, since: late, pidMax: 32768))
        // Nothing made: nothing reused. As many made as the space holds, or the cursor back where it was: anything.
        #expect(!before.mayHaveReused(1000, since: before, pidMax: 32768))
        let around = PidAllocation(lastPid: 1040, created: 50_000 + 32_000)
        #expect(around.mayHaveReused(500, since: before, pidMax: 32768))
        #expect(PidAllocation(lastPid: 1000, created: 50_001).mayHaveReused(7, since: before, pidMax: 32768))
    }

    @Test func theKernelsPidAllocationIsRead() throws {
        let a = try #require(ProcfsReader().pidAllocation())
        let pipe = Process()
        pipe.executableURL = URL(fileURLWithPath: "/bin/true")
        try pipe.run()
        pipe.waitUntilExit()
        let b = try #require(ProcfsReader().pidAllocation())
        #expect(b.created > a.created, "a process was made")
        #expect(b.mayHaveReused(pipe.processIdentifier, since: a, pidMax: 4_194_304), "its pid was handed out in between")
    }
}

/// Run-queue wait, summed over a process's threads from their schedstat files.
@Suite struct RunQueueWaitTests {
    @Test func threadsWaitsAreSummed() throws {
        let dir = try TempDir("schedstat")
        defer { dir.cleanup() }
        _ = try dir.file("100/task/100/schedstat", Array("99000 1234 7\n".utf8))
        _ = try dir.file("100/task/101/schedstat", Array("5 4466 2\n".utf8))
        _ = try dir.file("100/task/102/schedstat", Array("garbage\n".utf8))
        _ = try dir.file("200/task/200/schedstat", Array("1 300 1\n".utf8))
        let reader = ProcfsReader(root: dir.path)
        #expect(reader.runQueueWait([100]) == 5700, "the second field of each thread's line; a line without it is skipped")
        #expect(reader.runQueueWait([100, 200, 300]) == 6000, "a process that is gone is skipped")
        #expect(reader.runQueueWait([300]) == nil)
        #expect(Array("1 18446744073709551616 0".utf8).withUnsafeBufferPointer { ProcfsReader.secondNumber($0) } == nil, "overflow")
        #expect(Array("1 42\n".utf8).withUnsafeBufferPointer { ProcfsReader.secondNumber($0) } == 42, "the last field of a line")
        // Through kept files: the same sums, a thread's file read again in place, and a thread
        // that is gone skipped.
        let kept = KeptFiles()
        #expect(reader.runQueueWait([100, 200], files: kept) == 6000)
        _ = try dir.file("100/task/101/schedstat", Array("5 4467 2\n".utf8))
        #expect(reader.runQueueWait([100, 200], files: kept) == 6001)
        try FileManager.default.removeItem(atPath: dir.path + "/200")
        #expect(reader.runQueueWait([100, 200], files: kept) == 5701)
        // This process, from the real /proc.
        #expect(ProcfsReader().runQueueWait([getpid()]) != nil)
        #expect(ProcfsReader().runQueueWait([getpid()], files: kept) != nil)
    }

    /// A process's threads are listed again only when its thread count changed, its pid names
    /// another process, or a listed thread is gone.
    @Test func threadListsAreKeptWhileTheCountStands() throws {
        let dir = try TempDir("threads")
        defer { dir.cleanup() }
        _ = try dir.file("100/task/100/schedstat", Array("1 1000 1\n".utf8))
        _ = try dir.file("100/task/101/schedstat", Array("1 200 1\n".utf8))
        let reader = ProcfsReader(root: dir.path)
        // Files read by path (a kept one of a removed file here would still read; a gone
        // thread's in /proc does not).
        let lists = ProcfsReader.ThreadLists(), kept: KeptFiles? = nil
        func process(threads: Int, start: UInt64 = 7) -> ProcessSample {
            var s = ProcessSample(pid: 100, ppid: 1, comm: "p", exe: nil, cmdline: [], startTicks: start, cpuTicks: 0, container: nil,
                                  cgroupPaths: [:], netns: nil)
            s.threads = threads
            return s
        }
        #expect(reader.runQueueWait([process(threads: 2)], files: kept, threads: lists) == 1200)
        // A third thread's file appears while the count still says two: the kept list is read.
        _ = try dir.file("100/task/102/schedstat", Array("1 30 1\n".utf8))
        #expect(reader.runQueueWait([process(threads: 2)], files: kept, threads: lists) == 1200)
        // The count says three: listed again.
        #expect(reader.runQueueWait([process(threads: 3)], files: kept, threads: lists) == 1230)
        // A thread ended and another began (the count stands): the gone one's file fails, so
        // they are listed again in the same call.
        try FileManager.default.removeItem(atPath: dir.path + "/100/task/101")
        _ = try dir.file("100/task/103/schedstat", Array("1 4 1\n".utf8))
        #expect(reader.runQueueWait([process(threads: 3)], files: kept, threads: lists) == 1034)
        // Another process at the pid (another start time) with the same count: listed again.
        _ = try dir.file("100/task/104/schedstat", Array("1 500 1\n".utf8))
        #expect(reader.runQueueWait([process(threads: 3, start: 8)], files: kept, threads: lists) == 1534)
        // A listing short of the stat's count (a thread ended between the two reads) is not
        // kept: a thread that starts later under the same count is read.
        try FileManager.default.removeItem(atPath: dir.path + "/100/task/104")
        #expect(reader.runQueueWait([process(threads: 4, start: 9)], files: kept, threads: lists) == 1034)
        _ = try dir.file("100/task/105/schedstat", Array("1 20000 1\n".utf8))
        #expect(reader.runQueueWait([process(threads: 4, start: 9)], files: kept, threads: lists) == 21034)
        // Gone processes' lists are forgotten.
        lists.retain([])
        #expect(lists.lists.isEmpty)
    }
}
