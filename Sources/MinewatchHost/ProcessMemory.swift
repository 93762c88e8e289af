import Foundation
import MinewatchCore
import CShims
#if canImport(Glibc)
import Glibc
#endif

/// One line of /proc/<pid>/maps, with its resident size when read from smaps.
public struct MemoryRegion: Sendable, Hashable {
    public var start: UInt64
    public var end: UInt64
    public var readable: Bool
    public var writable: Bool
    public var executable: Bool
    public var shared: Bool
    public var offset: UInt64
    public var inode: UInt64
    /// The file, `[heap]`, `[stack]`, `[anon:NAME]`, `/memfd:NAME (deleted)`, or empty (anonymous).
    public var path: String
    /// Resident KiB (smaps only).
    public var rssKiB: UInt64?

    public init(start: UInt64, end: UInt64, readable: Bool, writable: Bool, executable: Bool, shared: Bool, offset: UInt64, inode: UInt64,
                path: String, rssKiB: UInt64? = nil) {
        self.start = start
        self.end = end
        self.readable = readable
        self.writable = writable
        self.executable = executable
        self.shared = shared
        self.offset = offset
        self.inode = inode
        self.path = path
        self.rssKiB = rssKiB
    }

    public var size: UInt64 { end &- start }
    public var isAnonymous: Bool { inode == 0 && (path.isEmpty || path == "[heap]" || path.hasPrefix("[anon:")) }
    public var isMemfd: Bool { path.hasPrefix("/memfd:") }
    public var isDeleted: Bool { path.hasSuffix(" (deleted)") }
    /// Kernel-provided pages ([vdso], [vvar], [vsyscall], [stack] is the process's own).
    public var isSpecial: Bool { path.hasPrefix("[") && path != "[heap]" && !path.hasPrefix("[anon:") }
    public var permissions: String { (readable ? "r" : "-") + (writable ? "w" : "-") + (executable ? "x" : "-") + (shared ? "s" : "p") }
    /// How evidence names it: the file (or kind) and its address range.
    public var label: String {
        let what = path.isEmpty ? "anonymous" : path
        return "\(what) \(String(start, radix: 16))-\(String(end, radix: 16)) \(permissions)"
    }
}

extension ProcParsers {
    /// /proc/<pid>/maps: `start-end perms offset dev inode path`. Lines that do not parse are skipped.
    public static func maps(_ text: String) -> [MemoryRegion] {
        var out: [MemoryRegion] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            if let r = mapsLine(line) { out.append(r) }
        }
        return out
    }

    static func mapsLine(_ line: Substring) -> MemoryRegion? {
        // Fields are separated by single spaces, the path by padding.
        let parts = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
        guard parts.count >= 5 else { return nil }
        let range = parts[0].split(separator: "-")
        guard range.count == 2, let start = UInt64(range[0], radix: 16), let end = UInt64(range[1], radix: 16), end >= start else { return nil }
        let perms = Array(parts[1].utf8)
        guard perms.count == 4, let offset = UInt64(parts[2], radix: 16), let inode = UInt64(parts[4]) else { return nil }
        let path = parts.count > 5 ? String(parts[5]).trimmingCharacters(in: .whitespaces) : ""
        return MemoryRegion(start: start, end: end, readable: perms[0] == UInt8(ascii: "r"), writable: perms[1] == UInt8(ascii: "w"),
                            executable: perms[2] == UInt8(ascii: "x"), shared: perms[3] == UInt8(ascii: "s"), offset: offset, inode: inode, path: path)
    }

    /// /proc/<pid>/smaps: the maps lines, each followed by `Key: value kB` lines; Rss is kept.
    public static func smaps(_ text: String) -> [MemoryRegion] {
        // Read as bytes: a busy container's smaps is read every pass, and splitting it as
        // characters cost more than reading it. Only a region's first line becomes a string.
        var out: [MemoryRegion] = []
        let rss = Array("Rss:".utf8)
        for line in text.utf8.split(separator: 10, omittingEmptySubsequences: true) {
            if line.starts(with: rss) {
                guard !out.isEmpty else { continue }
                var value: UInt64 = 0
                var digits = 0
                for b in line.dropFirst(rss.count) {
                    if b == 0x20 && digits == 0 { continue }
                    guard b >= 0x30 && b <= 0x39 else { break }
                    value = value &* 10 &+ UInt64(b - 0x30)
                    digits += 1
                }
                out[out.count - 1].rssKiB = digits > 0 ? value : nil
            } else if let first = line.first, Character(Unicode.Scalar(first)).isHexDigit, line.contains(UInt8(ascii: "-")),
                      let r = mapsLine(Substring(String(decoding: line, as: UTF8.self))) {
                out.append(r)
            }
        }
        return out
    }

    /// /proc/<pid>/task/<tid>/stat: the thread's state letter and CPU ticks.
    public static func threadStat(_ b: [UInt8]) -> (state: UInt8, cpuTicks: UInt64)? {
        guard let close = b.lastIndex(of: UInt8(ascii: ")")), close + 2 < b.count, let s = stat(b) else { return nil }
        return (b[close + 2], s.utime + s.stime)
    }
}

/// Reads what a process has in memory: its maps and smaps through its /proc folder (checked to be
/// the process sampled), its pages with process_vm_readv (the process is never stopped), and its
/// threads' CPU ticks. Needs CAP_SYS_PTRACE (the agent's DaemonSet has it).
public struct ProcessMemory {
    public let folder: ProcessFolder
    public let pid: Int32

    public init?(procRoot: String = "/proc", pid: Int32, startTicks: UInt64) {
        guard let f = ProcessFolder(procRoot: procRoot, pid: pid, startTicks: startTicks) else { return nil }
        folder = f
        self.pid = pid
    }

    func text(_ name: String, limit: Int = 16 << 20) -> String? {
        folder.contents(name, limit: limit).map { String(decoding: $0, as: UTF8.self) }
    }

    public func maps() -> [MemoryRegion] { text("maps").map(ProcParsers.maps) ?? [] }
    public func smaps() -> [MemoryRegion] { text("smaps").map(ProcParsers.smaps) ?? [] }

    /// Reads up to `buffer.count` bytes at `address`; nil when nothing could be read (unmapped,
    /// gone, or not allowed).
    public func read(at address: UInt64, into buffer: UnsafeMutableRawBufferPointer) -> Int? {
        guard let base = buffer.baseAddress else { return nil }
        let n = mw_vm_read(pid, address, base, buffer.count)
        return n > 0 ? n : nil
    }

    /// Its threads with their state and CPU ticks.
    public func threads() -> [(tid: Int32, state: UInt8, cpuTicks: UInt64)] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: "\(folder.path)/task") else { return [] }
        var out: [(Int32, UInt8, UInt64)] = []
        for n in names {
            guard let tid = Int32(n), let b = folder.contents("task/\(n)/stat", limit: 1024), let s = ProcParsers.threadStat(b) else { continue }
            out.append((tid, s.state, s.cpuTicks))
        }
        return out
    }
}

/// Samples threads' saved MXCSR (see mw_fpu_sample): each sample stops one thread for tens of
/// microseconds. Threads left seized by a timed-out sample are detached by `reap` on later calls.
/// Only the thread that created it may use it (ptrace binds tracees to the seizing thread).
public final class FPUSampler {
    /// The rounding-control field of an MXCSR value (bits 13-14): 0 is round to nearest, the
    /// default of every ABI.
    public static func roundingMode(_ mxcsr: UInt32) -> UInt32 { (mxcsr >> 13) & 3 }

    public static var supported: Bool {
        #if arch(x86_64)
        return true
        #else
        return false
        #endif
    }

    var pending: Set<Int32> = []
    public private(set) var samples = 0
    public private(set) var stoppedNanos: UInt64 = 0
    public let waitMicros: UInt32

    /// `waitMicros`: how long a sample waits for the thread to stop; a thread of a throttled
    /// cgroup stops only when the cgroup runs again, within a CFS period.
    public init(waitMicros: UInt32 = 300_000) { self.waitMicros = waitMicros }

    /// The thread's saved MXCSR, or nil (gone, not allowed, or it did not stop in time).
    public func sample(tid: Int32) -> UInt32? {
        reap()
        var mx: UInt32 = 0
        var ns: UInt64 = 0
        let r = mw_fpu_sample(tid, waitMicros, &mx, &ns)
        if r == -ETIMEDOUT { pending.insert(tid) }
        guard r == 0 else { return nil }
        samples += 1
        stoppedNanos &+= ns
        return mx
    }

    /// Detaches threads a timed-out sample left seized, once they stopped (or are gone).
    public func reap() {
        for t in pending where mw_fpu_reap(t) != 0 { pending.remove(t) }
    }
}
