import Foundation
import MinewatchCore
import MinewatchHost
import MinewatchModel

/// Detector 4 of `watch`: a container that demands its whole CPU limit for a sustained window.
/// Busy containers (builds, compression) do that too, so it only alerts when other miner evidence
/// (miner process, pool contact, drift, mining protocol) exists for the same container; alone it
/// says nothing.
///
/// It measures demand, not only what the container received: on a busy host a miner gets less
/// than its limit while its threads wait to run. An interval counts as "at the limit" when the CPU
/// used, or used plus the run-queue wait of its threads (/proc/<pid>/task/*/schedstat), reaches
/// `threshold` of the limit, or when the kernel throttled the cgroup in at least half of the CFS
/// periods (cpu.stat). A build that waits on disk neither runs nor waits to run, so it does not.
///
/// RandomX's own run-time signature needs no other evidence: when the compute probe finds its
/// hottest threads' rounding modes changing (CFROUND) or RandomX's memory shape, CPU at the limit
/// for `randomXWindow` is an alert naming RandomX, whatever the binary, its name, packer or pool.
public struct CPUDetector: ContainerDetector {
    public let id = DetectorID.cpuMiner
    /// Share of the limit (cores) counted as "at the limit".
    public var threshold: Double
    /// How long the demand must stay there.
    public var window: TimeInterval
    /// Cores assumed when the cgroup has no quota (the machine's cores).
    public var hostCores: Double
    /// The detectors whose alert makes a container's CPU worth judging.
    public static let corroborating: [DetectorID] = [.minerProcess, .poolContact, .drift, .miningProtocol]

    /// How long CPU must stay at the limit with a RandomX signal.
    public var randomXWindow: TimeInterval

    public init(threshold: Double = 0.9, window: TimeInterval = 20, randomXWindow: TimeInterval = 4,
                hostCores: Double = Double(ProcessInfo.processInfo.activeProcessorCount)) {
        self.threshold = threshold
        self.window = window
        self.randomXWindow = randomXWindow
        self.hostCores = hostCores
    }

    public struct State {
        var samples: [Sample] = []
        /// MXCSR samples of the container's hottest threads, most recent last (at most 24).
        var mxcsr: [UInt32] = []
        /// The probe's last reading.
        var shape: ComputeSignals?
    }

    /// The pass's CPU counters (derived once for every detector).
    public typealias Sample = CPUSample

    public struct Hit: Sendable {
        /// Average cores used and demanded over the window.
        public var cores: Double
        public var demand: Double
        public var limit: Double
        public var since: Date
        /// Intervals that counted only because of run-queue wait or throttling.
        public var contended: Int
    }

    /// Whether every interval in the trailing window stayed at the limit (see the type's
    /// description). Returns the averages and since when.
    public func sustained(_ samples: [Sample], window: TimeInterval? = nil) -> Hit? {
        let window = window ?? self.window
        guard let last = samples.last, samples.count >= 2 else { return nil }
        let limit = last.limitCores ?? hostCores
        var since = last.time
        var contended = 0
        var waited: Double = 0
        var i = samples.count - 1
        while i > 0 {
            let a = samples[i - 1], b = samples[i]
            let dt = b.time.timeIntervalSince(a.time)
            guard dt > 0, b.cpuNanos >= a.cpuNanos else { break }
            let used = Double(b.cpuNanos - a.cpuNanos) / 1e9 / dt
            var wait: Double = 0
            if let wa = a.waitNanos, let wb = b.waitNanos, wb >= wa { wait = Double(wb - wa) / 1e9 / dt }
            var throttled = false
            if let pa = a.periods, let pb = b.periods, let ta = a.throttledPeriods, let tb = b.throttledPeriods, pb > pa, tb >= ta {
                throttled = Double(tb - ta) >= 0.5 * Double(pb - pa)
            }
            let atLimit = used >= threshold * limit
            if !atLimit {
                guard used + wait >= threshold * limit || throttled else { break }
                contended += 1
            }
            waited += wait * dt
            since = a.time
            i -= 1
        }
        let span = last.time.timeIntervalSince(since)
        guard span >= window, let first = samples.first(where: { $0.time == since }) else { return nil }
        let cores = Double(last.cpuNanos - first.cpuNanos) / 1e9 / span
        return Hit(cores: cores, demand: cores + waited / span, limit: limit, since: since, contended: contended)
    }

    /// The samples kept: the window twice over plus a margin.
    public func makeState() -> State { State() }

    public func inspect(_ pass: ContainerPass, state: inout State, context: DetectionContext) -> Verdict? {
        guard let s = pass.cpu else { return nil }
        state.samples.append(s)
        state.samples.removeAll { pass.now.timeIntervalSince($0.time) > window * 2 + 10 }
        if let c = pass.compute {
            if c.pid != state.shape?.pid { state.mxcsr = [] }
            state.mxcsr = Array((state.mxcsr + c.mxcsr).suffix(24))
            state.shape = c
        }
        if context.alerted.contains(id) { return nil }
        if let v = randomX(pass, state) { return v }
        let evidence = Self.corroborating.filter { context.alerted.contains($0) }
        guard !evidence.isEmpty, let hit = sustained(state.samples) else { return nil }
        // The busiest process of the container is the one to name (and to kill).
        let top = pass.snapshot.processes.map(\.sample).max { $0.cpuTicks < $1.cpuTicks }
        var ev = evidence.map { Evidence(kind: .attribute, name: "with", value: $0.rawValue) }
        if hit.contended > 0 {
            ev.append(Evidence(kind: .attribute, name: "demand",
                               value: String(format: "%.2f cores demanded (used plus run-queue wait); at the limit by demand in %d intervals of a contended host", hit.demand, hit.contended)))
        }
        return Verdict(
            severity: .high,
            summary: String(format: "CPU at %.2f of %.2f cores for %.0f s (demand %.2f), with %@", hit.cores, hit.limit, pass.now.timeIntervalSince(hit.since),
                            hit.demand, evidence.map(\.rawValue).joined(separator: " and ")),
            evidence: ev,
            metrics: ["cores": hit.cores, "demandCores": hit.demand, "limitCores": hit.limit, "seconds": pass.now.timeIntervalSince(hit.since)],
            pid: top?.pid, exe: top?.exe, startedAt: hit.since, verdict: ("MW-WATCH-CPU", "default"))
    }

    /// RandomX's run-time signature (rounding modes, memory shape) with CPU at the limit.
    func randomX(_ pass: ContainerPass, _ state: State) -> Verdict? {
        guard let shape = state.shape else { return nil }
        let ev = RandomXEvidence.evidence(mxcsr: state.mxcsr, shape: shape)
        guard !ev.isEmpty, let hit = sustained(state.samples, window: randomXWindow) else { return nil }
        let top = pass.snapshot.processes.map(\.sample).first { $0.pid == shape.pid }
        return Verdict(
            severity: .high, family: "randomx",
            summary: String(format: "RandomX hashing in pid %d (%@): %@, with CPU at %.2f of %.2f cores for %.0f s", shape.pid, top?.comm ?? shape.exe ?? "?",
                            ev.map(\.name).joined(separator: " and "), hit.cores, hit.limit, pass.now.timeIntervalSince(hit.since)),
            evidence: ev,
            metrics: ["cores": hit.cores, "demandCores": hit.demand, "limitCores": hit.limit, "seconds": pass.now.timeIntervalSince(hit.since),
                      "fpuSamples": Double(state.mxcsr.count)],
            pid: shape.pid, exe: top?.exe ?? shape.exe, startedAt: hit.since, verdict: ("MW-WATCH-CPU", "randomx"))
    }
}
