import Foundation
import MinewatchCore
import Testing
import MinewatchHost
import MinewatchModel
@testable import MinewatchRuntime

/// RandomX's run-time signals as values: rounding modes, memory shape, and which regions the
/// memory scanner reads.
@Suite struct RandomXSignalTests {
    @Test func roundingModes() {
        // XMRig's hashing thread, sampled on this machine: 0x9fe0/0xbfe0/0xdfe0/0xffe0.
        let xmrig: [UInt32] = [0xbfe0, 0x9fe0, 0x9fe0, 0xdfe0, 0xbfe0, 0xbfe0, 0xffe0, 0x9fe0]
        #expect(RandomXEvidence.rounding(xmrig) != nil)
        // Ordinary code keeps round-to-nearest (0x1f80 default; FTZ/DAZ set by -ffast-math).
        #expect(RandomXEvidence.rounding(Array(repeating: 0x1f80, count: 12)) == nil)
        #expect(RandomXEvidence.rounding(Array(repeating: 0x9fc0, count: 12)) == nil)
        // One mode held (a numeric program that rounds toward zero throughout) is not CFROUND.
        #expect(RandomXEvidence.rounding(Array(repeating: 0x7f80, count: 12)) == nil)
        // Too few samples.
        #expect(RandomXEvidence.rounding([0xbfe0, 0xdfe0, 0xffe0]) == nil)
    }

    func region(_ size: UInt64, rss: UInt64?, perms: String = "rw-p", path: String = "") -> MemoryRegion {
        let p = Array(perms.utf8)
        return MemoryRegion(start: 0x7f00_0000_0000, end: 0x7f00_0000_0000 + size, readable: p[0] == UInt8(ascii: "r"), writable: p[1] == UInt8(ascii: "w"),
                            executable: p[2] == UInt8(ascii: "x"), shared: false, offset: 0, inode: path.isEmpty ? 0 : 9, path: path, rssKiB: rss)
    }

    @Test func memoryShape() {
        #expect(ComputeProbe.isRandomXSized(region((256 << 20) + (136 << 10), rss: 262_252)))
        #expect(ComputeProbe.isRandomXSized(region((2 << 30) + 33_554_368, rss: 2_000_000)))
        #expect(!ComputeProbe.isRandomXSized(region(256 << 20, rss: 1024)))  // reserved, not filled
        #expect(!ComputeProbe.isRandomXSized(region(512 << 20, rss: 524_288)))
        #expect(!ComputeProbe.isRandomXSized(region(256 << 20, rss: 262_144, path: "/data/file")))
        #expect(ComputeProbe.isJIT(region(384 << 10, rss: 12, perms: "rwxp")))
        var s = ComputeSignals(pid: 1, exe: "/x")
        s.randomXMappings = [region(256 << 20, rss: 262_144)]
        #expect(RandomXEvidence.evidence(mxcsr: [], shape: s).isEmpty)  // no JIT
        s.jitMappings = [region(384 << 10, rss: 12, perms: "rwxp")]
        #expect(RandomXEvidence.evidence(mxcsr: [], shape: s).map(\.name) == ["memory shape"])
        // What makes the next pass read the container's run-queue wait: samples or RandomX's
        // shape; a process the probe leaves alone (neither) is not judged by demand meanwhile.
        #expect(s.mayConvict)
        var resting = ComputeSignals(pid: 2, exe: "/usr/bin/gzip")
        resting.jitMappings = s.jitMappings
        #expect(!resting.mayConvict)
        resting.mxcsr = [0x1f80]
        #expect(resting.mayConvict)
        // Not at rest but left for later by this pass's wait budget: still being sampled.
        var waiting = ComputeSignals(pid: 3, exe: "/m/svc-helper")
        waiting.sampling = true
        #expect(waiting.mayConvict)
        let random = (0..<4096).map { _ in UInt8.random(in: 0...255) }
        let zeros = [UInt8](repeating: 0, count: 4096)
        #expect(ByteHistogram(random).entropy > 7.5 && ByteHistogram(zeros).entropy == 0)
    }

    @Test func memoryScannerReadsWhatALoaderWrites() {
        let maps = ProcParsers.maps("""
        55f2d534f000-55f2d5675000 r-xp 00083000 fe:00 1                    /usr/local/bin/svc
        55f2d5675000-55f2d5792000 r--p 003a9000 fe:00 1                    /usr/local/bin/svc
        7f0000000000-7f0000400000 r--p 00000000 00:00 0 
        7f0000400000-7f0000500000 r-xp 00000000 00:00 0 
        7f0010000000-7f0020021000 rw-p 00000000 00:00 0 
        7f0100000000-7f0100200000 r-xp 00000000 fe:00 2                    /usr/lib/x86_64-linux-gnu/libc.so.6
        7f0200000000-7f0200100000 r-xp 00000000 00:01 3                    /memfd:x (deleted)
        7ffd1000-7ffd2000 r-xp 00000000 00:00 0                          [vdso]
        """)
        let picked = MemoryScanner.selection(maps, exe: "/usr/local/bin/svc", limits: .init())
        // The program and the memfd, then anonymous code, then anonymous data; not libc, not
        // the 256 MiB cache, not [vdso].
        #expect(picked.map(\.start) == [0x7f0200000000, 0x55f2d5675000, 0x55f2d534f000, 0x7f0000400000, 0x7f0000000000])
    }

    /// A packed process's memory is read at its first look, again when its address space changed
    /// since a cold read (the loader unpacked after a sleep), a bounded number of times, and once
    /// when it burns CPU; a process whose file gave no reason only when it burns CPU.
    @Test func memoryIsReadAgainWhenALoaderUnpacksLate() {
        typealias D = MinerProcessDetector
        let cold = D.MemoryRead(hot: false, vsize: 2 << 20, coldReads: 1)
        #expect(D.readMemory(wanted: true, hot: false, vsize: 2 << 20, last: nil))
        #expect(!D.readMemory(wanted: false, hot: false, vsize: 2 << 20, last: nil))
        #expect(D.readMemory(wanted: false, hot: true, vsize: 2 << 20, last: nil))
        // Asleep, as it was: not read again; unpacked (its address space grew): read again.
        #expect(!D.readMemory(wanted: true, hot: false, vsize: 2 << 20, last: cold))
        #expect(D.readMemory(wanted: true, hot: false, vsize: 150 << 20, last: cold))
        #expect(!D.readMemory(wanted: false, hot: false, vsize: 150 << 20, last: cold))
        // At most `coldReads` cold reads, whatever its address space does; then only when hot.
        let spent = D.MemoryRead(hot: false, vsize: 2 << 20, coldReads: D.coldReads)
        #expect(!D.readMemory(wanted: true, hot: false, vsize: 150 << 20, last: spent))
        #expect(D.readMemory(wanted: true, hot: true, vsize: 150 << 20, last: spent))
        // Read while hot: done.
        #expect(!D.readMemory(wanted: true, hot: true, vsize: 300 << 20, last: D.MemoryRead(hot: true, vsize: 2 << 20, coldReads: 1)))
    }
}

/// Which threads the FPU sampler stops: the hottest since the last probe. On a host whose pid_max
/// is 32768, thread ids come back; the 1,000-container soak's agent trapped (arithmetic overflow)
/// when a new thread had fewer ticks than the old one with its id.
@Suite struct ThreadsToSampleTests {
    @Test func hottestThreadsAndReusedIds() {
        let known: [Int32: UInt64] = [10: 100, 11: 100, 12: 5_000]
        // 10 used 90 ticks, 11 used 20, 13 is new with 40; 12 is a new thread with an old id.
        let list: [(tid: Int32, cpuTicks: UInt64)] = [(10, 190), (11, 120), (12, 60), (13, 40)]
        #expect(ComputeProbe.threadsToSample(list, known: known, count: 2) == [10, 12])
        #expect(ComputeProbe.threadsToSample(list, known: known, count: 4) == [10, 12, 13], "a third of the hottest or more")
        #expect(ComputeProbe.threadsToSample([(7, 0)], known: [7: UInt64.max], count: 2).isEmpty)
        #expect(ComputeProbe.threadsToSample([(7, UInt64.max)], known: [:], count: 2) == [7])
    }
}

/// How often the probe reads a process's memory map: every `smapsEvery` while its address space
/// changes size or holds a mapping of RandomX's sizes, else every `unchangedShapeEvery` (on a
/// dense node, parsing the maps of every container near its limit every five seconds was the
/// probe's main cost).
@Suite struct ProbeShapeReadTests {
    @Test func mapsAreReadAgainWhenTheAddressSpaceChanges() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("mw-probe-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: "\(root)/4242", withIntermediateDirectories: true)
        try "4242 (worker) S 1 1 1 0 -1 0 0 0 0 0 5 5 0 0 20 0 1 0 777 1000 10 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
            .write(toFile: "\(root)/4242/stat", atomically: true, encoding: .utf8)
        func maps(jit count: Int, extra: String = "") throws {
            var text = "55f2d534f000-55f2d5675000 r-xp 00000000 08:01 131 /bin/worker\n"
            for i in 0..<count { text += String(format: "7f00%08x-7f00%08x rwxp 00000000 00:00 0 \n", i * 0x100000, i * 0x100000 + 0x60000) }
            try (text + extra).write(toFile: "\(root)/4242/maps", atomically: true, encoding: .utf8)
            // smaps: the same mappings, each with its resident size (read when one has RandomX's size).
            let smaps = (text + extra).split(separator: "\n").map { "\($0)\nRss:                   4 kB\n" }.joined()
            try smaps.write(toFile: "\(root)/4242/smaps", atomically: true, encoding: .utf8)
        }
        let probe = ComputeProbe(procRoot: root, fpuSampling: false)
        func snap(vsize: UInt64, at t: Date) -> ContainerSnapshot {
            let s = ProcessSample(pid: 4242, ppid: 1, comm: "worker", exe: "/bin/worker", cmdline: ["/bin/worker"], startTicks: 777, cpuTicks: 10,
                                  container: ContainerRef(id: "c1", runtime: .podman, cgroupPath: "/c1"), cgroupPaths: [:], netns: nil, vsize: vsize)
            return ContainerSnapshot(ref: s.container!, time: t, processes: [ProcessSnapshot(sample: s, isNew: false, cpuCores: 0.02)])
        }
        let t0 = Date(timeIntervalSince1970: 1_000_000)
        try maps(jit: 1)
        #expect(probe.probe(snap(vsize: 1000, at: t0), now: t0)?.jitMappings.count == 1)
        #expect(probe.probe(snap(vsize: 1000, at: t0 + 1), now: t0 + 1)?.mayConvict == false, "no samples (sampling off), no RandomX shape")
        try maps(jit: 2)
        // Same size: not read again at 6 s (the old shape stands), nor at 59 s.
        #expect(probe.probe(snap(vsize: 1000, at: t0 + 6), now: t0 + 6)?.jitMappings.count == 1)
        #expect(probe.probe(snap(vsize: 1000, at: t0 + 59), now: t0 + 59)?.jitMappings.count == 1)
        // Read when the size changed (5 s after the last read) ...
        #expect(probe.probe(snap(vsize: 2000, at: t0 + 64), now: t0 + 64)?.jitMappings.count == 2)
        try maps(jit: 3)
        // ... and after `unchangedShapeEvery` without a change.
        #expect(probe.probe(snap(vsize: 2000, at: t0 + 70), now: t0 + 70)?.jitMappings.count == 2)
        #expect(probe.probe(snap(vsize: 2000, at: t0 + 125), now: t0 + 125)?.jitMappings.count == 3)
        // A mapping of RandomX's cache size (not yet resident): read every 5 s from then on.
        try maps(jit: 1, extra: "7f1000000000-7f1010000000 rw-p 00000000 00:00 0 \n")
        #expect(probe.probe(snap(vsize: 3000, at: t0 + 131), now: t0 + 131)?.jitMappings.count == 1)
        try maps(jit: 2, extra: "7f1000000000-7f1010000000 rw-p 00000000 00:00 0 \n")
        #expect(probe.probe(snap(vsize: 3000, at: t0 + 137), now: t0 + 137)?.jitMappings.count == 2)
    }
}
