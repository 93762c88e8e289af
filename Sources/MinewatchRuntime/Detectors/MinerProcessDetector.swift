import Foundation
import MinewatchCore
import MinewatchAnalysis
import MinewatchHost
import MinewatchModel
import MinewatchSignatures
#if canImport(Glibc)
import Glibc
#endif

/// What the process detector looks at for one process.
public struct ProcessObservation: Sendable {
    public var sample: ProcessSample
    /// Selected environment variables (POOL_URL, WALLET, ...).
    public var environment: [String: String]
    public init(sample: ProcessSample, environment: [String: String]) {
        self.sample = sample
        self.environment = environment
    }
}

/// Reads what a process runs for the content rules: its executable through /proc/<pid>/exe (so
/// a renamed or deleted binary is still read; packed ones are unpacked by the file analysis), and
/// for an interpreter the script it was started with (node annmine.js, python3 miner.py). Results
/// are cached by the file's identity (below): each file is scanned once, however many containers
/// run it.
public final class ExecutableScanner {
    public static let interpreters: Set<String> = ["node", "nodejs", "python", "python2", "python3", "perl", "ruby", "php", "bun", "deno"]
    /// Largest script read.
    public static let maxScript = 4 << 20
    let analyzer: FileAnalyzer
    let procRoot: String
    var cache: [String: [Finding]] = [:]
    let buffer: UnsafeMutableRawBufferPointer
    public private(set) var filesScanned = 0

    public init(rules: CompiledRules, procRoot: String = "/proc") {
        analyzer = FileAnalyzer(rules: rules)
        self.procRoot = procRoot
        buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: FileAnalyzer.chunkSize, alignment: 16)
    }

    deinit { buffer.deallocate() }

    /// What was read of one process's program: the findings of its executable and script, and
    /// the path of the executable actually read. That path is the one to report: the sample's
    /// path was read earlier, and a process that started another program in between (a shell's
    /// child that execs a miner, between the sample and the read) would be reported as the shell.
    public struct Read: Sendable {
        public var findings: [Finding]
        public var exe: String?
    }

    /// Findings of the process's executable and script; nil when the executable could not be read
    /// (the process is asked about again later: an unreadable file is never taken for a clean one).
    public func findings(for s: ProcessSample) -> [Finding]? { read(s)?.findings }

    /// The process's executable (and an interpreter's script) read and scanned; nil when the
    /// executable could not be read.
    public func read(_ s: ProcessSample) -> Read? {
        // Everything is read through the process's own /proc folder, checked to be the process
        // sampled: a pid reused by another process (a host one) is never read through.
        guard let folder = ProcessFolder(procRoot: procRoot, pid: s.pid, startTicks: s.startTicks) else {
            // Gone, or replaced, is not a failure: nothing runs there any more.
            return Read(findings: [], exe: s.exe)
        }
        // `exe` is the kernel's link to the very file the process runs (not a path the container
        // chooses), so it is opened as it is.
        guard let exe = folder.open("exe", flags: O_RDONLY | O_NONBLOCK | O_NOCTTY), var out = scan(exe, label: "exe") else { return nil }
        let exePath = exe.kernelPath() ?? s.exe
        if let exePath, Self.isInterpreter(exePath), let script = Self.scriptArgument(s.cmdline),
           let handle = openScript(script, in: folder) {
            out += scan(handle, label: "script \(script)") ?? []
        }
        return Read(findings: out, exe: exePath)
    }

    /// The script named on an interpreter's command line, opened inside the process's root: an
    /// absolute path or a link there resolves as it does for the process (never on the host), a
    /// relative one from its working folder as the process sees it.
    func openScript(_ script: String, in folder: ProcessFolder) -> FileHandleFD? {
        var path = script
        if !script.hasPrefix("/") {
            guard let cwd = folder.link("cwd"), cwd.hasPrefix("/"), !cwd.hasSuffix(" (deleted)") else { return nil }
            path = cwd + "/" + script
        }
        return try? folder.root()?.openFile(path)
    }

    static func isInterpreter(_ exe: String) -> Bool {
        var base = String(exe.split(separator: "/").last ?? "")
        if base.hasSuffix(" (deleted)") { base = String(base.dropLast(10)) }
        if interpreters.contains(base) { return true }
        return base.hasPrefix("python3.") || base.hasPrefix("node") && base.dropFirst(4).allSatisfy(\.isNumber)
    }

    /// The script an interpreter was started with: its first argument that is not an option
    /// (`node --max-old-space-size=64 annmine.js ...`, `python3 -u miner.py`); nil for `-c`/`-e` code.
    static func scriptArgument(_ argv: [String]) -> String? {
        for a in argv.dropFirst() {
            if a == "-c" || a == "-e" || a == "-m" || a == "--eval" { return nil }
            if a.hasPrefix("-") { continue }
            return a.isEmpty ? nil : a
        }
        return nil
    }

    /// One file's findings, cached; nil when it could not be read.
    func scan(_ handle: FileHandleFD, label: String) -> [Finding]? {
        let fd = handle.fd
        var st = stat()
        guard fstat(fd, &st) == 0 else { return nil }
        guard (st.st_mode & S_IFMT) == S_IFREG else { return [] }
        if label != "exe" && st.st_size > Self.maxScript { return [] }
        // The underlying file, without the device: every overlay mount has a device of its own
        // but gives a file of a lower layer (on one file system) its real inode number and times,
        // so the same binary in 500 containers of an image is one entry (it was 500 scans in a
        // node's first pass). The status-change time, to the nanosecond, is set by the kernel
        // alone: a new file cannot be made to match a scanned one, even given its inode number.
        let key = "\(st.st_ino):\(st.st_size):\(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec):\(st.st_ctim.tv_sec).\(st.st_ctim.tv_nsec)"
        if let cached = cache[key] { return cached }
        var offset: Int64 = 0
        let limit = label == "exe" ? Int64.max : Int64(Self.maxScript)
        do throws(MinewatchError) {
            let found = try analyzer.analyze(path: label, layer: nil, running: true, read: { (b) throws(MinewatchError) -> Int in
                guard offset < limit else { return 0 }
                let n = pread(fd, b.baseAddress, b.count, off_t(offset))
                if n < 0 { throw MinewatchError.posix("read", subject: handle.path, errno: errno) }
                offset += Int64(n)
                return n
            }, buffer: buffer).findings
            filesScanned += 1
            if cache.count > 4096 { cache.removeAll() }
            cache[key] = found
            return found
        } catch {
            return nil
        }
    }
}

/// Detector 1 of `watch`: the running executable (and an interpreter's script) scanned with the
/// same rules as `scan` (so a renamed or packed XMRig or packetcrypt is still named), the command
/// line and environment scanned as text (pool URLs, wallets, `--donate-level`, `ann -p pkt1...`),
/// and the memory of processes that deserve it scanned with the same rules (`MemoryScanner`):
/// new processes whose file is packed, unreadable, a memfd or deleted, interpreters, and any
/// process that burns CPU while its file looked clean (read again once when it does). Each
/// process is looked at once per program it runs; one whose executable could not be read is
/// looked at again in the next pass.
public final class MinerProcessDetector: ContainerDetector {
    public static let environmentKeys: Set<String> = ["POOL_URL", "POOL_USER", "POOL_PASS", "DONATE_LEVEL", "WALLET", "WALLET_ADDRESS", "MINING_POOL"]
    /// Categories that make a process a miner (others, like a packer alone, are not alerts).
    static let minerCategories: Set<String> = ["miner-binary", "miner-script", "miner-config", "miner-cmdline", "miner-env", "miner-image",
                                               "pool-url", "wallet", "dropper", "bandwidth-hijacking"]
    /// CPU a process must use for its memory to be read although its file looked clean: half a
    /// core, or a quarter of its container's limit when that is less (a miner throttled to a
    /// quarter core, on a contended host, still burns what it gets).
    public static let hotCores = 0.5
    public static let hotShare = 0.25

    public let id = DetectorID.minerProcess
    public let scanner: ExecutableScanner
    /// nil: memory scanning is off.
    public let memory: MemoryScanner?
    let analyzer: FileAnalyzer
    let times: ProcessTimes
    var lastPass: Date?

    public struct State {
        /// Processes (by key) whose executable could not be read yet.
        var pending: Set<ProcessKey> = []
        /// Processes whose memory is to be read (their file gave a reason), by key.
        var memoryWanted: Set<ProcessKey> = []
        /// Processes whose memory was read, by key.
        var memoryRead: [ProcessKey: MemoryRead] = [:]
    }

    /// What was read of a process's memory.
    struct MemoryRead {
        /// Read while it burned CPU: not read again.
        var hot: Bool
        /// Its address space's size at the last read, and how many reads it had while cold.
        var vsize: UInt64
        var coldReads: Int
    }

    /// Reads of a wanted process while it is cold: again when its address space grew or shrank
    /// since the last (a loader maps what it unpacks into, a program it started allocates), so a
    /// read that came before the unpacking is not the last word until the program burns CPU.
    public static let coldReads = 4

    public init(rules: CompiledRules, procRoot: String = "/proc", times: ProcessTimes, memoryScan: Bool = true) {
        scanner = ExecutableScanner(rules: rules, procRoot: procRoot)
        memory = memoryScan ? MemoryScanner(rules: rules, procRoot: procRoot) : nil
        analyzer = FileAnalyzer(rules: rules)
        self.times = times
    }

    public func makeState() -> State { State() }

    /// No executable left to read and no memory read put off for want of budget (none is
    /// wanted when memory scanning is off).
    public func settled(_ state: State) -> Bool {
        state.pending.isEmpty && (memory == nil || state.memoryWanted.allSatisfy { state.memoryRead[$0] != nil })
    }

    /// Findings for one process, at or above medium, in miner categories; nil when its
    /// executable could not be read.
    public func inspect(_ o: ProcessObservation) -> [Finding]? {
        guard let all = fileFindings(o)?.findings else { return nil }
        return all.filter { Self.minerCategories.contains($0.category) && $0.severity >= .medium }
    }

    /// Every finding of the executable, script, command line and environment, and the path of
    /// the executable read.
    func fileFindings(_ o: ProcessObservation) -> ExecutableScanner.Read? {
        guard var read = scanner.read(o.sample) else { return nil }
        let cmd = o.sample.cmdline.joined(separator: " ")
        if !cmd.isEmpty { read.findings += analyzer.analyze(text: cmd, path: "cmdline") }
        if !o.environment.isEmpty {
            let env = o.environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "\n")
            read.findings += analyzer.analyze(text: env, path: "environ")
        }
        return read
    }

    /// Whether a process's file gives a reason to read its memory: packed (any packer finding),
    /// run from a memfd or a deleted file, or an interpreter (which can map native code).
    static func memoryWorthReading(exe: String?, fileFindings: [Finding]) -> Bool {
        guard let exe else { return true }
        if exe.hasPrefix("/memfd:") || exe.hasSuffix(" (deleted)") || ExecutableScanner.isInterpreter(exe) { return true }
        return fileFindings.contains { $0.category == "packed-executable" || $0.ruleId.hasPrefix("MW-PACKED") }
    }

    public func inspect(_ pass: ContainerPass, state: inout State, context: DetectionContext) -> Verdict? {
        if context.alerted.contains(id) { return nil }
        if lastPass != context.now {
            lastPass = context.now
            memory?.beginPass()
        }
        if !state.pending.isEmpty || !state.memoryWanted.isEmpty || !state.memoryRead.isEmpty {
            let live = Set(pass.snapshot.processes.map(\.key))
            state.pending = state.pending.intersection(live)
            state.memoryWanted = state.memoryWanted.intersection(live)
            state.memoryRead = state.memoryRead.filter { live.contains($0.key) }
        }
        for p in pass.snapshot.processes {
            let s = p.sample
            let cores = p.cpuCores ?? 0
            if p.isNew || state.pending.contains(p.key) {
                guard let read = fileFindings(ProcessObservation(sample: s, environment: p.environment)) else {
                    state.pending.insert(p.key)
                    continue
                }
                state.pending.remove(p.key)
                let findings = read.findings.filter { Self.minerCategories.contains($0.category) && $0.severity >= .medium }
                if !findings.isEmpty { return verdict(findings, s, exe: read.exe) }
                if Self.memoryWorthReading(exe: read.exe, fileFindings: read.findings) { state.memoryWanted.insert(p.key) }
            }
            let limit = pass.snapshot.cgroup?.cpuLimitCores ?? Self.hotCores / Self.hotShare
            let hot = cores >= min(Self.hotCores, Self.hotShare * limit)
            guard let memory, memory.hasBudget else { continue }
            let read = state.memoryRead[p.key]
            guard Self.readMemory(wanted: state.memoryWanted.contains(p.key), hot: hot, vsize: s.vsize, last: read) else { continue }
            guard let found = memory.findings(for: s) else { continue }
            state.memoryRead[p.key] = MemoryRead(hot: hot, vsize: s.vsize, coldReads: (read?.coldReads ?? 0) + (hot ? 0 : 1))
            let miner = found.filter { $0.category != "miner-algorithm" && $0.severity >= .medium }
            if !miner.isEmpty { return verdict(miner, s) }
            // Proof-of-work code alone is a node's or a wallet's too: a miner when it burns CPU.
            if hot, let algo = found.first(where: { $0.category == "miner-algorithm" }) {
                var f = algo
                f.severity = .high
                return verdict([f], s, cores: cores)
            }
        }
        return nil
    }

    /// Whether to read a process's memory this pass: a wanted one when never read, or when its
    /// address space changed since a cold read (at most `coldReads` times); any once it is hot.
    static func readMemory(wanted: Bool, hot: Bool, vsize: UInt64, last: MemoryRead?) -> Bool {
        guard let last else { return wanted || hot }
        if last.hot { return false }
        if hot { return true }
        return wanted && last.vsize != vsize && last.coldReads < coldReads
    }

    /// `exe`: the executable as read (`ExecutableScanner.Read`); the sample's path otherwise.
    func verdict(_ findings: [Finding], _ s: ProcessSample, exe: String? = nil, cores: Double? = nil) -> Verdict? {
        guard let worst = findings.max(by: { $0.severity < $1.severity }) else { return nil }
        let family = worst.family ?? findings.compactMap(\.family).first
        let where_ = Set(findings.map(\.path)).sorted().joined(separator: ", ")
        let what = worst.category == "bandwidth-hijacking" ? "bandwidth-sharing service (proxyware)" : "miner"
        // The sample's command name is stale too when the process started another program since.
        var name = s.comm
        if let exe, exe != s.exe { name = String(exe.split(separator: "/").last ?? Substring(exe)) }
        var summary = "\(family ?? "unknown") \(what) running as pid \(s.pid) (\(name)): \(worst.title) in \(where_)"
        if let cores { summary += String(format: ", using %.2f cores", cores) }
        var metrics = ["findings": Double(findings.count)]
        if let cores { metrics["cores"] = cores }
        return Verdict(
            severity: worst.severity, family: family, summary: summary, technique: worst.technique,
            evidence: findings.flatMap { f in
                let mapping = f.path.hasPrefix("memory ") ? [Evidence(kind: .attribute, name: "\(f.ruleId):mapping", value: String(f.path.dropFirst(7)))] : []
                return mapping + f.evidence.map { var e = $0; e.name = "\(f.ruleId):\(e.name)"; return e }
            },
            metrics: metrics, pid: s.pid, exe: exe ?? s.exe, startedAt: times.start(of: s))
    }
}

/// When processes started: their start ticks after boot.
public struct ProcessTimes: Sendable {
    public let bootTime: Date
    public let ticksPerSecond: Double
    public init(procRoot: String = "/proc") {
        ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))
        let uptime = ProcfsReader(root: procRoot).uptime() ?? 0
        bootTime = Date().addingTimeInterval(-uptime)
    }
    public func start(of s: ProcessSample) -> Date { bootTime.addingTimeInterval(Double(s.startTicks) / ticksPerSecond) }
}
