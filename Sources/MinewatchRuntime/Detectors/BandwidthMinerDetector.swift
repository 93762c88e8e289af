import Foundation
import MinewatchCore
import MinewatchNetwork
import MinewatchModel

/// Detector 5 of `watch`: the bandwidth-miner model (MinewatchNetwork's `BandwidthJudge`, the
/// same one `pcap` runs) over each container's traffic intervals. The upload-heavy shape alone is
/// a trait (log shippers, metrics clients and backups have it); it is an alert (high) only with
/// evidence that a miner is behind it that does not depend on names: the same volume mirrored to
/// several destinations, periodic small polls to an upload destination, request bodies framed as
/// announcements or incompressible in clear text (capture on), a mining protocol to an upload
/// destination, or another detector's alert for the container.
public struct BandwidthMinerDetector: ContainerDetector {
    public let id = DetectorID.bandwidthMiner
    public var model: BandwidthThresholds
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
        let others = Self.corroborating.filter { context.alerted.contains($0) }.map { "\($0.rawValue) alert" }
        let upload = Set(b.destinations.map(\.address))
        let toUpload = pass.snapshot.sessions.filter { upload.contains(Endpoint.host($0.server)) }.map(\.facts)
        let why = BandwidthEvidence.reasons(b, toUpload: toUpload) + others
        let cores = pass.cpuCores
        var summary = BandwidthEvidence.shape(b, seconds: pass.now.timeIntervalSince(b.since), cpuCores: cores)
        guard !why.isEmpty else {
            // An upload-heavy shape alone: what log shippers and backups look like too.
            state.trait = Trait(name: "upload-heavy", detector: id, summary: summary + "; " + BandwidthEvidence.traitSuffix,
                                since: state.trait?.since ?? b.since, technique: "T1496.002")
            return nil
        }
        state.trait = nil
        guard !context.alerted.contains(id) else { return nil }
        summary += "; with \(why.joined(separator: ", "))"
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
        return Verdict(severity: .high, summary: summary, evidence: evidence, metrics: metrics,
                       pid: owner, exe: pass.snapshot.processes.first { $0.sample.pid == owner }?.sample.exe, startedAt: b.since,
                       verdict: ("MW-NET-BANDWIDTH", "corroborated"))
    }
}
