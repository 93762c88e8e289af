import Foundation
import MinewatchConfig
import MinewatchCore
import MinewatchHost
import MinewatchNetwork
import MinewatchModel
import MinewatchSignatures

/// The detection pipeline of `watch`, one pass at a time: the host sampler reads every container,
/// the container store creates and evicts per-container state, the traffic and CPU every detector
/// reads are derived once, each registered detector looks at each container with its own state,
/// the alert builder makes alerts from their verdicts, and telemetry is computed from the same
/// pass. Sinks and responses come after (`Agent`). Used from one thread.
public final class Watcher {
    public let sampler: HostSampler
    public let store = ContainerStore()
    /// The detectors, built from the rules and `settings` (again on every change of either).
    public private(set) var detectors = DetectorSet()
    var rules: CompiledRules
    public var alerts = AlertBuilder()
    /// Names and images for telemetry, allowed to answer from a cache (nil: use the alert builder's).
    public var describeCached: (@Sendable (String) -> ContainerMetadata?)?
    /// Alerts matching one of these are not emitted but counted (`silenced`, telemetry).
    public var exceptions = ExceptionSet()
    /// Alerts the exceptions silenced in the last pass, with the exception's name.
    public private(set) var silenced: [(alert: Alert, exception: String)] = []
    let clock: WallClock
    let hostCores = Double(ProcessInfo.processInfo.activeProcessorCount)
    /// Reads RandomX's run-time signals of containers near their CPU limit (nil: CPU detector off).
    public private(set) var probe: ComputeProbe?
    /// Share of its limit a container must use for the probe to look at it (a miner on a busy
    /// host gets much less than its limit while it waits to run).
    public static let probeShare = 0.15

    /// `sockets` gives per-connection byte counters (sock_diag); without it (or when it cannot
    /// answer) sockets come from /proc/<pid>/net/tcp and traffic from interface counters.
    public init(rules: CompiledRules, settings: DetectorSettings = DetectorSettings(), proc: ProcfsReader = ProcfsReader(),
                cgroups: CgroupReader = CgroupReader(), clock: WallClock = SystemClock(), sockets: SocketStatsSource? = SockDiagReader()) {
        sampler = HostSampler(proc: proc, cgroups: cgroups, clock: clock, sockets: sockets)
        self.clock = clock
        self.rules = rules
        self.settings = settings
        rebuild()
    }

    /// Settings of the standard detectors (the command line, the config, tests). Changing them
    /// rebuilds the detectors; every container keeps what it has.
    public var settings: DetectorSettings {
        didSet { rebuild() }
    }

    /// New rules (SIGHUP), and settings when given: the detectors are rebuilt from both, and every
    /// container keeps what it has: which detectors alerted and each remaining detector's state
    /// (with the new thresholds). Running processes are looked at again with the new rules.
    public func reconfigure(rules: CompiledRules, settings: DetectorSettings? = nil) {
        self.rules = rules
        sampler.forgetProcesses()
        if let settings { self.settings = settings } else { rebuild() }
    }

    func rebuild() {
        let old = Set(detectors.ids)
        detectors = DetectorSet.make(rules: rules, settings: settings, procRoot: sampler.proc.root)
        sampler.environmentKeys = detectors.environmentKeys
        probe = detectors.cpuMiner == nil ? nil : ComputeProbe(procRoot: sampler.proc.root, fpuSampling: settings.fpuSampling)
        let gone = old.subtracting(detectors.ids)
        for id in store.states.keys {
            store.modify(id) { s in
                s.judgedStill = false
                for g in gone { s.detectors.reset(g) }
                s.detectors.apply(settings)
            }
        }
    }

    /// New exceptions (SIGHUP): counts of those that keep their name are kept, and what the old
    /// ones silenced is judged again.
    public func replaceExceptions(_ rules: [ExceptionRule]) {
        exceptions.replace(with: rules)
        for id in store.states.keys { store.modify(id) { $0.silencedKeys = []; $0.silenced = []; $0.judgedStill = false } }
    }

    public var detectorIDs: [DetectorID] { detectors.ids }

    /// What reading processes' memory and threads cost so far (since the detectors were built).
    public struct ComputeStats: Sendable, Equatable {
        public var fpuSamples = 0
        /// How long the samples kept threads stopped, in total.
        public var fpuStoppedSeconds = 0.0
        public var memoryScannedBytes: Int64 = 0
        public var memoryScannedProcesses = 0
    }

    public var computeStats: ComputeStats {
        var s = ComputeStats()
        s.fpuSamples = probe?.fpuSamples ?? 0
        s.fpuStoppedSeconds = Double(probe?.fpuStoppedNanos ?? 0) / 1e9
        s.memoryScannedBytes = detectors.minerProcess?.memory?.bytesRead ?? 0
        s.memoryScannedProcesses = detectors.minerProcess?.memory?.processesScanned ?? 0
        return s
    }

    public var capture: (any SessionSource)? {
        get { sampler.capture }
        set { sampler.capture = newValue }
    }
    public var includeHost: Bool {
        get { sampler.includeHost }
        set { sampler.includeHost = newValue }
    }
    /// When not empty, only containers whose id starts with one of these are watched.
    public var onlyContainers: [String] {
        get { sampler.onlyContainers }
        set { sampler.onlyContainers = newValue }
    }
    public var describe: (@Sendable (String) -> ContainerMetadata?)? {
        get { alerts.describe }
        set { alerts.describe = newValue }
    }

    /// Latest telemetry of every container in the store (containers gone stay for a few passes).
    public var telemetry: [String: ContainerTelemetry] { store.states.compactMapValues(\.telemetry) }
    /// Telemetry of the containers seen in the last pass only, by id (made once a pass: sinks,
    /// metrics and the dashboard each read it).
    public private(set) var currentTelemetry: [ContainerTelemetry] = []
    /// Containers whose run-queue wait the next pass reads (their CPU may be judged).
    var runQueueNext: Set<String> = []
    /// The last pass's containers.
    var lastContainers: [ContainerSnapshot] = []
    /// Processes of a container in the last pass (for responses; looked up when an alert is
    /// raised rather than indexed every pass).
    public func processes(of id: String) -> [ProcessSample] {
        lastContainers.first { $0.ref.id == id }?.processes.map(\.sample) ?? []
    }
    public private(set) var passes = 0

    /// One pass: new alerts (one per container per detector, ever).
    public func poll() -> [Alert] {
        // Run-queue wait is read only for containers whose CPU may be judged (they have evidence).
        let host = sampler.sample(runQueueFor: runQueueNext)
        store.update(seen: host.containers.map(\.ref.id), now: host.time)
        var current: [ContainerTelemetry] = []
        current.reserveCapacity(host.containers.count)
        runQueueNext = []
        defer {
            // The sampler gives containers in id order.
            currentTelemetry = current
        }
        var out: [Alert] = []
        var silencedNow: [(alert: Alert, exception: String)] = []
        // Once a pass: read through `self` inside the closure below, the set was copied (each of
        // its fields retained and released) for every container.
        let detectors = self.detectors
        for snap in host.containers {
            store.modify(snap.ref.id) { state in
                var pass = derive(snap, &state)
                // A container that stayed still since a pass whose detectors saw it still: they
                // would be given what they saw then, a pass later. Only its telemetry's time,
                // CPU and traffic move (on a dense node most containers sleep, and judging each
                // of them every pass was most of the watcher's work). It is judged again when it
                // runs, opens a connection, the capture sees its namespace, or its interface
                // counters are read again (at least every `HostSampler.idleCountersEvery`).
                defer {
                    if let t = state.telemetry { current.append(t) }
                    if detectors.needsRunQueue(alerted: state.alerted) || state.probed { runQueueNext.insert(state.id) }
                }
                if snap.still, state.judgedStill, var t = state.telemetry {
                    describe(&t, snap, retry: &state.describeRetry)
                    measure(pass, into: &t)
                    state.telemetry = t
                    state.probed = false
                    return
                }
                if let probe, !state.alerted.contains(.cpuMiner), let cores = pass.cpuCores,
                   cores >= Self.probeShare * (snap.cgroup?.cpuLimitCores ?? hostCores) {
                    pass.compute = probe.probe(snap, now: host.time)
                }
                state.probed = pass.compute?.mayConvict == true
                var concluded = false
                for d in detectors.registered {
                    let context = DetectionContext(now: host.time, alerted: state.alerted, alertedAtMedium: state.alertedAtMedium)
                    guard let v = d.run(pass, &state, context).map(resolved), !state.alerted.contains(d.id) else { continue }
                    concluded = true
                    let a = alerts.alert(v, detector: d.id, container: snap.ref, now: host.time)
                    // A silenced verdict does not use up the detector: the next one that the
                    // exception does not cover (another destination, another process) is alerted.
                    // Each distinct silenced verdict is counted once.
                    if let ex = exceptions.match(a) {
                        let key = "\(ex.name)|\(d.id)|\(a.destinationHosts.sorted().joined(separator: ","))|\(a.exe ?? "")"
                        if state.silencedKeys.count < 64, state.silencedKeys.insert(key).inserted {
                            exceptions.count(ex.name)
                            silencedNow.append((a, ex.name))
                            let label = "\(ex.name) (\(d.id))"
                            if !state.silenced.contains(label) { state.silenced.append(label) }
                        }
                        continue
                    }
                    state.alerted.insert(d.id)
                    if a.severity >= .medium { state.alertedAtMedium.insert(d.id) }
                    out.append(a)
                }
                // A pass with a verdict (alerted or silenced) is not the last: a detector that ran
                // before the one that alerted has not seen that alert yet.
                state.judgedStill = snap.still && !concluded && detectors.registered.allSatisfy { $0.settled(state) }
                state.telemetry = telemetry(pass, previous: state.telemetry, describeRetry: &state.describeRetry)
                state.telemetry?.silenced = state.silenced.isEmpty ? nil : state.silenced
                let traits = detectors.registered.flatMap { $0.traits(state) }
                state.telemetry?.traits = traits.isEmpty ? nil : traits
            }
        }
        lastContainers = host.containers
        if let probe, probe.isWatching { probe.retain(pids: Set(host.containers.flatMap { $0.processes.map(\.sample.pid) })) }
        probe?.endPass()
        silenced = silencedNow
        passes += 1
        return out
    }

    /// A verdict with the severity and technique the rule data gives its verdict and case; the
    /// detector's own severity stands where no rule file names the verdict.
    func resolved(_ v: Verdict) -> Verdict {
        guard let key = v.verdict, rules.ruleSet.verdicts[key.id] != nil else { return v }
        var v = v
        let r = rules.ruleSet.verdict(key.id, key.case)
        v.severity = r.severity
        v.technique = v.technique ?? r.technique
        return v
    }

    /// What every detector reads besides the snapshot, derived once: the traffic interval and the
    /// CPU sample of this pass.
    func derive(_ snap: ContainerSnapshot, _ state: inout ContainerState) -> ContainerPass {
        var pass = ContainerPass(snapshot: snap, traffic: state.traffic.observe(snap.observation))
        if let cg = snap.cgroup {
            let s = CPUSample(time: snap.time, cpuNanos: cg.cpuNanos, limitCores: cg.cpuLimitCores, waitNanos: snap.runQueueWaitNanos,
                                       periods: cg.periods, throttledPeriods: cg.throttledPeriods)
            if let p = state.lastCPU, s.time > p.time, s.cpuNanos >= p.cpuNanos {
                pass.cpuCores = Double(s.cpuNanos - p.cpuNanos) / 1e9 / s.time.timeIntervalSince(p.time)
            }
            pass.cpu = s
            state.lastCPU = s
        }
        return pass
    }

    /// The container's telemetry record for this pass.
    func telemetry(_ pass: ContainerPass, previous: ContainerTelemetry?, describeRetry: inout (at: Date, misses: Int)?) -> ContainerTelemetry {
        let snap = pass.snapshot
        var t = previous ?? ContainerTelemetry(
            time: pass.now, container: .init(id: snap.ref.id, name: nil, image: nil, runtime: snap.ref.runtime.rawValue), processes: 0,
            outboundConnections: 0, inboundConnections: 0, listeningPorts: [], connections: [], hostNetwork: false)
        describe(&t, snap, retry: &describeRetry)
        t.processes = snap.processes.count
        t.hostNetwork = snap.hostNetwork
        t.listeningPorts = snap.listenPorts.sorted()
        let connected = snap.sockets.filter { $0.isEstablished }
        t.outboundConnections = connected.filter { !snap.listenPorts.contains($0.localPort) }.count
        t.inboundConnections = connected.count - t.outboundConnections
        // TCP connections, then connected UDP sockets (a remote endpoint set).
        let udp = snap.sockets.filter { $0.proto == .udp && $0.remotePort != 0 }
        t.connections = (connected + udp).prefix(16).map {
            "\($0.proto.rawValue) \(Endpoint.text($0.remoteAddress, $0.remotePort)) \($0.proto == .udp ? "out" : (snap.listenPorts.contains($0.localPort) ? "in" : "out"))"
        }
        measure(pass, into: &t)
        return t
    }

    /// The container's name, image and Kubernetes identity, until known. A container nothing
    /// names (no engine socket, no runtime bundle: podman without its API service) is asked
    /// about again after 2 s, then 4, then every 8 s (`retry`), not every pass: each lookup
    /// takes the resolver's and the engine cache's locks and checks the bundle back-off, for
    /// every such container every pass (the bundle reads themselves are paced by
    /// `MetadataResolver`, which this does not change); the engine's names are refreshed at most
    /// every 10 s anyway. Alerts look their container up afresh.
    func describe(_ t: inout ContainerTelemetry, _ snap: ContainerSnapshot, retry: inout (at: Date, misses: Int)?) {
        guard t.container.name == nil && t.container.k8s == nil, let lookup = describeCached ?? alerts.describe else { return }
        if let r = retry, snap.time < r.at { return }
        if let d = lookup(snap.ref.id) {
            t.container = Alert.Container(id: snap.ref.id, runtime: snap.ref.runtime.rawValue, metadata: d)
            retry = nil
        } else {
            let misses = (retry?.misses ?? 0) + 1
            retry = (snap.time.addingTimeInterval(min(8, 2 * Double(1 << min(misses - 1, 3)))), misses)
        }
    }

    /// The parts of a telemetry record every pass changes: time, CPU, memory, traffic rates and
    /// the capture ring's counts.
    func measure(_ pass: ContainerPass, into t: inout ContainerTelemetry) {
        let snap = pass.snapshot
        t.time = pass.now
        t.cpuCores = pass.cpuCores
        t.cpuLimitCores = snap.cgroup?.cpuLimitCores
        t.cpuShare = pass.cpuCores.map { $0 / (snap.cgroup?.cpuLimitCores ?? hostCores) }
        t.memoryBytes = snap.cgroup?.memoryBytes
        if let iv = pass.traffic {
            let sec = iv.seconds
            t.rxBytesPerSecond = iv.ifRx.map { $0 / sec }
            t.txBytesPerSecond = iv.ifTx.map { $0 / sec }
            t.rxPacketsPerSecond = iv.ifRxPackets.map { $0 / sec }
            t.txPacketsPerSecond = iv.ifTxPackets.map { $0 / sec }
            t.outboundTxBytesPerSecond = iv.outTx / sec
            t.outboundRxBytesPerSecond = iv.outRx / sec
            t.inboundTxBytesPerSecond = iv.inTx / sec
            t.inboundRxBytesPerSecond = iv.inRx / sec
        }
        t.capturePackets = snap.capture?.packets
        t.captureDrops = snap.capture?.drops
        t.captureRingBytes = snap.capture.map(\.ringBytes)
    }
}

/// Where the sampler gets the packets' verdicts from: the live capture, or a test double.
public protocol SessionSource: AnyObject {
    func sync(_ wanted: [UInt64: Int32])
    func sessions(_ ns: UInt64) -> [LiveSession]
    func status(_ ns: UInt64) -> LiveCapture.RingStatus?
    /// DNS questions the namespace asked, most recent last.
    func names(_ ns: UInt64) -> [String]
    /// Connections that opened and closed recently in the namespace.
    func flows(_ ns: UInt64) -> [CapturedFlow]
    /// TCP connections seen opening in the namespace and still open.
    func openConnections(_ ns: UInt64) -> [CapturedFlow]
}

extension SessionSource {
    public func openConnections(_ ns: UInt64) -> [CapturedFlow] { [] }
}

extension SessionSource {
    public func names(_ ns: UInt64) -> [String] { [] }
    public func flows(_ ns: UInt64) -> [CapturedFlow] { [] }
}

extension LiveCapture: SessionSource {}
