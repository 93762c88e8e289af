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
    let v2Base: String
    let files = KeptFiles()

    /// One cgroup: its files' paths, made once, and what was read of them. A container's
    /// cgroup is asked about several times a pass (for each of its processes, its telemetry, its
    /// network), so each question is one lookup of its record, not several of its paths.
    final class Record {
        let v1: Bool
        /// v1: cpuacct.usage; v2: cpu.stat (usage and throttling in one file).
        let usagePath: String
        /// v1: cpu.cfs_quota_us and cpu.cfs_period_us; v2: cpu.max.
        let limitPaths: [String]
        /// v1: the cpu controller's cpu.stat (v2's throttling is in `usagePath`).
        let throttlingPath: String?
        let memoryPath: String?
        /// The CPU limit in cores and when it was read.
        var limit: (at: Date, cores: Double?)?
        /// The CPU time and memory last read, and when.
        var memory: (cpu: UInt64, bytes: UInt64?, at: Date)?
        /// CPU time (nanoseconds; nil when unreadable) read at pass `usagePass`, and what the
        /// pass before it read (nil when it did not).
        var usage: UInt64?
        var usagePass = -1
        var lastUsage: UInt64?
        /// v2's throttling counts, read with the CPU time from cpu.stat at `usagePass`.
        var throttling: (UInt64, UInt64)?
        /// The last pass that asked about it.
        var seenPass = 0

        init(v1: Bool, usagePath: String, limitPaths: [String], throttlingPath: String?, memoryPath: String?) {
            self.v1 = v1
            self.usagePath = usagePath
            self.limitPaths = limitPaths
            self.throttlingPath = throttlingPath
            self.memoryPath = memoryPath
        }
    }

    /// Records by the cgroup's v1 cpuacct (else cpu) path, or its v2 path.
    var records: [RecordKey: Record] = [:]
    struct RecordKey: Hashable {
        let v1: Bool, path: String
    }
    var pass = 0

    /// Closes the files of cgroups not read since the last call; records not asked about for a
    /// minute of passes are forgotten.
    public func endPass() {
        files.sweep()
        pass += 1
        if pass % 32 == 0 {
            records = records.filter { pass - $0.value.seenPass < 32 }
            byIdentity = byIdentity.filter { pass - $0.value.seen < 32 }
        }
    }

    /// Records by the identity of a process's sample (see `ProcessSample.Identity`): a process's
    /// cgroup paths are the same object pass after pass, so its record is found by that object
    /// instead of by hashing its paths, several times a pass for every process (a tenth of the
    /// sampler on a dense node). The identity is held, so no other object takes its address while
    /// its entry stands; entries go with the records, after 32 passes unasked.
    var byIdentity: [ObjectIdentifier: (identity: ProcessSample.Identity, record: Record?, seen: Int)] = [:]

    func record(of s: ProcessSample) -> Record? {
        let key = ObjectIdentifier(s.identity)
        if let hit = byIdentity[key] {
            if hit.seen != pass { byIdentity[key]?.seen = pass }
            hit.record?.seenPass = pass
            return hit.record
        }
        let r = record(s.cgroupPaths)
        byIdentity[key] = (s.identity, r, pass)
        return r
    }

    /// Which record the cgroup `paths` names has: its v1 cpuacct (else cpu) path, or its v2 path.
    static func recordKey(_ paths: [String: String]) -> RecordKey? {
        let v1 = paths["cpuacct"] ?? paths["cpu"]
        guard let p = v1 ?? paths[""] else { return nil }
        return RecordKey(v1: v1 != nil, path: p)
    }

    /// The record of the cgroup `paths` names (v1 cpuacct or cpu, else v2), made when first asked.
    func record(_ paths: [String: String]) -> Record? {
        guard let key = Self.recordKey(paths) else { return nil }
        let p = key.path
        let r: Record
        if let known = records[key] {
            r = known
        } else if key.v1 {
            let cpu = paths["cpu"] ?? p
            r = Record(v1: true, usagePath: "\(root)/cpuacct\(p)/cpuacct.usage",
                       limitPaths: ["\(root)/cpu\(cpu)/cpu.cfs_quota_us", "\(root)/cpu\(cpu)/cpu.cfs_period_us"],
                       throttlingPath: "\(root)/cpu\(cpu)/cpu.stat", memoryPath: paths["memory"].map { "\(root)/memory\($0)/memory.usage_in_bytes" })
            records[key] = r
        } else {
            r = Record(v1: false, usagePath: "\(v2Base)\(p)/cpu.stat", limitPaths: ["\(v2Base)\(p)/cpu.max"], throttlingPath: nil,
                       memoryPath: "\(v2Base)\(p)/memory.current")
            records[key] = r
        }
        r.seenPass = pass
        return r
    }

    /// CPU time in nanoseconds of a cgroup, read once a pass (a second call in the same pass
    /// gives the same value).
    func usage(_ r: Record) -> UInt64? {
        if r.usagePass == pass { return r.usage }
        r.lastUsage = r.usagePass == pass - 1 ? r.usage : nil
        r.usagePass = pass
        if r.v1 {
            r.usage = files.number(r.usagePath)
            r.throttling = nil
        } else {
            let stat = files.withContents(r.usagePath, limit: 4096, Self.cpuStat)
            r.usage = stat?.usageMicros.map { $0 &* 1000 }
            r.throttling = stat?.throttling
        }
        return r.usage
    }

    /// Whether no task of the cgroup `paths` names ran since the last pass: its CPU time, read
    /// now (once a pass), is exactly what the last pass read. A process cannot exit, exec, fork,
    /// rename itself or change its memory map without running, so a process of such a cgroup is
    /// as the last pass saw it. False when either read failed or there was no last pass.
    public func idleSinceLastPass(paths: [String: String]) -> Bool {
        idle(record(paths))
    }

    /// The same for the cgroup a process's sample names.
    public func idleSinceLastPass(_ s: ProcessSample) -> Bool {
        idle(record(of: s))
    }

    func idle(_ r: Record?) -> Bool {
        guard let r else { return false }
        // Read this pass whatever the last one had, so the next pass can compare.
        guard let now = usage(r), let last = r.lastUsage else { return false }
        return now == last
    }

    /// Whether this pass has read the CPU time of the cgroup a process's sample names (a process
    /// read before that read may have changed in between).
    public func usageReadThisPass(_ s: ProcessSample) -> Bool {
        record(of: s)?.usagePass == pass
    }

    /// Memory in bytes, read again only when `cpu` moved or 30 s passed.
    func memoryBytes(_ r: Record, cpu: UInt64) -> UInt64? {
        guard let path = r.memoryPath else { return nil }
        let now = Date()
        if let m = r.memory, m.cpu == cpu, now.timeIntervalSince(m.at) < 30 { return m.bytes }
        let bytes = files.number(path)
        r.memory = (cpu, bytes, now)
        return bytes
    }

    /// The CPU limit in cores (nil: none), read again every 30 s.
    func limit(_ r: Record) -> Double? {
        if let l = r.limit, Date().timeIntervalSince(l.at) < 30 { return l.cores }
        let cores: Double?
        if r.v1 {
            if let q = text(r.limitPaths[0]).flatMap({ Int64($0) }), q > 0, let period = text(r.limitPaths[1]).flatMap({ Int64($0) }), period > 0 {
                cores = Double(q) / Double(period)
            } else {
                cores = nil
            }
        } else if let max = text(r.limitPaths[0])?.split(separator: " "), max.count == 2, let q = Double(max[0]), let per = Double(max[1]), per > 0 {
            cores = q / per
        } else {
            cores = nil
        }
        r.limit = (Date(), cores)
        return cores
    }

    public init(root: String = "/sys/fs/cgroup") {
        self.root = root
        v2Base = FileManager.default.fileExists(atPath: "\(root)/cgroup.controllers") ? root : "\(root)/unified"
    }

    /// From a cpu.stat's bytes: `usage_usec` (v2; v1's has none) and `nr_periods` with
    /// `nr_throttled`, read in place (every container's, every pass).
    static func cpuStat(_ b: UnsafeBufferPointer<UInt8>) -> (usageMicros: UInt64?, throttling: (UInt64, UInt64)?) {
        var usage: UInt64?, periods: UInt64?, throttled: UInt64?
        var i = 0
        while i < b.count {
            var end = i
            while end < b.count && b[end] != 0x0A { end += 1 }
            if let space = (i..<end).first(where: { b[$0] == 0x20 }) {
                var v: UInt64 = 0
                var digits = 0
                for j in (space + 1)..<end {
                    let d = b[j] &- 0x30
                    guard d < 10 else { digits = 0; break }
                    let (m, o1) = v.multipliedReportingOverflow(by: 10)
                    let (a, o2) = m.addingReportingOverflow(UInt64(d))
                    guard !o1, !o2 else { digits = 0; break }
                    v = a
                    digits += 1
                }
                if digits > 0 {
                    let key = UnsafeBufferPointer(rebasing: b[i..<space])
                    if key.elementsEqual("usage_usec".utf8) { usage = v } else if key.elementsEqual("nr_periods".utf8) { periods = v }
                    else if key.elementsEqual("nr_throttled".utf8) { throttled = v }
                }
            }
            i = end + 1
        }
        return (usage, periods.flatMap { p in throttled.map { (p, $0) } })
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

    /// `paths` is the controller -> path map of one of the container's processes.
    public func stats(paths: [String: String]) -> CgroupStats? {
        stats(record(paths), paths: paths)
    }

    /// The same for the cgroup a process's sample names.
    public func stats(of s: ProcessSample) -> CgroupStats? {
        stats(record(of: s), paths: s.cgroupPaths)
    }

    func stats(_ first: Record?, paths: [String: String]) -> CgroupStats? {
        guard var r = first else { return nil }
        if r.v1, usage(r) == nil, let p = paths[""] {
            // A hybrid host whose v1 CPU accounting cannot be read: the unified tree's.
            guard let v2 = record(["": p]) else { return nil }
            r = v2
        }
        guard let nanos = usage(r) else { return nil }
        let limit = self.limit(r)
        let mem = memoryBytes(r, cpu: nanos)
        // v1's throttling counts are in the cpu controller's cpu.stat, read only under a limit.
        let t = r.v1 ? (limit == nil ? nil : r.throttlingPath.flatMap { files.withContents($0, limit: 4096, Self.cpuStat)?.throttling })
            : r.throttling
        return CgroupStats(cpuNanos: nanos, cpuLimitCores: limit, memoryBytes: mem, periods: t?.0, throttledPeriods: t?.1)
    }
}
