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

    /// CPU time read this pass (nanoseconds, or nil when unreadable) by usage file, and the value
    /// each read at the pass before.
    var usageThisPass: [String: UInt64?] = [:]
    var usageLastPass: [String: UInt64?] = [:]
    /// cgroup v2's cpu.stat as read this pass (it also holds the throttling counts).
    var statThisPass: [String: Substring] = [:]

    /// Closes the files of cgroups not read since the last call and forgets their memory.
    public func endPass() {
        files.sweep()
        if memory.count > memorySeen.count { memory = memory.filter { memorySeen.contains($0.key) } }
        memorySeen.removeAll(keepingCapacity: true)
        // The two passes' tables change places (no table made again each pass).
        swap(&usageLastPass, &usageThisPass)
        usageThisPass.removeAll(keepingCapacity: true)
        statThisPass.removeAll(keepingCapacity: true)
    }

    /// Usage files by cgroup (its v1 cpuacct or v2 path), made once: asked for every process
    /// and container each pass.
    var usageFiles: [UsageKey: String] = [:]
    struct UsageKey: Hashable {
        let v1: Bool, path: String
    }

    /// The file holding the CPU time of the cgroup `paths` names (v1 cpuacct, else v2).
    func usageFile(_ paths: [String: String]) -> (path: String, v1: Bool)? {
        let v1 = paths["cpuacct"] ?? paths["cpu"]
        guard let p = v1 ?? paths[""] else { return nil }
        let key = UsageKey(v1: v1 != nil, path: p)
        if let f = usageFiles[key] { return (f, key.v1) }
        let f = key.v1 ? "\(root)/cpuacct\(p)/cpuacct.usage" : "\(v2Base)\(p)/cpu.stat"
        if usageFiles.count >= 100_000 { usageFiles.removeAll() }
        usageFiles[key] = f
        return (f, key.v1)
    }

    /// CPU time in nanoseconds of a cgroup, read once a pass (a second call in the same pass
    /// gives the same value).
    func usage(_ file: (path: String, v1: Bool)) -> UInt64? {
        if let u = usageThisPass[file.path] { return u }
        let u: UInt64?
        if file.v1 {
            u = files.number(file.path)
        } else if let all = whole(file.path), let stat = all.split(separator: "\n").first, stat.hasPrefix("usage_usec ") {
            statThisPass[file.path] = all
            u = UInt64(stat.dropFirst(11)).map { $0 &* 1000 }
        } else {
            u = nil
        }
        usageThisPass[file.path] = .some(u)
        return u
    }

    /// Whether no task of the cgroup `paths` names ran since the last pass: its CPU time, read
    /// now (once a pass), is exactly what the last pass read. A process cannot exit, exec, fork,
    /// rename itself or change its memory map without running, so a process of such a cgroup is
    /// as the last pass saw it. False when either read failed or there was no last pass.
    public func idleSinceLastPass(paths: [String: String]) -> Bool {
        guard let file = usageFile(paths) else { return false }
        // Read this pass whatever the last one had, so the next pass can compare.
        let now = usage(file)
        guard let last = usageLastPass[file.path] ?? nil, let now else { return false }
        return now == last
    }

    /// Memory in bytes from `path`, read again only when `cpu` moved or 30 s passed.
    func memoryBytes(_ path: String, cpu: UInt64) -> UInt64? {
        let now = Date()
        memorySeen.insert(path)
        if let m = memory[path], m.cpu == cpu, now.timeIntervalSince(m.at) < 30 { return m.bytes }
        let bytes = files.number(path)
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
        for line in stat.split(separator: "\n") where line.hasPrefix("nr_") {
            if line.hasPrefix("nr_periods ") {
                periods = UInt64(line.dropFirst(11))
            } else if line.hasPrefix("nr_throttled ") {
                throttled = UInt64(line.dropFirst(13))
            }
            if periods != nil, throttled != nil { break }
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

    /// A v1 cgroup's files besides its CPU time, by its cpu and memory paths: made once, as
    /// they are asked for every container every pass.
    struct V1Files {
        let limitKey: String, quota: String, period: String, stat: String, memory: String?
    }
    var v1Files: [V1Key: V1Files] = [:]
    struct V1Key: Hashable {
        let cpu: String, memory: String?
    }

    func v1Files(cpu: String, memory: String?) -> V1Files {
        let key = V1Key(cpu: cpu, memory: memory)
        if let f = v1Files[key] { return f }
        let f = V1Files(limitKey: "v1:\(cpu)", quota: "\(root)/cpu\(cpu)/cpu.cfs_quota_us", period: "\(root)/cpu\(cpu)/cpu.cfs_period_us",
                        stat: "\(root)/cpu\(cpu)/cpu.stat", memory: memory.map { "\(root)/memory\($0)/memory.usage_in_bytes" })
        if v1Files.count >= 100_000 { v1Files.removeAll() }
        v1Files[key] = f
        return f
    }

    /// `paths` is the controller -> path map of one of the container's processes.
    public func stats(paths: [String: String]) -> CgroupStats? {
        if let p = paths["cpuacct"] ?? paths["cpu"], let file = usageFile(paths), let usage = usage(file) {
            let f = v1Files(cpu: paths["cpu"] ?? p, memory: paths["memory"])
            let limit = self.limit(f.limitKey) {
                guard let q = text(f.quota).flatMap({ Int64($0) }), q > 0,
                      let period = text(f.period).flatMap({ Int64($0) }), period > 0 else { return nil }
                return Double(q) / Double(period)
            }
            let mem = f.memory.flatMap { memoryBytes($0, cpu: usage) }
            let t = limit == nil ? nil : Self.throttling(whole(f.stat))
            return CgroupStats(cpuNanos: usage, cpuLimitCores: limit, memoryBytes: mem, periods: t?.0, throttledPeriods: t?.1)
        }
        if let p = paths[""] {
            guard let file = usageFile(paths), let nanos = usage(file), let all = statThisPass[file.path] else { return nil }
            let limit = self.limit("v2:\(p)") {
                guard let max = text("\(v2Base)\(p)/cpu.max")?.split(separator: " "), max.count == 2, let q = Double(max[0]),
                      let per = Double(max[1]), per > 0 else { return nil }
                return q / per
            }
            let mem = memoryBytes("\(v2Base)\(p)/memory.current", cpu: nanos)
            let t = Self.throttling(all)
            return CgroupStats(cpuNanos: nanos, cpuLimitCores: limit, memoryBytes: mem, periods: t?.0, throttledPeriods: t?.1)
        }
        return nil
    }
}
