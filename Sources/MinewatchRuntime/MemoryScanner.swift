import Foundation
import MinewatchCore
import MinewatchAnalysis
import MinewatchHost
import MinewatchModel
import MinewatchSignatures

/// Scans what a process has in memory with the content rules: whatever packed, encrypted or
/// fileless loader put it there, the code runs unpacked, and its constants and strings are in
/// its mappings. Read with process_vm_readv (never stopped), bounded per region, per process and
/// per pass; a process that exits mid-read costs what was read.
///
/// Regions read: mappings of the program's own file, of a memfd or of a deleted file (loaders
/// launch from those), and anonymous readable mappings (what a loader decrypts into, JIT code,
/// the heap), smallest first, each at most `maxRegion`; shared libraries of the image are the
/// file scan's business, and kernel pages ([vdso], [vvar]) are skipped.
public final class MemoryScanner {
    public struct Limits: Sendable {
        /// Largest mapping read (RandomX's 256 MiB cache and 2 GiB dataset are pseudo-random
        /// data, no code: their size is the signal, not their content).
        public var maxRegion: UInt64 = 64 << 20
        public var perProcess: Int = 96 << 20
        public var perPass: Int = 192 << 20
        public init() {}
    }

    public static let categories: Set<String> = ["miner-binary", "miner-algorithm", "bandwidth-hijacking"]
    let analyzer: FileAnalyzer
    let procRoot: String
    public var limits: Limits
    let buffer: UnsafeMutableRawBufferPointer
    var budget: Int
    public private(set) var bytesRead: Int64 = 0
    public private(set) var processesScanned = 0

    public init(rules: CompiledRules, procRoot: String = "/proc", limits: Limits = Limits()) {
        analyzer = FileAnalyzer(rules: rules)
        self.procRoot = procRoot
        self.limits = limits
        budget = limits.perPass
        buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
    }

    deinit { buffer.deallocate() }

    /// A new pass: the per-pass budget starts again.
    public func beginPass() { budget = limits.perPass }
    /// Whether this pass can still read a process.
    public var hasBudget: Bool { budget >= 1 << 20 }

    /// The regions worth reading, in the order they are read.
    public static func selection(_ maps: [MemoryRegion], exe: String?, limits: Limits) -> [MemoryRegion] {
        let program = exe.map { $0.hasSuffix(" (deleted)") ? String($0.dropLast(10)) : $0 }
        let picked = maps.filter { r in
            guard r.readable, !r.isSpecial, r.size > 0, r.size <= limits.maxRegion, !r.path.hasPrefix("/dev/") else { return false }
            if r.isAnonymous || r.isMemfd || r.isDeleted { return true }
            guard let program else { return false }
            return r.path == program || r.path.hasPrefix(program + " ")
        }
        // The program's own mappings and memfd/deleted files first (its code and data), then
        // anonymous executable mappings, then the rest by size.
        func rank(_ r: MemoryRegion) -> Int { !r.isAnonymous ? 0 : (r.executable ? 1 : 2) }
        return picked.sorted { (rank($0), $0.size, $0.start) < (rank($1), $1.size, $1.start) }
    }

    /// Findings in the process's memory (miner categories only: heap text says little), each with
    /// the mapping in its path and offsets into that mapping; nil when its memory could not be
    /// read at all (gone, or not allowed).
    public func findings(for s: ProcessSample) -> [Finding]? {
        guard let mem = ProcessMemory(procRoot: procRoot, pid: s.pid, startTicks: s.startTicks) else { return [] }
        let regions = Self.selection(mem.maps(), exe: s.exe, limits: limits)
        var left = min(limits.perProcess, budget)
        var out: [Finding] = []
        var readAny = false
        for r in regions where left > 0 {
            var address = r.start
            let end = min(r.end, r.start + UInt64(left))
            let label = "memory \(r.label)"
            do throws(MinewatchError) {
                let found = try analyzer.analyze(path: label, layer: nil, fileType: .binary, running: true, read: { (b) throws(MinewatchError) -> Int in
                    guard address < end else { return 0 }
                    let want = Int(min(UInt64(b.count), end - address))
                    guard let n = mem.read(at: address, into: UnsafeMutableRawBufferPointer(rebasing: b[0..<want])) else { return 0 }
                    address += UInt64(n)
                    return n
                }, buffer: buffer).findings
                out += found.filter { Self.categories.contains($0.category) }
            } catch {
                continue
            }
            let n = Int(address - r.start)
            if n > 0 { readAny = true }
            left -= n
            budget -= n
            bytesRead += Int64(n)
        }
        processesScanned += 1
        return readAny || regions.isEmpty ? out : nil
    }
}
