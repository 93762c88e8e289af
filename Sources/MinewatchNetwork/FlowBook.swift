import Foundation
import MinewatchCore
import MinewatchModel
import MinewatchPackets

/// One namespace's flows in a live capture: the flow table with an inspector on each flow, and
/// what the watcher reads of them (sessions that carry evidence, TCP connections open and
/// recently closed, DNS questions asked). What is published is brought up to date from the flows
/// packets reached since the last look (`absorb`), never by walking the whole table: a busy
/// server's table holds thousands of connections, most of them done, and walking them all at
/// every look was a tenth of the agent on a node of 500 containers.
///
/// A connection the namespace accepted from another host (`Flow.accepted`) is counted, listed
/// open and closed, but not inspected: every detector reads only the sessions a container opened
/// (a container serving its own users is not what they judge), and on a node of API clients and
/// their servers, each exchange was parsed at both ends.
final class FlowBook {
    let table: FlowTable
    /// Every flow in the table, with its inspector (none for one the namespace accepted).
    var inspectors: [ObjectIdentifier: (Flow, FlowInspector?)] = [:]
    let heartbeat: HeartbeatThresholds
    /// DNS questions the namespace asked, most recent last (at most `maxNames`).
    var names: [String] = []
    static let maxNames = 256
    /// Whether a flow began since `openConnections()` was last read.
    var flowsOpened = false
    /// Sessions as last judged, for the flows that carry evidence.
    var sessionsByFlow: [ObjectIdentifier: LiveSession] = [:]
    /// Flows packets reached since sessions were last judged.
    var unjudged: [ObjectIdentifier: Flow] = [:]
    /// TCP connections whose opening was seen: still open, and closed within `recent` seconds
    /// of their last packet (as of the packets absorbed so far).
    var openByFlow: [ObjectIdentifier: CapturedFlow] = [:]
    var closedByFlow: [ObjectIdentifier: CapturedFlow] = [:]
    static let recent = 30.0
    static let maxClosedFlows = 2048

    init(maxFlows: Int, cap: Int, heartbeat: HeartbeatThresholds) {
        self.heartbeat = heartbeat
        table = FlowTable(maxFlows: maxFlows, maxPendingPerDirection: 64 * 1024)
        table.tracksTouched = true
        table.onNew = { [unowned self] flow in
            self.flowsOpened = true
            guard !flow.accepted else {
                self.inspectors[ObjectIdentifier(flow)] = (flow, nil)
                return
            }
            let i = FlowInspector(flow: flow, maxParsedPerDirection: cap) { [unowned self] m in
                guard !m.isResponse else { return }
                for q in m.questions {
                    self.names.removeAll { $0 == q }
                    self.names.append(q)
                    if self.names.count > Self.maxNames { self.names.removeFirst() }
                }
            }
            flow.consumer = i
            self.inspectors[ObjectIdentifier(flow)] = (flow, i)
        }
        table.onEvict = { [unowned self] flow in
            let key = ObjectIdentifier(flow)
            self.inspectors[key] = nil
            self.labels[key] = nil
            if self.sessionsByFlow.removeValue(forKey: key) != nil { self.sessionsChanged = true }
            self.unjudged[key] = nil
            self.openByFlow[key] = nil
            self.closedByFlow[key] = nil
        }
    }

    /// Takes in the flows packets reached since the last call: they are judged again at the next
    /// `sessions()`, and a TCP connection whose opening was seen moves to (or within) the open or
    /// the closed list.
    func absorb() {
        for f in table.takeTouched() {
            let key = ObjectIdentifier(f)
            guard inspectors[key]?.0 === f else { continue }  // left the table since
            unjudged[key] = f
            guard f.transport == .tcp && f.sawSYN else { continue }
            let l = label(f)
            if f.closed {
                openByFlow[key] = nil
                closedByFlow[key] = captured(f, l, id: l.id)
            } else {
                openByFlow[key] = captured(f, l, id: 0)
            }
        }
    }

    func captured(_ f: Flow, _ l: Label, id: UInt64) -> CapturedFlow {
        CapturedFlow(id: id, client: l.client, clientPort: f.clientPort, server: l.server, serverPort: f.serverPort,
                            clientBytes: UInt64(f.clientBytes), serverBytes: UInt64(f.serverBytes),
                            serverDataPackets: UInt32(truncatingIfNeeded: f.serverDataPackets), first: Date(timeIntervalSince1970: f.first),
                            last: Date(timeIntervalSince1970: f.last))
    }

    /// TCP flows that opened (their SYN was seen) and closed within the last `recent` seconds of
    /// capture time, at most `maxClosedFlows` (those that ended last). Older ones are forgotten
    /// here (a packet that reaches one again brings it back).
    func closedFlows(now: Double) -> [CapturedFlow] {
        closedByFlow = closedByFlow.filter { now - $0.value.last.timeIntervalSince1970 <= Self.recent }
        return Self.newest(Array(closedByFlow.values)) { $0.last > $1.last }
    }

    /// TCP connections whose opening the capture saw and that are still open (at most
    /// `maxClosedFlows`, the newest): how the sampler learns a namespace's new connections
    /// without walking the host's TCP table.
    func openConnections() -> [CapturedFlow] {
        flowsOpened = false
        return Self.newest(Array(openByFlow.values)) { $0.first > $1.first }
    }

    static func newest(_ flows: [CapturedFlow], later: (CapturedFlow, CapturedFlow) -> Bool) -> [CapturedFlow] {
        guard flows.count > maxClosedFlows else { return flows }
        return Array(flows.sorted(by: later).prefix(maxClosedFlows))
    }

    /// Sessions recognised so far that a detector reads (mining protocols, named servers: TLS
    /// SNI, HTTP Host; heartbeats): only the flows packets reached since the last call are judged
    /// again.
    func sessions() -> [LiveSession] {
        for (key, f) in unjudged {
            guard let (_, inspector) = inspectors[key], let i = inspector else { continue }
            var facts = i.facts
            facts.judgeTiming(of: f, heartbeat: heartbeat, jobPushes: JobPushThresholds())
            if facts.carriesEvidence {
                let l = label(f)
                let session = LiveSession(client: l.client, clientPort: f.clientPort, serverPort: f.serverPort, server: l.serverEndpoint,
                                          first: Date(timeIntervalSince1970: f.first), facts: facts)
                if sessionsByFlow[key] != session {
                    sessionsByFlow[key] = session
                    sessionsChanged = true
                }
            } else if sessionsByFlow.removeValue(forKey: key) != nil {
                sessionsChanged = true
            }
        }
        unjudged.removeAll(keepingCapacity: true)
        if sessionsChanged {
            sessionList = Array(sessionsByFlow.values)
            sessionsChanged = false
        }
        return sessionList
    }
    /// `sessionsByFlow` as an array, made again only when a session changed or left.
    var sessionList: [LiveSession] = []
    var sessionsChanged = false

    /// Whether `sessions()` may give something new: packets reached a flow since sessions were
    /// last judged, or a flow with a session left the table.
    var sessionsStale: Bool { !unjudged.isEmpty || sessionsChanged }

    /// How long a flow stays in the table after it ended, in capture time (Suricata's flow
    /// timeouts are the model): a closed connection `Retention.closed` after its last
    /// packet, one that carried mining evidence (a mining protocol, announcement-framed or
    /// random-looking request bodies) `Retention.closedWithEvidence`, a UDP flow idle for
    /// `Retention.udpIdle`, any other flow idle for `Retention.idle`. Without this the
    /// table kept every connection a namespace ever made until it held `maxFlows`, and each
    /// pass judged and copied them all: a client reconnecting every few seconds grew the
    /// agent by megabytes a minute and its passes with them.
    enum Retention {
        static let closed = 60.0
        static let closedWithEvidence = 600.0
        static let udpIdle = 120.0
        static let idle = 3600.0
    }

    /// Whether a flow has ended long enough ago to leave the table at `now`.
    static func ended(_ f: Flow, facts: SessionFacts, now: Double) -> Bool {
        let quiet = now - f.last
        if f.transport == .udp { return quiet > Retention.udpIdle }
        guard f.closed else { return quiet > Retention.idle }
        let evidence = facts.protocolName.isMining || facts.miningExtensions != nil || facts.announcementBodies > 0 || facts.kibFramedBodies > 0
            || !facts.randomBodyDigests.isEmpty
        return quiet > (evidence ? Retention.closedWithEvidence : Retention.closed)
    }

    /// When the table was last swept of ended flows.
    var sweptAt = 0.0

    /// Ended flows leave the table (and their inspectors with them), at most every five seconds.
    func sweep(now: Double) {
        guard now - sweptAt >= 5 else { return }
        sweptAt = now
        let inspected = inspectors
        table.remove(where: { f in Self.ended(f, facts: inspected[ObjectIdentifier(f)]?.1?.facts ?? SessionFacts(), now: now) })
    }

    /// A flow's addresses as text and its id as a closed connection, made once per flow.
    struct Label {
        var first: Double
        var client: String
        var server: String
        /// The server's address and port, as sessions name it.
        var serverEndpoint: String
        var id: UInt64
    }
    var labels: [ObjectIdentifier: Label] = [:]

    func label(_ f: Flow) -> Label {
        let key = ObjectIdentifier(f)
        if let l = labels[key], l.first == f.first { return l }
        let l = Label(first: f.first, client: "\(f.client)", server: "\(f.server)", serverEndpoint: Flow.endpoint(f.server, f.serverPort),
                      id: FNV1a.hash("\(f.client)|\(f.clientPort)|\(f.server)|\(f.serverPort)|\(f.first)".utf8) | 1 << 63)
        labels[key] = l
        return l
    }
}
