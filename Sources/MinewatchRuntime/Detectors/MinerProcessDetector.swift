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
/// are cached by device, inode, size and mtime: each file is scanned once.
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

    /// Findings of the process's executable and script; nil when the executable could not be read
    /// (the process is asked about again later: an unreadable file is never taken for a clean one).
    public func findings(for s: ProcessSample) -> [Finding]? {
        // Everything is read through the process's own /proc folder, checked to be the process
        // sampled: a pid reused by another process (a host one) is never read through.
        guard let folder = ProcessFolder(procRoot: procRoot, pid: s.pid, startTicks: s.startTicks) else {
            // Gone, or replaced, is not a failure: nothing runs there any more.
            return []
        }
        // `exe` is the kernel's link to the very file the process runs (not a path the container
        // chooses), so it is opened as it is.
        guard let exe = folder.open("exe", flags: O_RDONLY | O_NONBLOCK | O_NOCTTY), var out = scan(exe, label: "exe") else { return nil }
        if let exePath = s.exe, Self.isInterpreter(exePath), let script = Self.scriptArgument(s.cmdline),
           let handle = openScript(script, in: folder) {
            out += scan(handle, label: "script \(script)") ?? []
        }
        return out
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
        let key = "\(st.st_dev):\(st.st_ino):\(st.st_size):\(st.st_mtim.tv_sec)"
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
/// same rules as `scan` (so a renamed or packed XMRig or packetcrypt is still named), and the
/// command line and environment scanned as text (pool URLs, wallets, `--donate-level`,
/// `ann -p pkt1...`). Each process is looked at once per program it runs; one whose executable
/// could not be read is looked at again in the next pass.
public final class MinerProcessDetector: ContainerDetector {
    public static let environmentKeys: Set<String> = ["POOL_URL", "POOL_USER", "POOL_PASS", "DONATE_LEVEL", "WALLET", "WALLET_ADDRESS", "MINING_POOL"]
    /// Categories that make a process a miner (others, like a packer alone, are not alerts).
    static let minerCategories: Set<String> = ["miner-binary", "miner-script", "miner-config", "miner-cmdline", "miner-env", "miner-image",
                                               "pool-url", "wallet", "dropper", "bandwidth-hijacking"]

    public let id = DetectorID.minerProcess
    public let scanner: ExecutableScanner
    let analyzer: FileAnalyzer
    let times: ProcessTimes

    /// Processes (by key) whose executable could not be read yet.
    public struct State { var pending: Set<String> = [] }

    public init(rules: CompiledRules, procRoot: String = "/proc", times: ProcessTimes) {
        scanner = ExecutableScanner(rules: rules, procRoot: procRoot)
        analyzer = FileAnalyzer(rules: rules)
        self.times = times
    }

    public func makeState() -> State { State() }

    /// Findings for one process, at or above medium, in miner categories; nil when its
    /// executable could not be read.
    public func inspect(_ o: ProcessObservation) -> [Finding]? {
        guard var out = scanner.findings(for: o.sample) else { return nil }
        let cmd = o.sample.cmdline.joined(separator: " ")
        if !cmd.isEmpty { out += analyzer.analyze(text: cmd, path: "cmdline") }
        if !o.environment.isEmpty {
            let env = o.environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "\n")
            out += analyzer.analyze(text: env, path: "environ")
        }
        return out.filter { Self.minerCategories.contains($0.category) && $0.severity >= .medium }
    }

    public func inspect(_ pass: ContainerPass, state: inout State, context: DetectionContext) -> Verdict? {
        if context.alerted.contains(id) { return nil }
        let live = Set(pass.snapshot.processes.map(\.key))
        state.pending = state.pending.intersection(live)
        for p in pass.snapshot.processes where p.isNew || state.pending.contains(p.key) {
            guard let findings = inspect(ProcessObservation(sample: p.sample, environment: p.environment)) else {
                state.pending.insert(p.key)
                continue
            }
            state.pending.remove(p.key)
            guard let worst = findings.max(by: { $0.severity < $1.severity }) else { continue }
            let s = p.sample
            let family = worst.family ?? findings.compactMap(\.family).first
            let where_ = Set(findings.map(\.path)).sorted().joined(separator: ", ")
            let what = worst.category == "bandwidth-hijacking" ? "bandwidth-sharing service (proxyware)" : "miner"
            return Verdict(
                severity: worst.severity, family: family,
                summary: "\(family ?? "unknown") \(what) running as pid \(s.pid) (\(s.comm)): \(worst.title) in \(where_)",
                technique: worst.technique,
                evidence: findings.flatMap { f in f.evidence.map { var e = $0; e.name = "\(f.ruleId):\(e.name)"; return e } },
                metrics: ["findings": Double(findings.count)], pid: s.pid, exe: s.exe, startedAt: times.start(of: s))
        }
        return nil
    }
}

/// When processes started: their start ticks after boot.
public struct ProcessTimes: Sendable {
    public let bootTime: Date
    public let ticksPerSecond: Double
    public init(procRoot: String = "/proc") {
        ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))
        let uptime = (try? String(contentsOfFile: "\(procRoot)/uptime", encoding: .utf8))?.split(separator: " ").first.flatMap { Double($0) } ?? 0
        bootTime = Date().addingTimeInterval(-uptime)
    }
    public func start(of s: ProcessSample) -> Date { bootTime.addingTimeInterval(Double(s.startTicks) / ticksPerSecond) }
}
