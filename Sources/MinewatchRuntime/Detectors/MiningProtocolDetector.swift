import Foundation
import MinewatchCore
import MinewatchNetwork
import MinewatchModel
import MinewatchSignatures

/// Detector 6 of `watch`: what the container said on the wire, from the packets captured in its
/// namespace (the sampler's session source): a Stratum login with jobs, PacketCrypt announcement
/// posts, getwork, or a TLS/HTTP name of a pool domain. How strong each is comes from the same
/// `ProtocolJudge` as `pcap`'s findings. Sessions the container serves (a pool in a container)
/// are not a miner's. When the kernel dropped packets from its ring, the alert says so.
///
/// Stratum under encryption shows by its shape (`JobPushJudge`): a trait alone, medium with the
/// container at its CPU limit, high with a RandomX signal or another miner detector's alert.
public struct MiningProtocolDetector: ContainerDetector {
    public let id = DetectorID.miningProtocol
    let ruleSet: RuleSet
    /// How long PacketCrypt polling may be seen without a counted batch before it is alerted alone.
    public var packetCryptWait: TimeInterval = 30
    /// Share of its CPU limit a container must use for the job-push shape to be medium.
    public var busyShare = 0.8
    public var hostCores = Double(ProcessInfo.processInfo.activeProcessorCount)
    /// Alerts that make the job-push shape high.
    public static let corroborating: [DetectorID] = [.cpuMiner, .minerProcess]

    public init(rules: RuleSet) { ruleSet = rules }

    public struct State {
        var shapes: [Trait] = []
    }

    public func makeState() -> State { State() }

    public func traits(_ state: State) -> [Trait] { state.shapes }

    public func inspect(_ pass: ContainerPass, state: inout State, context: DetectionContext) -> Verdict? {
        let snap = pass.snapshot
        if snap.sessions.isEmpty { state.shapes = [] }
        guard !context.alerted.contains(id), !snap.hostNetwork, !snap.sessions.isEmpty else { return nil }
        // Sessions this container opened (not ones it serves).
        let ownPorts = Set(snap.sockets.map(\.localPort))
        let sessions = snap.sessions.filter { ownPorts.contains($0.clientPort) || !snap.listenPorts.contains($0.serverPort) }
        guard !sessions.isEmpty else { return nil }
        var verdict: ProtocolVerdict?
        var first = pass.now
        let stratum = sessions.compactMap { s in ProtocolJudge.stratum(s.facts, pool: s.server, rules: ruleSet).map { (s, $0) } }
        let pkt = sessions.filter { $0.facts.protocolName == .packetcrypt }
        if let (s, v) = stratum.max(by: { $0.0.facts.jobs < $1.0.facts.jobs }) {
            verdict = v
            first = s.first
        } else if !pkt.isEmpty, pkt.contains(where: { $0.facts.announcements > 0 })
                    || pass.now.timeIntervalSince(pkt.map(\.first).min() ?? pass.now) > packetCryptWait {
            // Waits (up to `packetCryptWait`) for a counted batch, so the alert can say how many.
            verdict = ProtocolJudge.packetCrypt(pkt.map { ($0.server, $0.facts) }, rules: ruleSet)
            first = pkt.map(\.first).min() ?? first
        } else if let (s, v) = sessions.lazy.compactMap({ s in ProtocolJudge.getwork(s.facts, server: s.server, rules: ruleSet).map { (s, $0) } }).first {
            verdict = v
            first = s.first
        } else if let (s, domain) = sessions.lazy.compactMap({ s in s.facts.serverName.flatMap { ruleSet.poolDomain(for: $0) }.map { (s, $0) } }).first {
            let via = "\(s.facts.sni != nil ? "TLS server name" : "HTTP Host") \(s.facts.sni ?? s.facts.host ?? "")"
            verdict = ProtocolJudge.poolDomain(domain, via: via, server: s.server, rules: ruleSet)
            first = s.first
        }
        let shaped = sessions.filter { $0.facts.jobPushes != nil }
        state.shapes = shaped.compactMap { s in
            s.facts.jobPushes.map { Trait(name: "stratum shape", detector: id, summary: "\(s.server): \(JobPushJudge.describe($0))", since: s.first,
                                         technique: "T1496.001") }
        }
        if verdict == nil, let s = shaped.first, let j = s.facts.jobPushes {
            let limit = snap.cgroup?.cpuLimitCores ?? hostCores
            let corroborated = Self.corroborating.filter { context.alertedAtMedium.contains($0) }
            let busy = (pass.cpuCores ?? 0) >= busyShare * limit
            if !corroborated.isEmpty || busy {
                var with = corroborated.map { Evidence(kind: .attribute, name: "with", value: $0.rawValue) }
                if busy { with.append(Evidence(kind: .attribute, name: "cpu", value: String(format: "%.2f of %.2f cores", pass.cpuCores ?? 0, limit))) }
                verdict = ProtocolJudge.stratumShape(j, server: s.server, how: corroborated.isEmpty ? "cpu" : "corroborated", with: with, rules: ruleSet)
                first = s.first
            }
        }
        guard var v = verdict else { return nil }
        if let drops = snap.capture?.drops, drops > 0 {
            v.evidence.append(Evidence(kind: .attribute, name: "capture",
                                       value: "the kernel dropped \(drops) packets from this namespace's ring: protocol evidence may be incomplete"))
        }
        return Verdict(severity: v.severity, family: v.family, summary: v.summary, technique: v.technique, evidence: v.evidence,
                       metrics: ["sessions": Double(sessions.count)], pid: snap.mainPid, exe: snap.mainExe, startedAt: first)
    }
}
