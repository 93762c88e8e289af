import Foundation
import MinewatchHost

/// Detector 4 of `watch`: a container that runs at its CPU limit for a sustained window. Busy
/// containers (builds, compression) do that too, so it only alerts when other miner evidence
/// (miner process, pool contact) exists for the same container; alone it says nothing.
public struct CPUDetector: Sendable {
    /// Share of the limit (cores) counted as "at the limit".
    public var threshold: Double
    /// How long the usage must stay there.
    public var window: TimeInterval
    /// Cores assumed when the cgroup has no quota (the machine's cores).
    public var hostCores: Double

    public init(threshold: Double = 0.9, window: TimeInterval = 20, hostCores: Double = Double(ProcessInfo.processInfo.activeProcessorCount)) {
        self.threshold = threshold
        self.window = window
        self.hostCores = hostCores
    }

    public struct Sample: Sendable {
        public var time: Date
        public var cpuNanos: UInt64
        public var limitCores: Double?
        public init(time: Date, cpuNanos: UInt64, limitCores: Double?) {
            self.time = time
            self.cpuNanos = cpuNanos
            self.limitCores = limitCores
        }
    }

    /// Cores used between consecutive samples, and whether every interval in the trailing window
    /// stayed at or above `threshold` of the limit. Returns (average cores, limit, since) when so.
    public func sustained(_ samples: [Sample]) -> (cores: Double, limit: Double, since: Date)? {
        guard let last = samples.last, samples.count >= 2 else { return nil }
        let limit = last.limitCores ?? hostCores
        var since = last.time
        var i = samples.count - 1
        while i > 0 {
            let a = samples[i - 1], b = samples[i]
            let dt = b.time.timeIntervalSince(a.time)
            guard dt > 0, b.cpuNanos >= a.cpuNanos else { break }
            let cores = Double(b.cpuNanos - a.cpuNanos) / 1e9 / dt
            if cores < threshold * limit { break }
            since = a.time
            i -= 1
        }
        guard last.time.timeIntervalSince(since) >= window, let first = samples.first(where: { $0.time == since }) else { return nil }
        let cores = Double(last.cpuNanos - first.cpuNanos) / 1e9 / last.time.timeIntervalSince(since)
        return (cores, limit, since)
    }
}
