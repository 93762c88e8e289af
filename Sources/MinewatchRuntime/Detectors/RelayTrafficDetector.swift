import Foundation
import MinewatchCore
import MinewatchNetwork
import MinewatchModel

/// Detector 7 of `watch`: relaying traffic for someone else (proxyjacking), by bytes alone: the
/// relay model (MinewatchNetwork's `RelayJudge`, the same one `pcap` runs per client) over
/// each container's per-connection traffic (sock_diag, and with capture on the connections too
/// short to be seen at a pass). Needs per-connection counters; without them it stays silent. High: a container that relays at this rate is selling its network.
public struct RelayTrafficDetector: ContainerDetector {
    public let id = DetectorID.relay
    public var model: RelayThresholds

    public init(model: RelayThresholds = RelayThresholds()) { self.model = model }

    public func makeState() -> RelayJudge { RelayJudge(model: model) }

    public func inspect(_ pass: ContainerPass, state: inout RelayJudge, context: DetectionContext) -> Verdict? {
        guard let iv = pass.traffic else { return nil }
        state.add(iv)
        guard !context.alerted.contains(id), state.judgedWindow() != nil else { return nil }
        // Addresses behind one name (TLS SNI, HTTP Host seen by the capture) are one vendor side.
        var names: [String: String] = [:]
        for s in pass.snapshot.sessions {
            if let n = s.facts.serverName { names[Endpoint.host(s.server)] = n.lowercased() }
        }
        guard let v = state.verdict(names: names) else { return nil }
        let ev = RelayEvidence.evidence(v)
        return Verdict(severity: .high, summary: RelayEvidence.summary(v), evidence: ev, metrics: RelayEvidence.metrics(v),
                       pid: pass.snapshot.mainPid, exe: pass.snapshot.mainExe, startedAt: v.since, verdict: ("MW-NET-RELAY", "default"))
    }
}
