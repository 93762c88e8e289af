import Foundation
import MinewatchCore
import MinewatchDetectors
import MinewatchHost
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

/// Detector 1 of `watch`: the running executable scanned with the same rules as `scan` (so a
/// renamed XMRig or packetcrypt is still named), and the command line and environment scanned
/// as text (pool URLs, wallets, `--donate-level`, `ann -p pkt1...`).
public final class MinerProcessDetector: @unchecked Sendable {
    public static let environmentKeys: Set<String> = ["POOL_URL", "POOL_USER", "POOL_PASS", "DONATE_LEVEL", "WALLET", "WALLET_ADDRESS", "MINING_POOL"]
    /// Categories that make a process a miner (others, like a packer alone, are not alerts).
    static let minerCategories: Set<String> = ["miner-binary", "miner-script", "miner-config", "miner-cmdline", "miner-env", "pool-url", "wallet", "dropper"]

    let analyzer: FileAnalyzer
    let procRoot: String
    /// Executable results keyed by device, inode, size and mtime: each binary is scanned once.
    var exeCache: [String: [Finding]] = [:]
    let buffer: UnsafeMutableRawBufferPointer
    public private(set) var executablesScanned = 0

    public init(rules: CompiledRules, procRoot: String = "/proc") {
        analyzer = FileAnalyzer(rules: rules)
        self.procRoot = procRoot
        buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: FileAnalyzer.chunkSize, alignment: 16)
    }

    deinit { buffer.deallocate() }

    /// Findings for one process, at or above `low`, in miner categories.
    public func inspect(_ o: ProcessObservation) -> [Finding] {
        var out = scanExecutable(pid: o.sample.pid)
        let cmd = o.sample.cmdline.joined(separator: " ")
        if !cmd.isEmpty { out += analyzer.analyze(text: cmd, path: "cmdline") }
        if !o.environment.isEmpty {
            let env = o.environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "\n")
            out += analyzer.analyze(text: env, path: "environ")
        }
        return out.filter { Self.minerCategories.contains($0.category) && $0.severity >= .medium }
    }

    func scanExecutable(pid: Int32) -> [Finding] {
        let path = "\(procRoot)/\(pid)/exe"
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { return [] }  // gone, or a kernel thread
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return [] }
        let key = "\(st.st_dev):\(st.st_ino):\(st.st_size):\(st.st_mtim.tv_sec)"
        if let cached = exeCache[key] { return cached }
        var offset: Int64 = 0
        let findings = (try? analyzer.analyze(path: "exe", layer: nil, read: { (b) throws(MinewatchError) -> Int in
            let n = pread(fd, b.baseAddress, b.count, off_t(offset))
            if n < 0 { throw MinewatchError.posix("read", subject: path, errno: errno) }
            offset += Int64(n)
            return n
        }, buffer: buffer).findings) ?? []
        executablesScanned += 1
        if exeCache.count > 4096 { exeCache.removeAll() }
        exeCache[key] = findings
        return findings
    }
}
