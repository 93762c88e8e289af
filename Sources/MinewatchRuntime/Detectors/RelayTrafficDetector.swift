import Foundation
import MinewatchCore
import MinewatchNetwork
import MinewatchModel

/// Detector 7 of `watch`: relaying traffic for someone else (proxyjacking), by bytes alone: the
/// relay model (MinewatchNetwork's `RelayDetector`, the same one `pcap` runs per client) over
/// each container's per-connection traffic. Needs per-connection counters (sock_diag); without
/// them it stays silent. High: a container that relays at this rate is selling its network.
public struct RelayTrafficDetector: ContainerDetector {
    public let id = DetectorID.relay
    public var model: RelayModel

    public init(model: RelayModel = RelayModel()) { self.model = model }

    public func makeState() -> RelayDetector { RelayDetector(model: model) }

    public func inspect(_ pass: ContainerPass, state: inout RelayDetector, context: DetectionContext) -> Verdict? {
        guard let iv = pass.traffic else { return nil }
        state.add(iv)
        guard !context.alerted.contains(id), let v = state.verdict() else { return nil }
        let ev = RelayEvidence.evidence(v)
        return Verdict(severity: .high, summary: RelayEvidence.summary(v), evidence: ev, metrics: RelayEvidence.metrics(v),
                       pid: pass.snapshot.mainPid, exe: pass.snapshot.mainExe, startedAt: v.since)
    }
}
