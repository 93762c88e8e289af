import Foundation
import MinewatchCore
import MinewatchNetwork
import MinewatchModel
import MinewatchSignatures

/// Detector 8 of `watch`: the names a container looks up or sends (DNS questions, TLS SNI, HTTP
/// Host, from its namespace's packets; names its /etc/hosts gives the addresses it connects to,
/// for connections made before capture began) against the bandwidth-sharing services' domains in the
/// rules (`domains:`). A name alone is medium; high with a heartbeat on that connection (DePIN
/// uptime farming), or with another detector's alert (the service's process, relaying, upload).
/// A heartbeat to a name no rule knows is a trait (monitoring agents beat too).
public struct BandwidthServiceDetector: ContainerDetector {
    public let id = DetectorID.bandwidthService
    let ruleSet: RuleSet
    public static let corroborating: [DetectorID] = [.minerProcess, .relay, .bandwidthMiner]

    public struct State {
        var heartbeats: [Trait] = []
        /// When a contact with nothing corroborating it was first seen (it waits a pass: see
        /// `inspect`).
        var bareContactAt: Date?
    }

    public init(rules: RuleSet) { ruleSet = rules }

    public func makeState() -> State { State() }

    /// Not while a bare contact waits for its second pass.
    public func settled(_ state: State) -> Bool { state.bareContactAt == nil }

    public func traits(_ state: State) -> [Trait] { state.heartbeats }

    public func inspect(_ pass: ContainerPass, state: inout State, context: DetectionContext) -> Verdict? {
        let snap = pass.snapshot
        guard !snap.hostNetwork else { return nil }
        // Nothing named and nothing captured: nothing to look at (most containers, most passes).
        if snap.sessions.isEmpty && snap.dnsQuestions.isEmpty && snap.hostNames.isEmpty {
            state.heartbeats = []
            return nil
        }
        let ownPorts = Set(snap.sockets.map(\.localPort))
        let sessions = snap.sessions.filter { ownPorts.contains($0.clientPort) || !snap.listenPorts.contains($0.serverPort) }
        state.heartbeats = sessions.compactMap { s in
            guard let h = s.facts.heartbeat else { return nil }
            return Trait(name: "heartbeat", detector: id,
                         summary: "periodic small messages to \(s.server)\((s.facts.sni ?? s.facts.host).map { " (\($0))" } ?? ""): "
                             + HeartbeatJudge.describe(h),
                         since: s.first, technique: "T1496.002")
        }
        guard !context.alerted.contains(id) else { return nil }
        // Names sent on connections (strongest first: with a heartbeat), then DNS questions.
        var hit: (rule: Rule, domain: String, via: String, session: LiveSession?)?
        for s in sessions.sorted(by: { ($0.facts.heartbeat != nil ? 0 : 1, $0.first) < ($1.facts.heartbeat != nil ? 0 : 1, $1.first) }) {
            for (name, via) in [(s.facts.sni, "TLS server name"), (s.facts.host, "HTTP Host")] {
                guard let name, let r = ruleSet.serviceRule(for: Endpoint.host(name)) else { continue }
                hit = (r.rule, r.domain, "\(via) \(name) to \(s.server)", s)
                break
            }
            if hit != nil { break }
        }
        if hit == nil {
            // Addresses it connects to that its /etc/hosts names (the lookup never reaches DNS).
            let heartbeatByServer = Dictionary(sessions.filter { $0.facts.heartbeat != nil }.map { (Endpoint.host($0.server), $0) },
                                               uniquingKeysWith: { a, _ in a })
            let outbound = snap.sockets.filter { $0.isEstablished && !snap.listenPorts.contains($0.localPort) }
            for s in outbound.sorted(by: { (heartbeatByServer[$0.remoteAddress] == nil ? 1 : 0) < (heartbeatByServer[$1.remoteAddress] == nil ? 1 : 0) }) {
                for name in snap.hostNames[s.remoteAddress] ?? [] {
                    guard let r = ruleSet.serviceRule(for: name) else { continue }
                    hit = (r.rule, r.domain, "connection to \(Endpoint.text(s.remoteAddress, s.remotePort)), named \(name) by the container's /etc/hosts",
                           heartbeatByServer[s.remoteAddress])
                    break
                }
                if hit != nil { break }
            }
        }
        if hit == nil {
            for q in snap.dnsQuestions.reversed() {
                if let r = ruleSet.serviceRule(for: q) { hit = (r.rule, r.domain, "DNS question for \(q)", nil); break }
            }
        }
        guard let hit else { return nil }
        var why: [String] = []
        if let h = hit.session?.facts.heartbeat {
            why.append("a heartbeat on that connection: " + HeartbeatJudge.describe(h))
        }
        why += Self.corroborating.filter { context.alerted.contains($0) }.map { "\($0.rawValue) alert" }
        // A contact with nothing corroborating it waits one pass: in a new container the
        // connection may show up in the pass that still read its process as the runtime left it
        // (sampled just before the exec), so the process detector, which corroborates, names it
        // a pass later. The alert is raised once, so it is raised with what a pass more gives.
        if why.isEmpty {
            guard let seen = state.bareContactAt, pass.now > seen else {
                if state.bareContactAt == nil { state.bareContactAt = pass.now }
                return nil
            }
        }
        state.bareContactAt = nil
        let service = hit.rule.family ?? hit.rule.id
        var summary = "contact with \(service) (\(hit.rule.title)): \(hit.via)"
        if !why.isEmpty { summary += "; with \(why.joined(separator: ", "))" }
        var evidence = [Evidence(kind: .pool, name: hit.domain, value: hit.via), Evidence(kind: .attribute, name: "rule", value: hit.rule.id)]
        evidence += why.map { Evidence(kind: .attribute, name: "with", value: $0) }
        if let drops = snap.capture?.drops, drops > 0 {
            evidence.append(Evidence(kind: .attribute, name: "capture", value: "the kernel dropped \(drops) packets from this namespace's ring"))
        }
        return Verdict(severity: why.isEmpty ? .medium : .high, family: hit.rule.family, summary: summary,
                       technique: hit.rule.technique, evidence: evidence,
                       metrics: ["sessions": Double(sessions.count)], pid: snap.mainPid, exe: snap.mainExe,
                       startedAt: hit.session?.first ?? pass.now, verdict: ("MW-NET-SERVICE", why.isEmpty ? "contact" : "corroborated"))
    }
}
