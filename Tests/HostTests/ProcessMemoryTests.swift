import Foundation
import Testing
import MinewatchHost

/// /proc/<pid>/maps and smaps parsing, and reading this process's own memory and threads.
@Suite struct ProcessMemoryTests {
    let maps = """
    55f2d534f000-55f2d5675000 r-xp 00083000 fe:00 1042069                    /usr/bin/xmrig
    55f2d5675000-55f2d5792000 r--p 003a9000 fe:00 1042069                    /usr/bin/xmrig
    7fc1c3fff000-7fc1d4021000 rw-p 00000000 00:00 0 
    7fc1e31b1000-7fc1e3211000 rwxp 00000000 00:00 0 
    7f0000000000-7f0000100000 r-xp 00000000 00:01 77                         /memfd:kworker (deleted)
    7ffd1000-7ffd2000 r-xp 00000000 00:00 0                          [vdso]
    bad line
    """

    @Test func mapsLines() throws {
        let r = ProcParsers.maps(maps)
        #expect(r.count == 6)
        #expect(r[0].path == "/usr/bin/xmrig" && r[0].executable && !r[0].writable && r[0].offset == 0x83000)
        #expect(r[2].isAnonymous && r[2].size == 0x7fc1d4021000 - 0x7fc1c3fff000 && r[2].writable)
        #expect(r[3].isAnonymous && r[3].executable)
        #expect(r[4].isMemfd && r[4].isDeleted && !r[4].isAnonymous)
        #expect(r[5].isSpecial)
        #expect(r[3].label == "anonymous 7fc1e31b1000-7fc1e3211000 rwxp")
    }

    /// Found by scripts/fuzz: tick counts whose sum overflows made the thread stat parser trap.
    @Test func statLinesWhoseTicksOverflowAreRefused() {
        let fields = ["R", "1"] + Array(repeating: "1", count: 9) + ["18446744073709551615", "2"] + Array(repeating: "1", count: 7)
        let line = Array("9 (x) \(fields.joined(separator: " "))\n".utf8)
        #expect(ProcParsers.stat(line) == nil)
        #expect(ProcParsers.threadStat(line) == nil)
        var fine = fields
        fine[11] = "7"
        let ok = Array("9 (x) \(fine.joined(separator: " "))\n".utf8)
        #expect(ProcParsers.threadStat(ok)?.cpuTicks == 9)
        #expect(ProcParsers.threadStat(ok)?.state == UInt8(ascii: "R"))
    }

    @Test func smapsKeepsResidentSize() {
        let text = """
        7fc1c3fff000-7fc1d4021000 rw-p 00000000 00:00 0 
        Size:             262280 kB
        Rss:              262252 kB
        7fc1e31b1000-7fc1e3211000 rwxp 00000000 00:00 0 
        Size:                384 kB
        Rss:                  12 kB
        """
        let r = ProcParsers.smaps(text)
        #expect(r.map(\.rssKiB) == [262252, 12])
    }

    @Test func readsItsOwnMemoryAndThreads() throws {
        let pid = getpid()
        let stat = try String(contentsOfFile: "/proc/self/stat", encoding: .utf8)
        let start = try #require(ProcParsers.stat(stat)).start
        let mem = try #require(ProcessMemory(pid: pid, startTicks: start))
        let marker: [UInt8] = Array("minewatch memory marker 7f3a".utf8)
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: marker.count, alignment: 8)
        defer { copy.deallocate() }
        copy.copyBytes(from: marker)
        let into = UnsafeMutableRawBufferPointer.allocate(byteCount: marker.count, alignment: 8)
        defer { into.deallocate() }
        let n = mem.read(at: UInt64(UInt(bitPattern: copy.baseAddress)), into: into)
        #expect(n == marker.count && Array(into) == marker)
        #expect(mem.maps().contains { $0.isAnonymous || $0.path == "[heap]" })
        #expect(mem.threads().contains { $0.tid == pid })
        // Another start time is another process: not read.
        #expect(ProcessMemory(pid: pid, startTicks: start + 1) == nil)
    }
}
