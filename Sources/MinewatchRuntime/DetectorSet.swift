import Foundation
import MinewatchCore
import MinewatchModel
import MinewatchNetwork
import MinewatchSignatures

/// Everything the standard detectors are built from besides the rules: thresholds and switches
/// from the command line, the config file, the rules' `models:` and tests. A reload builds the
/// detectors again from new rules and one of these, so no setting is lost on the way.
public struct DetectorSettings: Sendable {
    /// Detectors switched off.
    public var disabled: Set<DetectorID> = []
    /// Folders whose executables are drift wherever they came from.
    public var scratchPrefixes = DriftDetector.defaultScratchPrefixes
    /// CPU use (share of the container's limit, or of the host) and how long it must last.
    public var cpuThreshold = 0.9
    public var cpuWindow: TimeInterval = 20
    public var bandwidth = BandwidthThresholds()
    public var relay = RelayThresholds()
    /// How long the mining-protocol detector waits for a counted PacketCrypt batch.
    public var packetCryptWait: TimeInterval = 30
    /// Read the memory of processes that deserve it (packed, fileless, interpreters, hot).
    public var memoryScan = true
    /// Sample the rounding mode of threads that burn CPU (ptrace; x86-64).
    public var fpuSampling = true
    /// How long CPU must stay at the limit with a RandomX signal (rounding modes, memory shape).
    public var randomXWindow: TimeInterval = 4

    public init() {}
}

/// Each detector's memory of one container: one typed field per detector, nil until the detector
/// first looks at the container.
public struct DetectorStates {
    var minerProcess: MinerProcessDetector.State?
    var drift: DriftDetector.State?
    var poolContact: PoolContactDetector.State?
    var miningProtocol: MiningProtocolDetector.State?
    var relay: RelayTrafficDetector.State?
    var bandwidthService: BandwidthServiceDetector.State?
    var bandwidthMiner: BandwidthMinerDetector.State?
    var cpuMiner: CPUDetector.State?

    /// Forgets what one detector remembered (it was switched off).
    mutating func reset(_ id: DetectorID) {
        switch id {
        case .minerProcess: minerProcess = nil
        case .drift: drift = nil
        case .poolContact: poolContact = nil
        case .miningProtocol: miningProtocol = nil
        case .relay: relay = nil
        case .bandwidthService: bandwidthService = nil
        case .bandwidthMiner: bandwidthMiner = nil
        case .cpuMiner: cpuMiner = nil
        }
    }

    /// New thresholds reach the containers already watched (their windows are kept).
    mutating func apply(_ settings: DetectorSettings) {
        bandwidthMiner?.model.model = settings.bandwidth
        relay?.model = settings.relay
    }
}

/// The detectors of `watch`, built in one place from the rules and the settings, in the order
/// they run (later ones read earlier ones' alerts). Adding a detector: its file under Detectors/,
/// its field here and in `DetectorStates`, and its line in `make`.
public struct DetectorSet {
    public private(set) var minerProcess: MinerProcessDetector?
    public private(set) var drift: DriftDetector?
    public private(set) var poolContact: PoolContactDetector?
    public private(set) var miningProtocol: MiningProtocolDetector?
    public private(set) var relay: RelayTrafficDetector?
    public private(set) var bandwidthService: BandwidthServiceDetector?
    public private(set) var bandwidthMiner: BandwidthMinerDetector?
    public private(set) var cpuMiner: CPUDetector?
    /// In run order, each bound to its field of `DetectorStates`.
    private(set) var registered: [RegisteredDetector] = []
    /// Environment variables the process detector reads from new processes.
    public private(set) var environmentKeys: Set<String> = []

    public static func make(rules: CompiledRules, settings: DetectorSettings, procRoot: String) -> DetectorSet {
        var set = DetectorSet()
        let on = { (id: DetectorID) in !settings.disabled.contains(id) }
        let times = ProcessTimes(procRoot: procRoot)
        if on(.minerProcess) {
            set.add(MinerProcessDetector(rules: rules, procRoot: procRoot, times: times, memoryScan: settings.memoryScan), \.minerProcess, state: \.minerProcess)
            set.environmentKeys = MinerProcessDetector.environmentKeys.union(rules.ruleSet.environmentKeys)
        }
        if on(.drift) {
            var d = DriftDetector(scratchPrefixes: settings.scratchPrefixes)
            d.times = times
            set.add(d, \.drift, state: \.drift)
        }
        if on(.poolContact) { set.add(PoolContactDetector(ports: rules.ruleSet.minerPorts), \.poolContact, state: \.poolContact) }
        if on(.miningProtocol) {
            var d = MiningProtocolDetector(rules: rules.ruleSet)
            d.packetCryptWait = settings.packetCryptWait
            set.add(d, \.miningProtocol, state: \.miningProtocol)
        }
        if on(.relay) { set.add(RelayTrafficDetector(model: settings.relay), \.relay, state: \.relay) }
        if on(.bandwidthService) { set.add(BandwidthServiceDetector(rules: rules.ruleSet), \.bandwidthService, state: \.bandwidthService) }
        if on(.bandwidthMiner) { set.add(BandwidthMinerDetector(model: settings.bandwidth), \.bandwidthMiner, state: \.bandwidthMiner) }
        if on(.cpuMiner) {
            set.add(CPUDetector(threshold: settings.cpuThreshold, window: settings.cpuWindow, randomXWindow: settings.randomXWindow), \.cpuMiner, state: \.cpuMiner)
        }
        return set
    }

    /// Keeps `d` in its field and runs it after those added before, with its state in `state`.
    mutating func add<D: ContainerDetector>(_ d: D, _ field: WritableKeyPath<DetectorSet, D?>, state: WritableKeyPath<DetectorStates, D.State?>) {
        self[keyPath: field] = d
        registered.append(RegisteredDetector(d, state: state))
    }

    public var ids: [DetectorID] { registered.map(\.id) }

    /// Detectors that read packet sessions (names sent and asked for, mining protocols, request
    /// bodies): the capture runs while any of them is on.
    public var needsCapture: Bool { miningProtocol != nil || bandwidthService != nil || bandwidthMiner != nil }

    /// Containers whose run-queue wait the CPU detector needs (it judges only with other evidence).
    public func needsRunQueue(alerted: Set<DetectorID>) -> Bool {
        cpuMiner != nil && !alerted.isDisjoint(with: CPUDetector.corroborating)
    }
}
