import Foundation

/// CPU and memory of one cgroup, from cgroup v1 controllers or the v2 unified tree.
public struct CgroupStats: Sendable, Hashable {
    /// Total CPU time in nanoseconds.
    public var cpuNanos: UInt64
    /// The CPU limit in cores (quota / period), nil when unlimited.
    public var cpuLimitCores: Double?
    public var memoryBytes: UInt64?
}

/// Reads a container's cgroup from `/sys/fs/cgroup` (v1: cpuacct, cpu, memory; v2: cpu.stat,
/// cpu.max, memory.current). Missing files mean "unknown", never an error.
public struct CgroupReader: Sendable {
    public let root: String
    public init(root: String = "/sys/fs/cgroup") { self.root = root }

    func text(_ path: String) -> String? {
        (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// `paths` is the controller -> path map of one of the container's processes.
    public func stats(paths: [String: String]) -> CgroupStats? {
        if let p = paths["cpuacct"] ?? paths["cpu"], let usage = text("\(root)/cpuacct\(p)/cpuacct.usage").flatMap({ UInt64($0) }) {
            let cpuPath = paths["cpu"] ?? p
            var limit: Double?
            if let q = text("\(root)/cpu\(cpuPath)/cpu.cfs_quota_us").flatMap({ Int64($0) }), q > 0,
               let period = text("\(root)/cpu\(cpuPath)/cpu.cfs_period_us").flatMap({ Int64($0) }), period > 0 {
                limit = Double(q) / Double(period)
            }
            let mem = paths["memory"].flatMap { text("\(root)/memory\($0)/memory.usage_in_bytes") }.flatMap { UInt64($0) }
            return CgroupStats(cpuNanos: usage, cpuLimitCores: limit, memoryBytes: mem)
        }
        if let p = paths[""] {
            let base = FileManager.default.fileExists(atPath: "\(root)/cgroup.controllers") ? root : "\(root)/unified"
            guard let stat = text("\(base)\(p)/cpu.stat") else { return nil }
            var usec: UInt64?
            for line in stat.split(separator: "\n") where line.hasPrefix("usage_usec ") {
                usec = UInt64(line.dropFirst(11))
            }
            guard let usec else { return nil }
            var limit: Double?
            if let max = text("\(base)\(p)/cpu.max")?.split(separator: " "), max.count == 2, let q = Double(max[0]), let per = Double(max[1]), per > 0 {
                limit = q / per
            }
            let mem = text("\(base)\(p)/memory.current").flatMap { UInt64($0) }
            return CgroupStats(cpuNanos: usec * 1000, cpuLimitCores: limit, memoryBytes: mem)
        }
        return nil
    }
}
