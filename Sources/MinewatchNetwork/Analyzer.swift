import Foundation
import MinewatchCore
import MinewatchModel
import MinewatchPackets
import MinewatchSignatures

/// Evidence for identities seen on the wire, the same in `pcap` findings and `watch` alerts.
public enum WireEvidence {
    /// A Stratum login or worker ("wallet.worker"): a checksum-valid wallet is wallet evidence.
    public static func login(_ login: String) -> Evidence {
        let wallet = String(login.split(separator: ".").first ?? Substring(login))
        let kind = WalletValidator.classify(Array(wallet.utf8))
        return Evidence(kind: kind == nil ? .attribute : .wallet, name: kind.map { "wallet \($0.currency)" } ?? "login", value: login)
    }

    /// A PacketCrypt payout address (`x-pc-payto`).
    public static func payto(_ address: String) -> Evidence {
        Evidence(kind: WalletValidator.classify(Array(address.utf8)) == nil ? .attribute : .wallet, name: "x-pc-payto", value: address)
    }
}

/// Reads packets, follows flows, runs the recognisers and turns what they found into sessions and
/// findings (the same severity/family/evidence schema as `scan` and `watch`). The behavioural
/// bandwidth model is the one `watch` uses, fed with flow counters every `step` seconds of
/// capture time.
public final class CaptureAnalyzer {
    let rules: RuleSet
    public var bandwidthModel = BandwidthThresholds()
    public var relayModel = RelayThresholds()
    public var heartbeatModel = HeartbeatThresholds()
    public var jobPushModel = JobPushThresholds()
    public var maxFlows = 200_000
    public var maxInspectedPerDirection = 4 << 20
    /// Most finished flows kept for sessions and findings.
    public var maxKeptFlows = 100_000
    let step = 2.0

    public init(rules: RuleSet) { self.rules = rules }

    public func analyze<S: PacketSource>(_ source: inout S) -> CaptureReport {
        var report = CaptureReport(file: source.name)
        let table = FlowTable(maxFlows: maxFlows)
        var inspectors: [ObjectIdentifier: FlowInspector] = [:]
        // Flows that are done: only those whose facts can become a session or finding are kept
        // (at most `maxKeptFlows`; the rest are counted), the others only as top-flow candidates,
        // so a capture of millions of flows costs what its interesting flows cost.
        var finished: [(Flow, SessionFacts)] = []
        var largest: [FlowSummary] = []
        var flowCount = 0
        let heartbeats = heartbeatModel, jobPushes = jobPushModel
        func finish(_ flow: Flow, _ i: FlowInspector) {
            flowCount += 1
            i.facts.judgeTiming(of: flow, heartbeat: heartbeats, jobPushes: jobPushes)
            flow.releaseBuffers()
            flow.consumer = nil
            let summary = FlowSummary(transport: flow.transport == .tcp ? "tcp" : "udp", client: Flow.endpoint(flow.client, flow.clientPort),
                                      server: Flow.endpoint(flow.server, flow.serverPort), protocolName: i.facts.protocolName,
                                      clientBytes: flow.clientBytes, serverBytes: flow.serverBytes,
                                      packets: flow.clientPackets + flow.serverPackets, seconds: flow.last - flow.first)
            // Largest first; equal sizes by endpoints, so the list is the same however the flow
            // table was ordered.
            func before(_ a: FlowSummary, _ b: FlowSummary) -> Bool {
                let x = a.clientBytes + a.serverBytes, y = b.clientBytes + b.serverBytes
                if x != y { return x > y }
                return (a.client, a.server, a.transport) < (b.client, b.server, b.transport)
            }
            if largest.count < 20 || largest.last.map({ before(summary, $0) }) == true {
                largest.append(summary)
                largest.sort(by: before)
                if largest.count > 20 { largest.removeLast() }
            }
            if i.facts.carriesEvidence || names[flow.server] != nil {
                if finished.count < maxKeptFlows { finished.append((flow, i.facts)) } else { report.flowsNotKept += 1 }
            }
        }
        var names: [IPAddress: String] = [:]
        var dnsQueries: [(client: IPAddress, name: String, time: Double)] = []
        var bandwidth: [IPAddress: BandwidthJudge] = [:]
        var verdicts: [IPAddress: BandwidthVerdict] = [:]
        var relays: [IPAddress: RelayJudge] = [:]
        var relayVerdicts: [IPAddress: RelayVerdict] = [:]
        let relayModel = self.relayModel
        var outbound: [IPAddress: [Flow]] = [:]
        var nextTick: Double?
        let cap = maxInspectedPerDirection
        table.onNew = { flow in
            let inspector = FlowInspector(flow: flow, maxParsedPerDirection: cap) { m in
                // Bounded: a capture full of DNS costs at most this much memory.
                for q in m.questions where !m.isResponse && dnsQueries.count < 100_000 { dnsQueries.append((flow.client, q, flow.last)) }
                for a in m.answers where names.count < 100_000 || names[a.address] != nil { names[a.address] = a.name }
            }
            flow.consumer = inspector
            inspectors[ObjectIdentifier(flow)] = inspector
            if flow.transport == .tcp { outbound[flow.client, default: []].append(flow) }
        }
        table.onEvict = { flow in
            if let i = inspectors.removeValue(forKey: ObjectIdentifier(flow)) { finish(flow, i) }
            flow.consumer = nil
            if var list = outbound[flow.client] { list.removeAll { $0 === flow }; outbound[flow.client] = list.isEmpty ? nil : list }
        }
        let model = bandwidthModel
        func tick(_ now: Double) {
            for (host, flows) in outbound {
                // The client's flows as its connections (it opened them all).
                let connections = flows.map { f in
                    ConnectionSample(id: UInt64(UInt(bitPattern: ObjectIdentifier(f).hashValue)), remoteAddress: "\(f.server)",
                                     remotePort: f.serverPort, localPort: f.clientPort, inbound: false, established: !f.closed,
                                     counters: ConnectionCounters(bytesSent: UInt64(f.clientBytes), bytesReceived: UInt64(f.serverBytes),
                                                                  segmentsIn: UInt32(truncatingIfNeeded: f.serverDataPackets)))
                }
                var d = bandwidth[host] ?? BandwidthJudge(model: model)
                let iv = d.observe(NetObservation(time: Date(timeIntervalSince1970: now), connections: connections, interfaces: nil, hostNetwork: false))
                if verdicts[host] == nil, let v = d.verdict() { verdicts[host] = v }
                bandwidth[host] = d
                // A relay needs a tunnel and several targets: hosts talking to few addresses skip it.
                if let iv, relayVerdicts[host] == nil, relays[host] != nil || Self.distinctServers(flows, atLeast: relayModel.minTargets + 1) {
                    var r = relays[host] ?? RelayJudge(model: relayModel)
                    r.add(iv)
                    // The names the client used for its servers (DNS answers, TLS SNI, HTTP Host).
                    var serverNames: [String: String] = [:]
                    for f in flows {
                        if let n = names[f.server] ?? inspectors[ObjectIdentifier(f)]?.facts.serverName { serverNames["\(f.server)"] = n.lowercased() }
                    }
                    if let v = r.verdict(names: serverNames) { relayVerdicts[host] = v }
                    relays[host] = r
                }
            }
            // Closed flows stay in the observation one more tick (their last bytes count), then go.
            for (host, flows) in outbound { outbound[host] = flows.filter { !$0.closed || now - $0.last < step * 2 } }
        }
        do {
            try source.read { info, bytes in
                report.packets += 1
                report.bytes += Int64(info.capturedLength)
                if report.firstSeen == nil { report.firstSeen = Date(timeIntervalSince1970: info.time) }
                report.lastSeen = Date(timeIntervalSince1970: info.time)
                guard let p = PacketDecoder.decode(linkType: info.linkType, bytes, originalLength: info.originalLength) else {
                    report.otherPackets += 1
                    return
                }
                table.add(p, bytes: bytes, time: info.time)
                if let t = nextTick {
                    if info.time >= t {
                        tick(info.time)
                        nextTick = info.time + step
                    }
                } else {
                    nextTick = info.time + step
                    tick(info.time)
                }
            }
        } catch {
            report.error = error.description
        }
        if let t = report.lastSeen?.timeIntervalSince1970 { tick(t + 0.001) }
        for f in table.flows.values { if let i = inspectors[ObjectIdentifier(f)] { finish(f, i) } }
        report.flows = flowCount
        report.topFlows = largest
        report.evictedFlows = table.evicted
        report.holesSkipped = table.holesSkipped
        finished.sort { $0.0.first < $1.0.first }
        build(&report, finished, names: names, dnsQueries: dnsQueries, verdicts: verdicts, relays: relayVerdicts)
        return report
    }

    /// The miner family an agent string names ("XMRig/6.21" is xmrig), or nil.
    public static func family(agent: String?) -> String? {
        guard let a = agent?.lowercased() else { return nil }
        for (needle, fam) in [("xmrig", "xmrig"), ("xmr-stak", "xmr-stak"), ("cpuminer", "cpuminer"), ("cgminer", "cgminer"),
                              ("bfgminer", "bfgminer"), ("sgminer", "sgminer"), ("ccminer", "ccminer"), ("ethminer", "ethminer"),
                              ("nbminer", "nbminer"), ("t-rex", "t-rex"), ("lolminer", "lolminer"), ("srbminer", "srbminer")] where a.contains(needle) {
            return fam
        }
        return nil
    }

    static func distinctServers(_ flows: [Flow], atLeast n: Int) -> Bool {
        var seen = Set<IPAddress>()
        for f in flows {
            seen.insert(f.server)
            if seen.count >= n { return true }
        }
        return false
    }

    /// A protocol verdict as a finding at `path`.
    static func finding(_ v: ProtocolVerdict, path: String) -> Finding {
        v.verdict.finding(path: path, family: v.family, evidence: v.evidence)
    }

    /// The client a finding's path names: a host (`198.18.1.5`) or a flow (`[v6]:p -> b:q`).
    static func client(ofPath path: String) -> String {
        Endpoint.host(String(path.split(separator: " ", maxSplits: 1).first ?? Substring(path)))
    }

    func build(_ report: inout CaptureReport, _ flows: [(Flow, SessionFacts)], names: [IPAddress: String],
               dnsQueries: [(client: IPAddress, name: String, time: Double)], verdicts: [IPAddress: BandwidthVerdict],
               relays: [IPAddress: RelayVerdict]) {
        func serverName(_ f: Flow, _ facts: SessionFacts) -> String? {
            names[f.server] ?? facts.serverName
        }
        var pktByClient: [IPAddress: [(Flow, SessionFacts)]] = [:]
        // Bandwidth-sharing services by the names clients sent or asked for: client|rule id.
        var services: [String: (client: IPAddress, rule: Rule, domain: String, via: String, heartbeat: Heartbeat?)] = [:]
        var poolContacts: [String: (client: IPAddress, domain: String, via: String, name: String)] = [:]
        for (f, facts) in flows {
            let name = serverName(f, facts)
            if let name, let domain = rules.poolDomain(for: name) {
                let via = names[f.server] != nil ? "DNS answer for the address" : (facts.sni != nil ? "TLS server name" : "HTTP Host")
                poolContacts["\(f.client)|\(domain)"] = (f.client, domain, via + " \(name) (\(f.endpoints))", name)
            }
            for n in [facts.sni, facts.host.map(Endpoint.host), names[f.server]].compactMap({ $0 }) {
                guard let r = rules.serviceRule(for: n) else { continue }
                let key = "\(f.client)|\(r.rule.id)"
                let via = (n == facts.sni ? "TLS server name" : n == names[f.server] ? "DNS answer" : "HTTP Host") + " \(n) (\(f.endpoints))"
                if services[key] == nil || (services[key]?.heartbeat == nil && facts.heartbeat != nil) {
                    services[key] = (f.client, r.rule, r.domain, via, facts.heartbeat)
                }
                break
            }
            if let h = facts.heartbeat, !(facts.sni.flatMap { rules.serviceRule(for: $0) } != nil) {
                report.findings.append(rules.verdict("MW-NET-HEARTBEAT").finding(
                    path: f.endpoints,
                    evidence: [Evidence(kind: .attribute, name: "heartbeat", value: HeartbeatJudge.describe(h)),
                               Evidence(kind: .pool, name: "server", value: serverName(f, facts).map { "\($0) (\(f.endpoints))" } ?? f.endpoints)]))
            }
            if let j = facts.jobPushes {
                let server = serverName(f, facts).map { "\($0) (\(f.endpoints))" } ?? f.endpoints
                report.findings.append(Self.finding(ProtocolJudge.stratumShape(j, server: server, how: "trait", rules: rules), path: f.endpoints))
            }
            let interesting = facts.protocolName.isMining
                || (facts.protocolName == .tls && facts.sni != nil)
            if interesting {
                report.sessions.append(NetSession(
                    protocolName: facts.protocolName, client: Flow.endpoint(f.client, f.clientPort), server: Flow.endpoint(f.server, f.serverPort),
                    serverName: name, firstSeen: Date(timeIntervalSince1970: f.first), lastSeen: Date(timeIntervalSince1970: f.last),
                    clientBytes: f.clientBytes, serverBytes: f.serverBytes, packets: f.clientPackets + f.serverPackets,
                    requestPeriodSeconds: NetSession.period(facts.requestTimes), facts: facts))
            }
            let poolDesc = Flow.endpoint(f.server, f.serverPort) + (name.map { " (\($0))" } ?? "")
            if let v = ProtocolJudge.stratum(facts, pool: poolDesc, rules: rules) { report.findings.append(Self.finding(v, path: f.endpoints)) }
            if facts.protocolName == .packetcrypt { pktByClient[f.client, default: []].append((f, facts)) }
            if let v = ProtocolJudge.getwork(facts, server: poolDesc, rules: rules) { report.findings.append(Self.finding(v, path: f.endpoints)) }
        }
        for (client, list) in pktByClient.sorted(by: { $0.key < $1.key }) {
            guard let v = ProtocolJudge.packetCrypt(list.map { (Flow.endpoint($0.0.server, $0.0.serverPort), $0.1) }, rules: rules) else { continue }
            let anns = list.reduce(0) { $0 + $1.1.announcements }
            let handlers = Set(list.filter { $0.1.annPosts > 0 }.map { Flow.endpoint($0.0.server, $0.0.serverPort) }).count
            var finding = Self.finding(v, path: "\(client)")
            finding.note = "\(anns) announcements posted to \(handlers) handler\(handlers == 1 ? "" : "s")"
            report.findings.append(finding)
        }
        for q in dnsQueries {
            if let domain = rules.poolDomain(for: q.name), poolContacts["\(q.client)|\(domain)"] == nil {
                poolContacts["\(q.client)|\(domain)"] = (q.client, domain, "DNS query for \(q.name)", q.name)
            }
            if let r = rules.serviceRule(for: q.name), services["\(q.client)|\(r.rule.id)"] == nil {
                services["\(q.client)|\(r.rule.id)"] = (q.client, r.rule, r.domain, "DNS query for \(q.name)", nil)
            }
        }
        for (host, v) in relays.sorted(by: { $0.key < $1.key }) {
            report.findings.append(rules.verdict("MW-NET-RELAY").finding(path: "\(host)", evidence: RelayEvidence.evidence(v),
                                                                          note: RelayEvidence.summary(v)))
        }
        for (_, c) in services.sorted(by: { $0.key < $1.key }) {
            var ev = [Evidence(kind: .pool, name: c.domain, value: c.via), Evidence(kind: .attribute, name: "rule", value: c.rule.id)]
            if let h = c.heartbeat { ev.append(Evidence(kind: .attribute, name: "heartbeat", value: HeartbeatJudge.describe(h))) }
            let relayed = relays[c.client] != nil
            if relayed { ev.append(Evidence(kind: .attribute, name: "with", value: "the same client relays traffic (MW-NET-RELAY)")) }
            let r = rules.verdict("MW-NET-SERVICE", c.heartbeat != nil || relayed ? "corroborated" : "contact", ["service": c.rule.title])
            report.findings.append(r.finding(path: "\(c.client)", family: c.rule.family, evidence: ev, technique: c.rule.technique))
        }
        for (_, c) in poolContacts.sorted(by: { $0.key < $1.key }) {
            report.findings.append(Self.finding(ProtocolJudge.poolDomain(c.domain, via: c.via, server: c.name, rules: rules), path: "\(c.client)"))
        }
        for (host, v) in verdicts.sorted(by: { $0.key < $1.key }) {
            let upload = Set(v.destinations.map(\.address))
            let toUpload = flows.filter { $0.0.client == host && upload.contains("\($0.0.server)") }.map { (server: "\($0.0.server)", facts: $0.1) }
            // Findings of the same client at medium or above (its flows' paths start with its endpoint).
            let others = Set(report.findings.filter { Self.client(ofPath: $0.path) == "\(host)" && $0.severity >= .medium }.map(\.ruleId))
            let why = BandwidthEvidence.reasons(v, toUpload: toUpload, others: others.sorted().map { "\($0) finding" })
            var ev = BandwidthEvidence.evidence(v, reasons: why)
            ev.insert(Evidence(kind: .attribute, name: "shape", value: BandwidthEvidence.shape(v)), at: v.destinations.count)
            report.findings.append(rules.verdict("MW-NET-BANDWIDTH", why.specific.isEmpty ? "trait" : "corroborated")
                .finding(path: "\(host)", family: why.family, evidence: ev))
        }
        report.findings.sort { $0.severity > $1.severity }
    }
}
