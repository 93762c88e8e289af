import Foundation
import MinewatchCore
import MinewatchNetwork
import MinewatchModel

/// Detector 5 of `watch`: the bandwidth-miner model (MinewatchNetwork's `BandwidthJudge`, the
/// same one `pcap` runs) over each container's traffic intervals. The upload-heavy shape is a
/// trait, and so is the shape with evidence honest uploaders share (similar volume to several
/// destinations, periodic polls, KiB-framed or incompressible bodies); it is an alert (high)
/// only with evidence only mining explains: announcement records in the request bodies, a
/// mining protocol to an upload destination, the same bodies mirrored to several destinations
/// (capture on), or another miner detector's alert for the container.
public struct BandwidthMinerDetector: ContainerDetector {
    public let id = DetectorID.bandwidthMiner
    public var model: BandwidthThresholds
    /// Detectors whose alert for the same container is specific evidence (a miner or a bandwidth-sharing service).
    public static let corroborating: [DetectorID] = [.minerProcess, .poolContact, .miningProtocol, .cpuMiner, .relay, .bandwidthService]

    public struct State {
        public var model: BandwidthJudge
        /// The uncorroborated shape, while it holds.
        public var trait: Trait?
    }

    public init(model: BandwidthThresholds = BandwidthThresholds()) { self.model = model }

    public func makeState() -> State { State(model: BandwidthJudge(model: model)) }

    public func traits(_ state: State) -> [Trait] { state.trait.map { [$0] } ?? [] }

    public func inspect(_ pass: ContainerPass, state: inout State, context: DetectionContext) -> Verdict? {
        guard let iv = pass.traffic else { return nil }
        state.model.add(iv)
        guard let b = state.model.verdict() else {
            state.trait = nil
            return nil
        }
        // Another detector's alert at medium or above (a mining-pool port alone is low: restic's
        // REST server listens on 8000, one of Falco's miner ports).
        let others = Self.corroborating.filter { context.alertedAtMedium.contains($0) }.map { "\($0.rawValue) alert" }
        let upload = Set(b.destinations.map(\.address))
        let toUpload = pass.snapshot.sessions.map { (server: Endpoint.host($0.server), facts: $0.facts) }.filter { upload.contains($0.server) }
        let why = BandwidthEvidence.reasons(b, toUpload: toUpload, others: others)
        let cores = pass.cpuCores
        var summary = BandwidthEvidence.shape(b, seconds: pass.now.timeIntervalSince(b.since), cpuCores: cores)
        guard !why.specific.isEmpty else {
            // The shape, alone or with what honest uploaders share: a trait.
            state.trait = Trait(name: "upload-heavy", detector: id, summary: BandwidthEvidence.trait(shape: summary, why),
                                since: state.trait?.since ?? b.since, technique: "T1496.002")
            return nil
        }
        state.trait = nil
        guard !context.alerted.contains(id) else { return nil }
        summary += "; with \(why.specific.joined(separator: ", "))"
        var evidence = BandwidthEvidence.evidence(b, reasons: why)
        if pass.snapshot.hostNetwork {
            evidence.append(Evidence(kind: .attribute, name: "network", value: "host network: no per-container interface counters; per-socket counters used"))
        }
        if !b.perConnection {
            evidence.append(Evidence(kind: .attribute, name: "counters", value: "no per-connection counters (sock_diag unavailable); namespace interface totals used"))
        }
        var metrics: [String: Double] = [
            "uploadBytesPerSecond": b.uploadRate, "downloadBytesPerSecond": b.downloadRate, "ratio": b.ratio,
            "destinations": Double(b.destinations.count), "exchanges": Double(b.exchanges), "connections": Double(b.connections),
            "windowSeconds": model.window,
        ]
        if let cores { metrics["cpuCores"] = cores }
        let owner = b.uploader ?? pass.snapshot.mainPid
        return Verdict(severity: .high, family: why.family, summary: summary, evidence: evidence, metrics: metrics,
                       pid: owner, exe: pass.snapshot.processes.first { $0.sample.pid == owner }?.sample.exe, startedAt: b.since,
                       verdict: ("MW-NET-BANDWIDTH", "corroborated"))
    }
}
