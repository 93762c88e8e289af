import Foundation
import MinewatchCore
import MinewatchNetwork
import MinewatchModel

/// What a detector concluded about one container; the alert builder adds the container block,
/// the detector id and the times.
public struct Verdict: Sendable {
    public var severity: Severity
    public var family: String?
    public var summary: String
    public var evidence: [Evidence]
    public var metrics: [String: Double]
    public var pid: Int32?
    public var exe: String?
    /// First evidence (a process's start time, the start of an upload).
    public var startedAt: Date
    /// MITRE ATT&CK technique when it is not the detector's usual one.
    public var technique: String?
    /// The verdict (id and case) of the rule data whose severity and technique this verdict
    /// takes (`80-verdicts.yaml`); the pipeline applies it, and `severity` stands only where no
    /// rule file names that verdict. nil: the detector decided (from the content rules, or
    /// through a judge that read the rule data itself).
    public var verdict: (id: String, case: String)?

    public init(severity: Severity, family: String? = nil, summary: String, technique: String? = nil, evidence: [Evidence],
                metrics: [String: Double] = [:], pid: Int32?, exe: String?, startedAt: Date, verdict: (id: String, case: String)? = nil) {
        self.technique = technique
        self.verdict = verdict
        self.severity = severity
        self.family = family
        self.summary = summary
        self.evidence = evidence
        self.metrics = metrics
        self.pid = pid
        self.exe = exe
        self.startedAt = startedAt
    }
}

/// One container in one pass, as every detector sees it: the sampler's snapshot, and what was
/// derived from it once for everyone (the traffic interval, the CPU sample).
public struct ContainerPass: Sendable {
    public var snapshot: ContainerSnapshot
    /// Traffic since the last pass (nil in its first pass).
    public var traffic: NetInterval?
    /// CPU counters of this pass (nil when its cgroup could not be read).
    public var cpu: CPUSample?
    /// CPU cores used since the last pass.
    public var cpuCores: Double?
    /// RandomX's run-time signals of its busiest process, read when it used most of its CPU.
    public var compute: ComputeSignals?
    public var now: Date { snapshot.time }
    public var id: String { snapshot.ref.id }
}

/// Cumulative CPU counters of a container's cgroup in one pass, derived once for every detector.
public struct CPUSample: Sendable {
    public var time: Date
    public var cpuNanos: UInt64
    public var limitCores: Double?
    /// Run-queue wait of the container's threads, when read.
    public var waitNanos: UInt64?
    public var periods: UInt64?
    public var throttledPeriods: UInt64?
    public init(time: Date, cpuNanos: UInt64, limitCores: Double?, waitNanos: UInt64? = nil, periods: UInt64? = nil, throttledPeriods: UInt64? = nil) {
        self.time = time
        self.cpuNanos = cpuNanos
        self.limitCores = limitCores
        self.waitNanos = waitNanos
        self.periods = periods
        self.throttledPeriods = throttledPeriods
    }
}

/// What a detector may know besides its own container's pass.
public struct DetectionContext: Sendable {
    public var now: Date
    /// Detectors that already alerted for this container (earlier passes, and earlier in this one).
    public var alerted: Set<DetectorID>
    /// Those of them whose alert was medium or above: evidence for another detector (a low
    /// alert, a pool port alone, is not).
    public var alertedAtMedium: Set<DetectorID> = []
}

/// A detector of `watch`: pure logic over one container's pass and its own memory of that
/// container (`State`, created by `makeState` when the container is first seen and dropped when
/// it is gone). At most one alert per container and detector: once it alerted, the pipeline keeps
/// feeding it (its state stays current) but drops further verdicts. To add one, write a type that
/// conforms (one file under Detectors/) and register it in `DetectorSet` (its field, its state's
/// field in `DetectorStates`, its line in `DetectorSet.make`).
public protocol ContainerDetector {
    associatedtype State
    var id: DetectorID { get }
    func makeState() -> State
    func inspect(_ pass: ContainerPass, state: inout State, context: DetectionContext) -> Verdict?
    /// What it sees in the container that is not an alert on its own, as of its last pass
    /// (telemetry). None by default.
    func traits(_ state: State) -> [Trait]
    /// Whether it has nothing left to do for the container but wait for a change: no work put
    /// off to a later pass (an executable not readable yet, a memory read the pass's budget left
    /// for later). A container that stays still (`ContainerSnapshot.still`) is not given to the
    /// detectors again while all of them are settled. True by default.
    func settled(_ state: State) -> Bool
}

extension ContainerDetector {
    public func traits(_ state: State) -> [Trait] { [] }
    public func settled(_ state: State) -> Bool { true }
}

/// A detector bound to its typed field of each container's `DetectorStates`, as the pipeline
/// runs them.
struct RegisteredDetector {
    let id: DetectorID
    let run: (ContainerPass, inout ContainerState, DetectionContext) -> Verdict?
    let traits: (ContainerState) -> [Trait]
    let settled: (ContainerState) -> Bool

    init<D: ContainerDetector>(_ d: D, state field: WritableKeyPath<DetectorStates, D.State?>) {
        id = d.id
        run = { pass, container, context in
            // Taken out of the container while it runs, so changing it never copies it.
            var s = container.detectors[keyPath: field] ?? d.makeState()
            container.detectors[keyPath: field] = nil
            defer { container.detectors[keyPath: field] = s }
            return d.inspect(pass, state: &s, context: context)
        }
        traits = { container in container.detectors[keyPath: field].map(d.traits) ?? [] }
        settled = { container in container.detectors[keyPath: field].map(d.settled) ?? true }
    }
}
