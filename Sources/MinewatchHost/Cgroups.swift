import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// CPU and memory of one cgroup, from cgroup v1 controllers or the v2 unified tree.
public struct CgroupStats: Sendable, Hashable {
    /// Total CPU time in nanoseconds.
    public var cpuNanos: UInt64
    /// The CPU limit in cores (quota / period), nil when unlimited.
    public var cpuLimitCores: Double?
    public var memoryBytes: UInt64?
    /// CFS bandwidth periods elapsed and periods in which the cgroup used its whole quota and was
    /// throttled (cpu.stat `nr_periods`, `nr_throttled`): the kernel's word that it wanted more CPU.
    public var periods: UInt64?
    public var throttledPeriods: UInt64?
    public init(cpuNanos: UInt64, cpuLimitCores: Double?, memoryBytes: UInt64?, periods: UInt64? = nil, throttledPeriods: UInt64? = nil) {
        self.cpuNanos = cpuNanos
        self.cpuLimitCores = cpuLimitCores
        self.memoryBytes = memoryBytes
        self.periods = periods
        self.throttledPeriods = throttledPeriods
    }
}

/// Reads a container's cgroup from `/sys/fs/cgroup` (v1: cpuacct, cpu, memory; v2: cpu.stat,
/// cpu.max, memory.current). Missing files mean "unknown", never an error. Read every pass for
/// every container, so the counters' files stay open between passes (`KeptFiles`; call
/// `endPass()` after each pass), the CPU limit, which rarely changes, is re-read at most every
/// 30 s, and memory is read again only when the cgroup used CPU since (or 30 s passed): an idle
/// container costs one read a pass.
/// Used from the sampler's thread only.
public final class CgroupReader {
    public let root: String
    var limits: [String: (at: Date, cores: Double?)] = [:]
    let v2Base: String
    let files = KeptFiles()
    /// Per memory file: the CPU time and memory last read, and when.
    var memory: [String: (cpu: UInt64, bytes: UInt64?, at: Date)] = [:]
    var memorySeen: Set<String> = []

    /// Closes the files of cgroups not read since the last call and forgets their memory.
    public func endPass() {
        files.sweep()
        memory = memory.filter { memorySeen.contains($0.key) }
        memorySeen.removeAll(keepingCapacity: true)
    }

    /// Memory in bytes from `path`, read again only when `cpu` moved or 30 s passed.
    func memoryBytes(_ path: String, cpu: UInt64) -> UInt64? {
        let now = Date()
        memorySeen.insert(path)
        if let m = memory[path], m.cpu == cpu, now.timeIntervalSince(m.at) < 30 { return m.bytes }
        let bytes = text(path).flatMap { UInt64($0) }
        memory[path] = (cpu, bytes, now)
        return bytes
    }

    public init(root: String = "/sys/fs/cgroup") {
        self.root = root
        v2Base = FileManager.default.fileExists(atPath: "\(root)/cgroup.controllers") ? root : "\(root)/unified"
    }

    /// `nr_periods` and `nr_throttled` from a cpu.stat text.
    static func throttling(_ stat: Substring?) -> (UInt64, UInt64)? {
        guard let stat else { return nil }
        var periods: UInt64?, throttled: UInt64?
        for line in stat.split(separator: "\n") {
            let f = line.split(separator: " ")
            guard f.count == 2 else { continue }
            if f[0] == "nr_periods" { periods = UInt64(f[1]) } else if f[0] == "nr_throttled" { throttled = UInt64(f[1]) }
        }
        guard let periods, let throttled else { return nil }
        return (periods, throttled)
    }

    /// A small file's whole contents (at most 4 KiB), or nil. Read through `files`: one read every
    /// pass keeps it open, and one read now and then (the CPU limit) is closed at the end of
    /// the pass.
    func whole(_ path: String) -> Substring? {
        guard let bytes = files.read(path, limit: 4096), !bytes.isEmpty else { return nil }
        return Substring(String(decoding: bytes, as: UTF8.self))
    }

    /// A small file's contents without the trailing newline, or nil.
    func text(_ path: String) -> Substring? {
        whole(path)?.trimmingPrefix(" ").prefix { $0 != "\n" }
    }

    func limit(_ key: String, read: () -> Double?) -> Double? {
        if let l = limits[key], Date().timeIntervalSince(l.at) < 30 { return l.cores }
        let v = read()
        if limits.count > 10_000 { limits.removeAll() }
        limits[key] = (Date(), v)
        return v
    }

    /// `paths` is the controller -> path map of one of the container's processes.
    public func stats(paths: [String: String]) -> CgroupStats? {
        if let p = paths["cpuacct"] ?? paths["cpu"], let usage = text("\(root)/cpuacct\(p)/cpuacct.usage").flatMap({ UInt64($0) }) {
            let cpuPath = paths["cpu"] ?? p
            let limit = self.limit("v1:\(cpuPath)") {
                guard let q = text("\(root)/cpu\(cpuPath)/cpu.cfs_quota_us").flatMap({ Int64($0) }), q > 0,
                      let period = text("\(root)/cpu\(cpuPath)/cpu.cfs_period_us").flatMap({ Int64($0) }), period > 0 else { return nil }
                return Double(q) / Double(period)
            }
            let mem = paths["memory"].flatMap { memoryBytes("\(root)/memory\($0)/memory.usage_in_bytes", cpu: usage) }
            let t = limit == nil ? nil : Self.throttling(whole("\(root)/cpu\(cpuPath)/cpu.stat"))
            return CgroupStats(cpuNanos: usage, cpuLimitCores: limit, memoryBytes: mem, periods: t?.0, throttledPeriods: t?.1)
        }
        if let p = paths[""] {
            guard let all = whole("\(v2Base)\(p)/cpu.stat"), let stat = all.split(separator: "\n").first, stat.hasPrefix("usage_usec "),
                  let usec = UInt64(stat.dropFirst(11)) else { return nil }
            let limit = self.limit("v2:\(p)") {
                guard let max = text("\(v2Base)\(p)/cpu.max")?.split(separator: " "), max.count == 2, let q = Double(max[0]),
                      let per = Double(max[1]), per > 0 else { return nil }
                return q / per
            }
            let mem = memoryBytes("\(v2Base)\(p)/memory.current", cpu: usec)
            let t = Self.throttling(all)
            return CgroupStats(cpuNanos: usec * 1000, cpuLimitCores: limit, memoryBytes: mem, periods: t?.0, throttledPeriods: t?.1)
        }
        return nil
    }
}
