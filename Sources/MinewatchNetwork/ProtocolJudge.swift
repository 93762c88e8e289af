import Foundation
import MinewatchCore
import MinewatchModel
import MinewatchSignatures

/// How strong what a miner said on the wire is: one judgement for `pcap` findings and `watch`'s
/// mining-protocol alerts, so the same session gets the same severity and family in both.
public struct ProtocolVerdict: Sendable {
    public enum Kind: String, Sendable { case stratum, packetcrypt, getwork, poolDomain = "pool-domain", stratumShape = "stratum-shape" }
    public var kind: Kind
    /// The verdict in the rule data (`MW-NET-STRATUM` and its case): its severity, title
    /// ("Stratum (Monero dialect) mining session"), technique and category.
    public var verdict: ResolvedVerdict
    public var family: String?
    public var severity: Severity { verdict.severity }
    public var technique: String? { verdict.technique }
    /// One sentence with the numbers.
    public var summary: String
    public var evidence: [Evidence]
}

public enum ProtocolJudge {
    /// A Stratum session the client opened: nil unless it logged in, named its agent, got jobs or
    /// submitted shares. Critical when mining is proven: the pool sent jobs to a miner that logged
    /// in or submitted, or the pool accepted its shares (a live capture may start after the login
    /// and the first jobs); high otherwise.
    public static func stratum(_ f: SessionFacts, pool: String, rules: RuleSet) -> ProtocolVerdict? {
        guard f.protocolName.isStratum, f.login != nil || f.agent != nil || f.jobs > 0 || f.submits > 0 else { return nil }
        let proven = (f.jobs > 0 && (f.submits > 0 || f.login != nil)) || f.accepted > 0
        var ev = [Evidence(kind: .pool, name: "pool", value: pool)]
        if let login = f.login { ev.append(WireEvidence.login(login)) }
        if let a = f.agent { ev.append(Evidence(kind: .attribute, name: "agent", value: a)) }
        // The agent names the program when it is honest about it; otherwise the protocol names
        // the family (algorithm, wallet format, job blob).
        let byAgent = CaptureAnalyzer.family(agent: f.agent), wire = WireFamily.identify(f)
        if let a = f.algorithm { ev.append(Evidence(kind: .attribute, name: "algorithm", value: a)) }
        if byAgent == nil, let wire { ev.append(Evidence(kind: .attribute, name: "family from the wire", value: "\(wire.family): \(wire.because)")) }
        ev.append(Evidence(kind: .attribute, name: "counts",
                           value: "jobs \(f.jobs), shares submitted \(f.submits), accepted \(f.accepted), rejected \(f.rejected)"))
        let monero = f.protocolName == .stratumMonero, ethereum = f.protocolName == .stratumEthereum
        let summary = "Stratum\(monero ? " (Monero)" : ethereum ? " (Ethereum)" : "") session to \(pool)" + (f.login.map { " logged in as \($0)" } ?? "")
            + (f.agent.map { " (agent \($0))" } ?? "") + ": \(f.jobs) jobs, \(f.submits) shares, \(f.accepted) accepted"
        let protocolText = monero ? "Stratum (Monero dialect)" : ethereum ? "Stratum (Ethereum dialect: EthProxy or EthereumStratum/1.0.0)" : "Stratum"
        let r = rules.verdict("MW-NET-STRATUM", proven ? "proven" : "session", ["protocol": protocolText])
        return ProtocolVerdict(kind: .stratum, verdict: r, family: byAgent ?? wire?.family, summary: summary, evidence: ev)
    }

    /// PacketCrypt traffic of one client (one container): config.json polls, announcement posts.
    /// Critical once announcements were posted, high for polling alone.
    public static func packetCrypt(_ sessions: [(server: String, facts: SessionFacts)], rules: RuleSet) -> ProtocolVerdict? {
        let pkt = sessions.filter { $0.facts.protocolName == .packetcrypt }
        guard !pkt.isEmpty else { return nil }
        let anns = pkt.reduce(0) { $0 + $1.facts.announcements }, posts = pkt.reduce(0) { $0 + $1.facts.annPosts }
        let polls = pkt.reduce(0) { $0 + $1.facts.configPolls }
        let handlers = Set(pkt.filter { $0.facts.annPosts > 0 }.map(\.server)).sorted()
        let pools = Set(pkt.filter { $0.facts.configPolls > 0 }.map(\.server)).sorted()
        let payto = Set(pkt.compactMap(\.facts.payto)).sorted()
        var ev = handlers.map { Evidence(kind: .pool, name: "handler", value: $0) } + pools.map { Evidence(kind: .pool, name: "pool", value: $0) }
        ev += payto.map(WireEvidence.payto)
        if let ua = pkt.compactMap(\.facts.userAgent).first { ev.append(Evidence(kind: .attribute, name: "user-agent", value: ua)) }
        ev.append(Evidence(kind: .attribute, name: "counts",
                           value: "\(anns) announcements in \(posts) posts to \(handlers.count) handlers; \(polls) config.json polls of \(pools.count) pools"))
        let summary = "PacketCrypt: \(anns) announcements in \(posts) posts to \(handlers.count) handler\(handlers.count == 1 ? "" : "s")"
            + ", config.json polls of \(pools.count) pool\(pools.count == 1 ? "" : "s")" + (payto.first.map { ", payto \($0)" } ?? "")
        let r = rules.verdict("MW-NET-PACKETCRYPT", posts > 0 ? "announcing" : "polling")
        return ProtocolVerdict(kind: .packetcrypt, verdict: r, family: "packetcrypt", summary: summary, evidence: ev)
    }

    /// getwork/getblocktemplate requests or X-Mining-Extensions: high.
    public static func getwork(_ f: SessionFacts, server: String, rules: RuleSet) -> ProtocolVerdict? {
        guard f.getwork > 0 || f.miningExtensions != nil else { return nil }
        var ev = [Evidence(kind: .pool, name: "server", value: server), Evidence(kind: .attribute, name: "requests", value: "\(f.getwork) getwork/getblocktemplate")]
        if let x = f.miningExtensions { ev.append(Evidence(kind: .attribute, name: "X-Mining-Extensions", value: x)) }
        let r = rules.verdict("MW-NET-GETWORK")
        return ProtocolVerdict(kind: .getwork, verdict: r, family: nil, summary: "getwork/getblocktemplate mining requests to \(server)", evidence: ev)
    }

    /// A name the workload itself looked up or sent (DNS, TLS SNI, HTTP Host) at or below a pool
    /// domain of the rule data: medium (a name alone).
    public static func poolDomain(_ domain: String, via: String, server: String, rules: RuleSet) -> ProtocolVerdict {
        // PacketCrypt pools' domains carry "pkt": bandwidth hijacking rather than CPU.
        let r = rules.verdict("MW-NET-POOL-DOMAIN", domain.contains("pkt") ? "packetcrypt" : "default")
        return ProtocolVerdict(kind: .poolDomain, verdict: r, family: nil, summary: "connection to mining pool domain \(domain) (\(via), \(server))",
                               evidence: [Evidence(kind: .pool, name: domain, value: via)])
    }

    /// Stratum's shape in an encrypted or unknown stream (`JobPushJudge`). `how`: "trait" (alone),
    /// "cpu" (the client at its CPU limit) or "corroborated" (RandomX, another miner alert);
    /// `with` says which.
    public static func stratumShape(_ j: JobPushes, server: String, how: String, with: [Evidence] = [], rules: RuleSet) -> ProtocolVerdict {
        let r = rules.verdict("MW-NET-STRATUM-SHAPE", how)
        let ev = [Evidence(kind: .attribute, name: "shape", value: JobPushJudge.describe(j)), Evidence(kind: .pool, name: "server", value: server)] + with
        return ProtocolVerdict(kind: .stratumShape, verdict: r, family: nil, summary: "\(r.title): \(server)", evidence: ev)
    }
}
