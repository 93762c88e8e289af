import Foundation
import MinewatchCore
#if canImport(Glibc)
import Glibc
#endif

/// Where the kernel's pid allocation stood at one moment (see `ProcfsReader.pidAllocation`).
public struct PidAllocation: Sendable, Hashable {
    public var lastPid: Int32
    public var created: UInt64
    public init(lastPid: Int32, created: UInt64) {
        self.lastPid = lastPid
        self.created = created
    }

    /// Whether `pid` may have been handed out between `earlier` and this reading (a process
    /// listed at both may then be another one): it lies after `earlier`'s last pid, up to this
    /// one's, cyclically; any pid when as many processes were created as the pid space holds
    /// (less a margin for the pids the kernel skips).
    public func mayHaveReused(_ pid: Int32, since earlier: PidAllocation, pidMax: Int) -> Bool {
        let made = created &- earlier.created
        if made == 0 { return false }
        if made >= UInt64(max(0, pidMax - 1024)) || lastPid == earlier.lastPid { return true }
        return lastPid > earlier.lastPid ? pid > earlier.lastPid && pid <= lastPid : pid > earlier.lastPid || pid <= lastPid
    }
}

/// One process as seen in /proc.
///
/// What stays the same from pass to pass (executable, command line, container and cgroups) is
/// held once in an immutable box that every copy shares: the sampler copies each process's
/// sample several times a pass (its last pass's samples, this pass's, each container's), and
/// retaining and releasing those fields one by one was a tenth of the agent's CPU on a dense node.
public struct ProcessSample: Sendable, Hashable {
    public var pid: Int32
    public var ppid: Int32
    public var comm: String
    /// Target of /proc/<pid>/exe (may end in " (deleted)"; "memfd:..." for memfd executables).
    @inlinable public var exe: String? {
        get { identity.exe }
        set { identity = Identity(exe: newValue, cmdline: identity.cmdline, container: identity.container, cgroupPaths: identity.cgroupPaths) }
    }
    @inlinable public var cmdline: [String] {
        get { identity.cmdline }
        set { identity = Identity(exe: identity.exe, cmdline: newValue, container: identity.container, cgroupPaths: identity.cgroupPaths) }
    }
    /// Start time in clock ticks since boot (field 22 of /proc/<pid>/stat): with the pid, it
    /// identifies a process across pid reuse.
    public var startTicks: UInt64
    /// User plus system CPU time in clock ticks.
    public var cpuTicks: UInt64
    /// Virtual memory size in bytes (stat field 23): an exec replaces the whole address space.
    public var vsize: UInt64 = 0
    /// Threads (stat field 20; 0 when unknown).
    public var threads = 0
    @inlinable public var container: ContainerRef? {
        get { identity.container }
        set { identity = Identity(exe: identity.exe, cmdline: identity.cmdline, container: newValue, cgroupPaths: identity.cgroupPaths) }
    }
    @inlinable public var cgroupPaths: [String: String] {
        get { identity.cgroupPaths }
        set { identity = Identity(exe: identity.exe, cmdline: identity.cmdline, container: identity.container, cgroupPaths: newValue) }
    }
    /// Network namespace inode (from /proc/<pid>/ns/net), to group processes by namespace.
    public var netns: UInt64?
    @usableFromInline var identity: Identity

    public init(pid: Int32, ppid: Int32, comm: String, exe: String?, cmdline: [String], startTicks: UInt64, cpuTicks: UInt64,
                container: ContainerRef?, cgroupPaths: [String: String], netns: UInt64?, vsize: UInt64 = 0) {
        self.vsize = vsize
        self.pid = pid
        self.ppid = ppid
        self.comm = comm
        self.identity = Identity(exe: exe, cmdline: cmdline, container: container, cgroupPaths: cgroupPaths)
        self.startTicks = startTicks
        self.cpuTicks = cpuTicks
        self.netns = netns
    }

    /// The fields a process keeps while it runs one program; replaced whole when one changes.
    @usableFromInline final class Identity: Sendable, Hashable {
        @usableFromInline let exe: String?
        @usableFromInline let cmdline: [String]
        @usableFromInline let container: ContainerRef?
        @usableFromInline let cgroupPaths: [String: String]
        @usableFromInline init(exe: String?, cmdline: [String], container: ContainerRef?, cgroupPaths: [String: String]) {
            self.exe = exe
            self.cmdline = cmdline
            self.container = container
            self.cgroupPaths = cgroupPaths
        }
        @usableFromInline static func == (a: Identity, b: Identity) -> Bool {
            a === b || (a.exe == b.exe && a.cmdline == b.cmdline && a.container == b.container && a.cgroupPaths == b.cgroupPaths)
        }
        @usableFromInline func hash(into h: inout Hasher) {
            h.combine(exe)
            h.combine(cmdline)
            h.combine(container)
            h.combine(cgroupPaths)
        }
    }
}

/// Parsers for /proc text formats (pure functions, tested with fixtures).
public enum ProcParsers {
    /// /proc/<pid>/stat: the command sits in parentheses and may contain spaces and ')'.
    public static func stat(_ text: String) -> (comm: String, ppid: Int32, utime: UInt64, stime: UInt64, threads: Int, start: UInt64, vsize: UInt64)? {
        stat(Array(text.utf8))
    }

    /// The same over bytes, without building strings for the numeric fields (read every pass
    /// for every process, so it is kept cheap).
    public static func stat(_ b: [UInt8]) -> (comm: String, ppid: Int32, utime: UInt64, stime: UInt64, threads: Int, start: UInt64, vsize: UInt64)? {
        guard let open = b.firstIndex(of: UInt8(ascii: "(")), let close = b.lastIndex(of: UInt8(ascii: ")")), open < close else { return nil }
        let comm = String(decoding: b[(open + 1)..<close], as: UTF8.self)
        // Fields after the command: state is field 3; we want 4 (ppid), 14, 15 (utime, stime), 20
        // (threads), 22 (start) and 23 (virtual memory size, 0 when absent).
        var field = 2
        var i = close + 1
        var ppid: Int64?, ut: UInt64?, st: UInt64?, start: UInt64?, vsize: UInt64 = 0, threads = 0
        while i < b.count {
            while i < b.count && b[i] == 32 { i += 1 }
            if i >= b.count || b[i] == 10 { break }
            field += 1
            var v: UInt64 = 0
            var digits = 0
            var negative = false
            if b[i] == UInt8(ascii: "-") { negative = true; i += 1 }
            while i < b.count && b[i] != 32 && b[i] != 10 {
                let d = b[i] &- 48
                if d < 10 { v = v &* 10 &+ UInt64(d); digits += 1 } else { digits = -1_000_000 }
                i += 1
            }
            let ok = digits > 0
            switch field {
            case 4: ppid = ok ? Int64(exactly: v).map { negative ? -$0 : $0 } : nil  // a value past Int64 is no pid
            case 14: ut = ok ? v : nil
            case 15: st = ok ? v : nil
            case 20: threads = ok ? Int(truncatingIfNeeded: v) : 0
            case 22: start = ok ? v : nil
            case 23: vsize = ok ? v : 0
            default: break
            }
            if field == 23 { break }
        }
        // The kernel's tick counts never sum past 64 bits: a line whose two counts overflow when added
        // is no stat line (callers add them).
        guard let ppid, let ut, let st, let start, let p = Int32(exactly: ppid), !ut.addingReportingOverflow(st).overflow else { return nil }
        return (comm, p, ut, st, threads, start, vsize)
    }

    /// NUL-separated argv.
    public static func cmdline(_ data: [UInt8]) -> [String] {
        data.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
            .reversed().drop { $0.isEmpty }.reversed()
    }

    /// Selected variables from NUL-separated `environ`.
    /// /etc/hosts lines (`address name [alias...] [# comment]`) as address -> names, loopback
    /// and the IPv6 special entries left out.
    public static func hosts(_ data: [UInt8]) -> [String: [String]] {
        var out: [String: [String]] = [:]
        for raw in String(decoding: data, as: UTF8.self).split(separator: "\n") {
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let f = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            guard f.count >= 2, f[0].contains(".") || f[0].contains(":"), !f[0].hasPrefix("127."), f[0] != "::1",
                  !f[0].hasPrefix("fe00:"), !f[0].hasPrefix("ff0") else { continue }
            out[f[0], default: []] += f.dropFirst().prefix(16).map { $0.lowercased() }
        }
        return out
    }

    /// The overlay upper folder of a process's root mount, from its /proc/<pid>/mountinfo (what
    /// the container wrote since it started; the drift detector looks there).
    public static func overlayUpperDir(_ mountinfo: String) -> String? {
        for line in mountinfo.split(separator: "\n") {
            let f = line.split(separator: " ")
            guard f.count >= 10, f[4] == "/", let dash = f.firstIndex(of: "-"), dash + 3 < f.count, f[dash + 1] == "overlay" else { continue }
            for opt in f[dash + 3].split(separator: ",") where opt.hasPrefix("upperdir=") {
                return String(opt.dropFirst(9))
            }
        }
        return nil
    }

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

    /// The pids listed under the procfs root, ascending. Each name is read as a number in place
    /// (`entryNames`): Foundation's listing made a string of every entry of /proc, every pass
    /// (over a thousand on a dense node).
    public func pids() -> [Int32] {
        var out: [Int32] = []
        Self.entryNames(root) { name in
            // Not a number (self, sys, ...), or more digits than a pid has.
            guard !name.isEmpty, name.count <= 9, name.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return }
            out.append(name.reduce(0) { $0 * 10 + Int32($1 - 0x30) })
        }
        return out.sorted()
    }

    /// The pid the kernel handed out last (/proc/loadavg, in this reader's pid namespace) and the
    /// processes and threads created since boot (/proc/stat `processes`): between two readings,
    /// only pids after the first reading's last pid, up to the second's, were handed out, unless
    /// as many were created as the pid space holds.
    public func pidAllocation() -> PidAllocation? {
        guard let load = read("loadavg", limit: 256), let last = load.split(separator: 32).last.flatMap({ Int32(String(decoding: $0, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) }),
              let stat = read("stat", limit: 1 << 20) else { return nil }
        let key = Array("processes ".utf8)
        for line in stat.split(separator: 10) where line.starts(with: key) {
            if let n = UInt64(String(decoding: line.dropFirst(key.count), as: UTF8.self)) { return PidAllocation(lastPid: last, created: n) }
        }
        return nil
    }

    /// The run-queue wait (nanoseconds) summed over the threads of these processes
    /// (/proc/<pid>/task/*/schedstat, its second field), or nil when none could be read. The task
    /// folders are listed with readdir and each schedstat read into a small buffer: Foundation's
    /// directory listing and file-to-String reading were most of the cost, for containers whose
    /// CPU is judged every pass.
    /// `files`: the threads' schedstat files are kept open between passes (a probed container's
    /// are read every pass; a kept file stays its thread's: once the thread is gone it fails and
    /// is closed, and the path is opened afresh).
    /// `threads`: the processes' thread lists are kept between passes and listed again only when a
    /// process's thread count (from its stat) changed, its pid now names another process, or one
    /// of its threads' files could not be read (a thread ended and another began); listing
    /// /proc/<pid>/task was most of the cost.
    public func runQueueWait(_ pids: [Int32], files: KeptFiles? = nil) -> UInt64? {
        runQueueWait(pids.map { ($0, 0, 0) }, files: files, threads: nil)
    }

    public func runQueueWait(_ processes: [ProcessSample], files: KeptFiles?, threads: ThreadLists?) -> UInt64? {
        runQueueWait(processes.map { ($0.pid, $0.startTicks, $0.threads) }, files: files, threads: threads)
    }

    func runQueueWait(_ processes: [(pid: Int32, start: UInt64, threads: Int)], files: KeptFiles?, threads: ThreadLists?) -> UInt64? {
        var total: UInt64 = 0
        var any = false
        // The waits of one process's threads `names`; `failed`: a thread's file could not be read.
        func waits(_ pid: Int32, _ names: [String]) -> (sum: UInt64, read: Bool, failed: Bool) {
            var sum: UInt64 = 0, read = false, failed = false
            for name in names {
                let rel = "\(pid)/task/\(name)/schedstat"
                let wait: UInt64?
                if let files {
                    wait = files.withContents("\(root)/\(rel)", limit: 128) { Self.secondNumber($0) } ?? nil
                } else {
                    wait = self.read(rel, limit: 128).flatMap { b in b.withUnsafeBufferPointer { Self.secondNumber($0) } }
                }
                guard let wait else { failed = true; continue }
                sum &+= wait
                read = true
            }
            return (sum, read, failed)
        }
        for p in processes {
            let w: (sum: UInt64, read: Bool, failed: Bool)
            if let kept = threads?.names(p.pid, start: p.start, threads: p.threads), case let r = waits(p.pid, kept), !r.failed {
                w = r
            } else {
                // Not kept, or a kept thread is gone: listed again.
                let names = numberedEntries("\(p.pid)/task")
                w = waits(p.pid, names)
                // Kept only when the listing has as many threads as the stat said: a thread that
                // ended between the two reads would leave a list one short under a count a new
                // thread could bring back, and that thread would never be read.
                if p.threads > 0, names.count == p.threads { threads?.keep(p.pid, start: p.start, threads: p.threads, names: names) }
            }
            total &+= w.sum
            any = any || w.read
        }
        return any ? total : nil
    }

    /// The second space-separated field of a line as a number ("run wait slices").
    static func secondNumber(_ text: UnsafeBufferPointer<UInt8>) -> UInt64? {
        let fields = text.split(separator: 0x20, maxSplits: 2)
        return fields.count >= 2 ? UInt64(String(decoding: fields[1].prefix { $0 != 0x0A }, as: UTF8.self)) : nil
    }

    func read(_ rel: String, limit: Int = 1 << 20) -> [UInt8]? {
        let fd = open("\(root)/\(rel)", O_RDONLY | O_CLOEXEC)
        if fd < 0 { return nil }
        defer { close(fd) }
        var out = [UInt8](repeating: 0, count: min(limit, 4096))
        var used = 0
        while used < limit {
            if used == out.count { out += [UInt8](repeating: 0, count: min(limit, out.count * 2) - out.count) }
            let n = out.withUnsafeMutableBytes { b in b.baseAddress.map { Glibc.read(fd, $0 + used, b.count - used) } ?? -1 }
            if n <= 0 { break }
            used += n
        }
        out.removeSubrange(used...)
        return out
    }

    /// The thread ids (as /proc/<pid>/task names them) of processes whose run-queue wait is read,
    /// by pid, with the process's start time and thread count when listed. Used from the
    /// sampler's thread only.
    public final class ThreadLists {
        var lists: [Int32: (start: UInt64, threads: Int, names: [String])] = [:]
        public init() {}

        func names(_ pid: Int32, start: UInt64, threads: Int) -> [String]? {
            guard threads > 0, let l = lists[pid], l.start == start, l.threads == threads else { return nil }
            return l.names
        }

        func keep(_ pid: Int32, start: UInt64, threads: Int, names: [String]) {
            lists[pid] = (start, threads, names)
        }

        /// Forgets the lists of processes not in `pids`.
        public func retain(_ pids: Set<Int32>) {
            if lists.keys.contains(where: { !pids.contains($0) }) { lists = lists.filter { pids.contains($0.key) } }
        }
    }

    /// The entries of a folder whose names are numbers (tasks, file descriptors), listed with
    /// readdir: Foundation's directory listing cost more than the reads that follow.
    func numberedEntries(_ rel: String) -> [String] {
        var out: [String] = []
        Self.entryNames("\(root)/\(rel)") { name in
            if let first = name.first, first >= 0x30 && first <= 0x39 { out.append(String(decoding: name, as: UTF8.self)) }
        }
        return out
    }

    /// Calls `body` with the name of each entry of the folder at `path` (nothing when it cannot
    /// be opened), its bytes up to the NUL read in place: a copy of the whole name field could
    /// read past the end of the last entry of readdir's buffer.
    static func entryNames(_ path: String, _ body: (UnsafeBufferPointer<UInt8>) -> Void) {
        guard let dir = opendir(path) else { return }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let capacity = MemoryLayout.size(ofValue: entry.pointee.d_name)
            withUnsafePointer(to: &entry.pointee.d_name) { field in
                field.withMemoryRebound(to: UInt8.self, capacity: capacity) { name in
                    var length = 0
                    while length < capacity, name[length] != 0 { length += 1 }
                    body(UnsafeBufferPointer(start: name, count: length))
                }
            }
        }
    }

    /// Where a symbolic link points, at most `size - 1` bytes of it (a longer target is cut short).
    func link(_ rel: String, size: Int = 4096) -> String? { readLink("\(root)/\(rel)", size: size) }

    /// One process, or nil when it is gone (or unreadable).
    public func process(_ pid: Int32) -> ProcessSample? {
        guard let statBytes = read("\(pid)/stat", limit: 4096), let st = ProcParsers.stat(statBytes) else { return nil }
        let cg = read("\(pid)/cgroup").map { CgroupPaths.parse(procCgroup: String(decoding: $0, as: UTF8.self)) }
        var netns: UInt64?
        if let l = link("\(pid)/ns/net"), let open = l.firstIndex(of: "["), let close = l.firstIndex(of: "]") {
            netns = UInt64(l[l.index(after: open)..<close])
        }
        var s = ProcessSample(
            pid: pid, ppid: st.ppid, comm: st.comm, exe: link("\(pid)/exe"),
            cmdline: read("\(pid)/cmdline", limit: 64 * 1024).map(ProcParsers.cmdline) ?? [],
            startTicks: st.start, cpuTicks: st.utime + st.stime,
            container: cg?.container, cgroupPaths: cg?.paths ?? [:], netns: netns, vsize: st.vsize)
        s.threads = st.threads
        return s
    }

    /// /proc/<pid>/stat through `files` when given (an fd kept open between passes).
    func statBytes(_ pid: Int32, files: ProcStatFiles?) -> [UInt8]? {
        if let files { return files.read(pid, root: root) }
        return read("\(pid)/stat", limit: 4096)
    }

    /// The same process again, cheaply: when `known` is still the process at this pid (same start
    /// time), only stat (CPU, name) and the executable link are read; cgroup membership, namespace
    /// and command line carry over, the command line re-read when the executable changed (exec).
    /// `followExe: false` skips the executable link (for processes that are not watched). The
    /// link is read when the name, the CPU time or the address space's size changed since
    /// `known` (an exec replaces the address space and costs CPU) or when `recheck` (the caller
    /// asks now and then): a sleeping process costs one read of its stat.
    public func process(_ pid: Int32, known: ProcessSample?, followExe: Bool = true, recheck: Bool = true, files: ProcStatFiles? = nil) -> ProcessSample? {
        guard let known else { return process(pid) }
        guard let statBytes = statBytes(pid, files: files), let st = ProcParsers.stat(statBytes) else { return nil }
        guard st.start == known.startTicks else { return process(pid) }
        var s = known
        s.comm = st.comm
        s.cpuTicks = st.utime + st.stime
        s.vsize = st.vsize
        s.threads = st.threads
        if followExe && (recheck || st.comm != known.comm || s.cpuTicks != known.cpuTicks || st.vsize != known.vsize) {
            let exe = link("\(pid)/exe")
            if exe != known.exe || st.comm != known.comm {
                s.exe = exe
                s.cmdline = read("\(pid)/cmdline", limit: 64 * 1024).map(ProcParsers.cmdline) ?? []
            }
        }
        return s
    }

    /// The same host process again (`known` outside every container), with its cgroup membership
    /// read again: a process that joins a container's cgroup after it started (the container's
    /// first process while the runtime sets it up, one started by `exec` into the container) must
    /// not stay a host process. Read in full when it now belongs to a container.
    public func hostProcess(_ pid: Int32, known: ProcessSample, followExe: Bool = false, files: ProcStatFiles? = nil) -> ProcessSample? {
        guard let s = process(pid, known: known, followExe: followExe, files: files) else { return nil }
        guard s.startTicks == known.startTicks, let cg = read("\(pid)/cgroup") else { return s }
        return CgroupPaths.parse(procCgroup: String(decoding: cg, as: UTF8.self)).container == nil ? s : process(pid)
    }

    /// Sockets of `label` ("TCP:", "UDP6:") in use in the pid's network namespace, from
    /// /proc/<pid>/net/sockstat or sockstat6 (per-namespace counts, no table walk).
    func socketsInUse(_ pid: Int32, file: String, label: String) -> Int? {
        read("\(pid)/net/\(file)", limit: 4096).flatMap { NetParsers.inUse($0, label: label) }
    }

    /// Seconds since boot (/proc/uptime), the clock of processes' start ticks.
    public func uptime() -> Double? {
        read("uptime", limit: 256).flatMap { b in
            b.split(separator: 32).first.flatMap { Double(String(decoding: $0, as: UTF8.self)) }
        }
    }

    /// /proc/<pid>/mountinfo as text.
    public func mountinfo(_ pid: Int32) -> String? {
        read("\(pid)/mountinfo", limit: 4 << 20).map { String(decoding: $0, as: UTF8.self) }
    }

    public func environment(_ pid: Int32, keep: Set<String>) -> [String: String] {
        read("\(pid)/environ", limit: 256 * 1024).map { ProcParsers.environ($0, keep: keep) } ?? [:]
    }

    /// The container's /etc/hosts as address -> names, read through the container's confined root
    /// (a link there resolves inside the container, never on the host), at most 64 KiB; with its
    /// modification time. nil when it cannot be read; names nil when its modification time is
    /// still `unlessModified` (not read again).
    /// Only while the pid is still the process that started at `startTicks` (a reused pid is not read).
    public func hostsFile(_ pid: Int32, startTicks: UInt64, unlessModified known: Int? = nil) -> (mtime: Int, names: [String: [String]]?)? {
        guard let dir = ProcessFolder(procRoot: root, pid: pid, startTicks: startTicks)?.root(), let h = try? dir.openFile("etc/hosts") else { return nil }
        var st = stat()
        guard fstat(h.fd, &st) == 0 else { return nil }
        let mtime = Int(st.st_mtim.tv_sec) * 1_000_000_000 + Int(st.st_mtim.tv_nsec)
        if mtime == known { return (mtime, nil) }
        // At most 64 KiB are read (a longer file is read as far as that).
        var buf = [UInt8](repeating: 0, count: 65536)
        var used = 0
        while used < buf.count {
            let n = buf.withUnsafeMutableBytes { b in retryingEINTR { Glibc.pread(h.fd, b.baseAddress.map { $0 + used }, b.count - used, off_t(used)) } }
            if n < 0 { return nil }
            if n == 0 { break }
            used += n
        }
        return (mtime, ProcParsers.hosts(Array(buf[0..<used])))
    }
}

extension ProcfsReader {
    /// /proc/<pid>/net/`name`, read once, or through `files` kept open between passes for the
    /// process that started at `startTicks` (an open /proc/<pid>/net file reads the namespace the
    /// process had when it was opened, so it is kept per process, never per pid).
    func netFile(_ pid: Int32, _ name: String, limit: Int, startTicks: UInt64, files: KeptFiles?) -> [UInt8]? {
        guard let files else { return read("\(pid)/net/\(name)", limit: limit) }
        return files.read("\(root)/\(pid)/net/\(name)", key: "\(pid)@\(startTicks)/\(name)", limit: limit)
    }

    /// Interface counters of the process's network namespace (see `netFile` for `files`).
    public func netCounters(_ pid: Int32, startTicks: UInt64 = 0, files: KeptFiles? = nil) -> NetCounters? {
        netFile(pid, "dev", limit: 1 << 20, startTicks: startTicks, files: files).map { NetParsers.dev($0) }
    }

    /// Changes whenever a TCP segment moves or a connection opens, fails or resets in the
    /// process's network namespace (loopback included), from /proc/<pid>/net/snmp: while both
    /// numbers are unchanged, so are the namespace's TCP sockets and their counters.
    public func tcpCounters(_ pid: Int32, startTicks: UInt64 = 0, files: KeptFiles? = nil) -> (connections: UInt64, segments: UInt64, established: UInt64)? {
        netFile(pid, "snmp", limit: 16384, startTicks: startTicks, files: files).flatMap(NetParsers.tcpCounters)
    }

    /// How many TCP and UDP sockets (IPv4 and IPv6 together) the process's network namespace
    /// has, from sockstat and sockstat6 ("inuse": every socket in the kernel's tables but
    /// TIME_WAIT and half-open requests, which are counted apart): small files, no table walk.
    public func socketCounts(_ pid: Int32, startTicks: UInt64 = 0, files: KeptFiles? = nil) -> (tcp: Int, udp: Int)? {
        guard let v4 = netFile(pid, "sockstat", limit: 4096, startTicks: startTicks, files: files),
              let tcp = NetParsers.inUse(v4, label: "TCP:"), let udp = NetParsers.inUse(v4, label: "UDP:") else { return nil }
        // Without IPv6 there is no sockstat6, and no IPv6 socket.
        let v6 = netFile(pid, "sockstat6", limit: 4096, startTicks: startTicks, files: files)
        let tcp6 = v6.map { NetParsers.inUse($0, label: "TCP6:") } ?? 0, udp6 = v6.map { NetParsers.inUse($0, label: "UDP6:") } ?? 0
        guard let tcp6, let udp6 else { return nil }
        return (tcp + tcp6, udp + udp6)
    }

    /// TCP and UDP sockets (IPv4 and IPv6) of the process's network namespace.
    public func sockets(_ pid: Int32, tcp: Bool = true) -> [SocketEntry] {
        var out: [SocketEntry] = []
        let files: [(String, SocketEntry.Proto)] = tcp ? [("tcp", .tcp), ("tcp6", .tcp), ("udp", .udp), ("udp6", .udp)] : [("udp", .udp), ("udp6", .udp)]
        for (file, proto) in files {
            // Reading a table walks the kernel's host-wide hash of that protocol: skipped when the
            // namespace has no such socket (its count in sockstat, sockstat6).
            let label = (proto == .tcp ? "TCP" : "UDP") + (file.hasSuffix("6") ? "6:" : ":")
            if socketsInUse(pid, file: file.hasSuffix("6") ? "sockstat6" : "sockstat", label: label) == 0 { continue }
            if let data = read("\(pid)/net/\(file)", limit: 8 << 20) {
                out += NetParsers.sockets(String(decoding: data, as: UTF8.self), proto: proto)
            }
        }
        return out
    }
}

/// Open /proc/<pid>/stat files kept between passes and re-read with pread: no path lookup per
/// pass, and a read fails once the process is gone, so a reused pid is never mistaken for the
/// old process. At most `capacity` are kept (the rest are opened per read).
/// Used from the sampler's thread only.
public final class ProcStatFiles {
    var fds: [Int32: Int32] = [:]
    let capacity: Int

    public init(capacity: Int = 4096) {
        // Use part of the soft fd limit, raised to the hard one when allowed.
        var lim = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &lim) == 0 {
            if lim.rlim_cur < lim.rlim_max {
                var raised = lim
                raised.rlim_cur = lim.rlim_max
                if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { lim = raised }
            }
            self.capacity = min(capacity, max(0, Int(min(lim.rlim_cur, 1 << 30)) / 2 - 64))
        } else {
            self.capacity = min(capacity, 256)
        }
    }

    deinit { for fd in fds.values { close(fd) } }

    func read(_ pid: Int32, root: String) -> [UInt8]? {
        var fd = fds[pid] ?? -1
        var fresh = false
        if fd < 0 {
            fd = open("\(root)/\(pid)/stat", O_RDONLY | O_CLOEXEC)
            if fd < 0 { return nil }
            fresh = true
        }
        var buf = [UInt8](repeating: 0, count: 2048)
        let n = buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        if n <= 0 {
            close(fd)
            fds[pid] = nil
            return nil
        }
        if fresh {
            if fds.count < capacity { fds[pid] = fd } else { close(fd) }
        }
        return Array(buf[0..<n])
    }

    /// Closes the files of pids that are no longer listed.
    public func retain(_ pids: Set<Int32>) {
        for (pid, fd) in fds where !pids.contains(pid) {
            close(fd)
            fds[pid] = nil
        }
    }
}
