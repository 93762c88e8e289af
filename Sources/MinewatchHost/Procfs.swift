import Foundation
import MinewatchCore
#if canImport(Glibc)
import Glibc
#endif

/// One process as seen in /proc.
public struct ProcessSample: Sendable, Hashable {
    public var pid: Int32
    public var ppid: Int32
    public var comm: String
    /// Target of /proc/<pid>/exe (may end in " (deleted)"; "memfd:..." for memfd executables).
    public var exe: String?
    public var cmdline: [String]
    /// Start time in clock ticks since boot (field 22 of /proc/<pid>/stat): with the pid, it
    /// identifies a process across pid reuse.
    public var startTicks: UInt64
    /// User plus system CPU time in clock ticks.
    public var cpuTicks: UInt64
    public var container: ContainerRef?
    public var cgroupPaths: [String: String]
    /// Network namespace inode (from /proc/<pid>/ns/net), to group processes by namespace.
    public var netns: UInt64?

    public init(pid: Int32, ppid: Int32, comm: String, exe: String?, cmdline: [String], startTicks: UInt64, cpuTicks: UInt64,
                container: ContainerRef?, cgroupPaths: [String: String], netns: UInt64?) {
        self.pid = pid
        self.ppid = ppid
        self.comm = comm
        self.exe = exe
        self.cmdline = cmdline
        self.startTicks = startTicks
        self.cpuTicks = cpuTicks
        self.container = container
        self.cgroupPaths = cgroupPaths
        self.netns = netns
    }
}

/// Parsers for /proc text formats (pure functions, tested with fixtures).
public enum ProcParsers {
    /// /proc/<pid>/stat: the command sits in parentheses and may contain spaces and ')'.
    public static func stat(_ text: String) -> (comm: String, ppid: Int32, utime: UInt64, stime: UInt64, start: UInt64)? {
        guard let open = text.firstIndex(of: "("), let close = text.lastIndex(of: ")") , open < close else { return nil }
        let comm = String(text[text.index(after: open)..<close])
        let rest = text[text.index(after: close)...].split(separator: " ")
        // rest[0] is state (field 3); fields 4 (ppid), 14/15 (utime/stime), 22 (starttime).
        guard rest.count >= 20, let ppid = Int32(rest[1]), let ut = UInt64(rest[11]), let st = UInt64(rest[12]),
              let start = UInt64(rest[19]) else { return nil }
        return (comm, ppid, ut, st, start)
    }

    /// NUL-separated argv.
    public static func cmdline(_ data: [UInt8]) -> [String] {
        data.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
            .reversed().drop { $0.isEmpty }.reversed()
    }

    /// Selected variables from NUL-separated `environ`.
    public static func environ(_ data: [UInt8], keep: Set<String>) -> [String: String] {
        var out: [String: String] = [:]
        for entry in data.split(separator: 0) {
            guard let eq = entry.firstIndex(of: UInt8(ascii: "=")) else { continue }
            let k = String(decoding: entry[entry.startIndex..<eq], as: UTF8.self)
            if keep.contains(k) { out[k] = String(decoding: entry[(eq + 1)...], as: UTF8.self) }
        }
        return out
    }
}

/// Reads processes from a procfs mount. Processes that vanish mid-read are skipped, never fatal.
public struct ProcfsReader: Sendable {
    public let root: String
    public init(root: String = "/proc") { self.root = root }

    public func pids() -> [Int32] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: root) else { return [] }
        return names.compactMap { Int32($0) }.sorted()
    }

    func read(_ rel: String, limit: Int = 1 << 20) -> [UInt8]? {
        let fd = open("\(root)/\(rel)", O_RDONLY | O_CLOEXEC)
        if fd < 0 { return nil }
        defer { close(fd) }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 16384)
        while out.count < limit {
            let n = buf.withUnsafeMutableBytes { b in Glibc.read(fd, b.baseAddress, b.count) }
            if n <= 0 { break }
            out += buf[0..<n]
        }
        return out
    }

    func link(_ rel: String) -> String? {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("\(root)/\(rel)", &buf, buf.count - 1)
        if n < 0 { return nil }
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// One process, or nil when it is gone (or unreadable).
    public func process(_ pid: Int32) -> ProcessSample? {
        guard let statBytes = read("\(pid)/stat"), let st = ProcParsers.stat(String(decoding: statBytes, as: UTF8.self)) else { return nil }
        let cg = read("\(pid)/cgroup").map { CgroupPaths.parse(procCgroup: String(decoding: $0, as: UTF8.self)) }
        var netns: UInt64?
        if let l = link("\(pid)/ns/net"), let open = l.firstIndex(of: "["), let close = l.firstIndex(of: "]") {
            netns = UInt64(l[l.index(after: open)..<close])
        }
        return ProcessSample(
            pid: pid, ppid: st.ppid, comm: st.comm, exe: link("\(pid)/exe"),
            cmdline: read("\(pid)/cmdline", limit: 64 * 1024).map(ProcParsers.cmdline) ?? [],
            startTicks: st.start, cpuTicks: st.utime + st.stime,
            container: cg?.container, cgroupPaths: cg?.paths ?? [:], netns: netns)
    }

    /// /proc/<pid>/mountinfo as text.
    public func mountinfo(_ pid: Int32) -> String? {
        read("\(pid)/mountinfo", limit: 4 << 20).map { String(decoding: $0, as: UTF8.self) }
    }

    public func environment(_ pid: Int32, keep: Set<String>) -> [String: String] {
        read("\(pid)/environ", limit: 256 * 1024).map { ProcParsers.environ($0, keep: keep) } ?? [:]
    }
}

extension ProcfsReader {
    /// Interface counters of the process's network namespace.
    public func netCounters(_ pid: Int32) -> NetCounters? {
        read("\(pid)/net/dev").map { NetParsers.dev(String(decoding: $0, as: UTF8.self)) }
    }

    /// TCP and UDP sockets (IPv4 and IPv6) of the process's network namespace.
    public func sockets(_ pid: Int32) -> [SocketEntry] {
        var out: [SocketEntry] = []
        for (file, proto) in [("tcp", SocketEntry.Proto.tcp), ("tcp6", .tcp), ("udp", .udp), ("udp6", .udp)] {
            if let data = read("\(pid)/net/\(file)", limit: 8 << 20) {
                out += NetParsers.sockets(String(decoding: data, as: UTF8.self), proto: proto)
            }
        }
        return out
    }
}
