import Foundation
import MinewatchCore
import MinewatchNetwork
import MinewatchModel
import MinewatchSignatures
import Testing
import TestSupport
@testable import MinewatchHost
@testable import MinewatchRuntime

/// The watcher with the new detectors: an upload-heavy shape alone is a trait; announcement records or
/// a mining protocol to the upload destination makes it an alert; relaying is alerted by bytes;
/// a service's domain in SNI is an alert, high with a heartbeat; a heartbeat alone is a trait.
@Suite struct ProxywarePipelineTests {
    static let rules = CompiledRules(BundledRules.load().0)

    final class Sessions: SessionSource {
        var byNamespace: [UInt64: [LiveSession]] = [:]
        var questions: [UInt64: [String]] = [:]
        var closed: [UInt64: [CapturedFlow]] = [:]
        func sync(_ wanted: [UInt64: Int32]) {}
        func flows(_ ns: UInt64) -> [CapturedFlow] { closed[ns] ?? [] }
        func sessions(_ ns: UInt64) -> [LiveSession] { byNamespace[ns] ?? [] }
        func status(_ ns: UInt64) -> LiveCapture.RingStatus? { .init(packets: 10, drops: 0) }
        func names(_ ns: UInt64) -> [String] { questions[ns] ?? [] }
    }

    struct Setup {
        let w: Watcher
        let clock: StepClock
        let sockets: RecordedSockets
        let sessions: Sessions
        let cid: String
        let ns: UInt64
    }

    static func setup(_ tag: String, ns: UInt64) throws -> (Setup, FakeProc) {
        let proc = try FakeProc()
        let cid = String(repeating: tag, count: 32)
        try proc.add(pid: 700, comm: "svc", cgroup: "/docker/\(cid)", cmdline: ["/svc"], exe: Samples.elf(["plain"]), netns: Int(ns))
        let clock = StepClock(Date(timeIntervalSince1970: 2_000_000_000))
        let sockets = RecordedSockets()
        let w = Watcher(rules: rules, proc: ProcfsReader(root: proc.root), clock: clock, sockets: sockets)
        w.settings.scratchPrefixes = []
        let sessions = Sessions()
        w.capture = sessions
        return (Setup(w: w, clock: clock, sockets: sockets, sessions: sessions, cid: cid, ns: ns), proc)
    }

    /// A log shipper: one keep-alive connection, 250 kB/s of batches with small replies.
    @Test func uploadShapeAloneIsATraitAndFramingMakesItAnAlert() throws {
        let (s, proc) = try Self.setup("c1", ns: 4026540001)
        _ = proc
        var r = Recorder()
        r.open(1, local: 40001, remote: "198.18.1.70", port: 9200)
        var alerts: [Alert] = []
        for _ in 0..<20 {
            r.traffic(1, tx: 500_000, rx: 600, replies: 4)
            s.sockets.byNetns[s.ns] = Array(r.sockets.values)
            alerts += s.w.poll()
            s.clock.date += 2.05
        }
        #expect(alerts.isEmpty, "\(alerts.map(\.summary))")
        let trait = try #require(s.w.telemetry[s.cid]?.traits?.first)
        #expect(trait.name == "upload-heavy" && trait.severity == .low && trait.detector == .bandwidthMiner)
        // Bodies in whole KiB that look random (a chunked media upload looks the same): still a
        // trait, with the reasons it shares with honest uploaders.
        var facts = SessionFacts()
        facts.protocolName = .http
        facts.host = "198.18.1.70"
        facts.exactBodies = 6
        facts.kibFramedBodies = 6
        facts.randomBodies = 6
        func passes(_ n: Int) {
            for _ in 0..<n {
                r.traffic(1, tx: 500_000, rx: 600, replies: 4)
                s.sockets.byNetns[s.ns] = Array(r.sockets.values)
                alerts += s.w.poll()
                s.clock.date += 2.05
            }
        }
        func seen(_ f: SessionFacts) {
            s.sessions.byNamespace[s.ns] = [LiveSession(client: "10.0.0.2", clientPort: 40001, serverPort: 9200, server: "198.18.1.70:9200",
                                                        first: s.clock.date.addingTimeInterval(-30), facts: f)]
        }
        seen(facts)
        passes(2)
        #expect(alerts.isEmpty, "\(alerts.map(\.summary))")
        let generic = try #require(s.w.telemetry[s.cid]?.traits?.first)
        #expect(generic.summary.contains("whole KiB") && generic.summary.contains("incompressible") && generic.summary.contains("honest uploaders share"),
                "\(generic.summary)")
        // The same shape with PacketCrypt announcement records in its bodies is a miner.
        facts.announcementBodies = 6
        seen(facts)
        passes(2)
        let a = try #require(alerts.first { $0.detector == .bandwidthMiner })
        #expect(a.severity == .high && a.technique == "T1496.002")
        #expect(a.summary.contains("PacketCrypt announcements"), "\(a.summary)")
        #expect(a.evidence.contains { $0.name == "shared trait" && $0.value.contains("whole KiB") })
        #expect(s.w.telemetry[s.cid]?.traits == nil, "an alert, no longer only a trait")
    }

    @Test func relayingIsAlertedWithTheTunnelAndTargets() throws {
        let (s, proc) = try Self.setup("c2", ns: 4026540002)
        _ = proc
        var r = Recorder()
        r.open(1, local: 40001, remote: "198.18.1.5", port: 443)
        var alerts: [Alert] = []
        for i in 0..<20 {
            for k in 0..<4 {
                let id = UInt64(100 + (i / 3) * 4 + k)
                if i % 3 == 0 { r.close(id - 4); r.open(id, local: UInt16(41000 + Int(id % 20000)), remote: "198.18.1.\(20 + (i / 3 + k) % 9)", port: 443) }
                r.traffic(id, tx: 5_000, rx: 80_000, replies: 30)
            }
            r.traffic(1, tx: 4 * 80_000 + 3_000, rx: 4 * 5_000 + 500, replies: 50)
            s.sockets.byNetns[s.ns] = Array(r.sockets.values)
            alerts += s.w.poll()
            s.clock.date += 2.05
        }
        let a = try #require(alerts.first { $0.detector == .relay }, "\(alerts.map(\.summary))")
        #expect(a.severity == .high && a.technique == "T1496.002")
        #expect(a.evidence.contains { $0.name == "vendor" && $0.value == "198.18.1.5:443" })
        #expect((a.metrics["targets"] ?? 0) >= 4 && (a.metrics["balanceBack"] ?? 9) < 1.2)
        #expect(a.timeToDetect <= 30)
    }

    /// `passes` passes of a proxy node seen only through the capture: each pass, four jobs, each
    /// a vendor connection (the poll and the result, 60 kB back plus framing) and a target
    /// connection (60 kB fetched), all opened and closed between passes; the namespace's one
    /// socket is an idle keep-alive, so it has an address. Returns the alerts.
    static func pollingPasses(_ passes: Int, _ s: Setup, vendors: [String]) -> [Alert] {
        var alerts: [Alert] = []
        var port: UInt16 = 30000
        for i in 0..<passes {
            var flows: [CapturedFlow] = []
            for job in 0..<4 {
                port += 2
                let vendor = vendors[(i + job) % vendors.count], target = "198.18.1.\(20 + (i + job) % 6)"
                flows.append(CapturedFlow(id: 1 << 63 | UInt64(port), client: "10.0.0.2", clientPort: port, server: vendor, serverPort: 443,
                                          clientBytes: 60_000 * 103 / 100 + 900, serverBytes: 2_200, serverDataPackets: 3, first: s.clock.date))
                flows.append(CapturedFlow(id: 1 << 63 | UInt64(port + 1), client: "10.0.0.2", clientPort: port + 1, server: target, serverPort: 80,
                                          clientBytes: 700, serverBytes: 60_000, serverDataPackets: 40, first: s.clock.date))
            }
            s.sessions.closed[s.ns] = flows
            s.sockets.byNetns[s.ns] = [SocketEntry(proto: .tcp, localAddress: "10.0.0.2", localPort: 40001, remoteAddress: "198.18.1.5", remotePort: 443,
                                                   state: 1, inode: 1, counters: TCPCounters(bytesSent: 10, bytesReceived: 10))]
            alerts += s.w.poll()
            s.clock.date += 2.05
        }
        return alerts
    }

    /// A proxy node polling its vendor (three addresses behind one TLS name) over a fresh
    /// connection per job, fetching each target over a fresh connection: no socket lives long
    /// enough to be seen at a pass; the capture sees them open and close, and names the vendor.
    @Test func pollingRelaySeenThroughTheCapture() throws {
        let (s, proc) = try Self.setup("c4", ns: 4026540004)
        _ = proc
        let vendors = ["198.18.1.5", "198.18.1.6", "198.18.1.7"]
        s.sessions.byNamespace[s.ns] = vendors.map { v in
            var f = SessionFacts()
            f.protocolName = .tls
            f.sni = "edge-3.vendor.example"
            return LiveSession(client: "10.0.0.2", clientPort: 40001, serverPort: 443, server: v + ":443", first: s.clock.date, facts: f)
        }
        let alerts = Self.pollingPasses(20, s, vendors: vendors)
        let a = try #require(alerts.first { $0.detector == .relay }, "\(alerts.map(\.summary))")
        #expect(a.summary.contains("edge-3.vendor.example (198.18.1.5, 198.18.1.6, 198.18.1.7)") && a.summary.contains("polling"), "\(a.summary)")
        #expect(a.evidence.filter { $0.name == "vendor" }.map(\.value) == vendors)
        #expect(a.timeToDetect <= 30)
    }

    /// Two containers sharing one network namespace (a pod): a connection no pass saw has no
    /// known owner and is counted for neither, so the sidecar is never blamed for the relay.
    @Test func sharedNamespaceGivesUnseenConnectionsToNoOne() throws {
        let (s, proc) = try Self.setup("c5", ns: 4026540005)
        let sidecar = String(repeating: "d6", count: 32)
        try proc.add(pid: 701, comm: "envoy", cgroup: "/docker/\(sidecar)", cmdline: ["envoy"], exe: Samples.elf(["plain"]), netns: Int(s.ns))
        let alerts = Self.pollingPasses(16, s, vendors: ["198.18.1.5"])
        #expect(!alerts.contains { $0.detector == .relay }, "\(alerts.map { "\($0.container.id.prefix(4)) \($0.summary)" })")
    }

    @Test func serviceNamesAndHeartbeats() throws {
        let (s, proc) = try Self.setup("c3", ns: 4026540003)
        _ = proc
        var r = Recorder()
        r.open(1, local: 40001, remote: "198.18.1.6", port: 443)
        var facts = SessionFacts()
        facts.protocolName = .tls
        facts.sni = "metrics.example.net"
        facts.heartbeat = Heartbeat(messages: 12, periodSeconds: 5, jitter: 0.01, meanMessageBytes: 140, seconds: 55)
        let session = LiveSession(client: "10.0.0.2", clientPort: 40001, serverPort: 443, server: "198.18.1.6:443",
                                  first: s.clock.date.addingTimeInterval(-60), facts: facts)
        s.sessions.byNamespace[s.ns] = [session]
        var alerts: [Alert] = []
        for _ in 0..<3 {
            r.traffic(1, tx: 300, rx: 200, replies: 1)
            s.sockets.byNetns[s.ns] = Array(r.sockets.values)
            alerts += s.w.poll()
            s.clock.date += 2
        }
        #expect(alerts.isEmpty, "a heartbeat to a name no rule knows is no alert")
        #expect(s.w.telemetry[s.cid]?.traits?.contains { $0.name == "heartbeat" && $0.summary.contains("every 5.0 s") } == true)
        // The same heartbeat with a DePIN service's SNI: high.
        var grass = session
        grass.facts.sni = "proxy.wynd.network"
        s.sessions.byNamespace[s.ns] = [grass]
        alerts += s.w.poll()
        let a = try #require(alerts.first { $0.detector == .bandwidthService })
        #expect(a.severity == .high && a.family == "grass" && a.technique == "T1496.002")
        #expect(a.summary.contains("TLS server name proxy.wynd.network") && a.summary.contains("heartbeat"), "\(a.summary)")
    }

    @Test func aDNSQuestionAloneIsMedium() throws {
        let (s, proc) = try Self.setup("c4", ns: 4026540004)
        _ = proc
        var r = Recorder()
        r.open(1, local: 40001, remote: "198.18.1.6", port: 443)
        s.sessions.byNamespace[s.ns] = []
        s.sessions.questions[s.ns] = ["example.org", "api.pawns.app"]
        var alerts: [Alert] = []
        for _ in 0..<3 {
            r.traffic(1, tx: 300, rx: 200, replies: 1)
            s.sockets.byNetns[s.ns] = Array(r.sockets.values)
            alerts += s.w.poll()
            s.clock.date += 2
        }
        let a = try #require(alerts.first { $0.detector == .bandwidthService })
        #expect(a.severity == .medium && a.family == "iproyal-pawns")
        #expect(a.summary.contains("DNS question for api.pawns.app"))
        #expect(a.detectedAt == Date(timeIntervalSince1970: 2_000_000_002), "a bare contact waits one pass")
    }

    /// A new container's connection can show up in the pass that read its process before the
    /// process exec'd its program: the contact waits a pass, and the process detector, which
    /// reads the program then, corroborates it.
    @Test func aBareContactWaitsAPassForItsProcess() throws {
        let (s, proc) = try Self.setup("c5", ns: 4026540005)
        var facts = SessionFacts()
        facts.protocolName = .tls
        facts.sni = "proxy.wynd.network"
        s.sessions.byNamespace[s.ns] = [LiveSession(client: "10.0.0.2", clientPort: 40001, serverPort: 443, server: "198.18.1.6:443",
                                                    first: s.clock.date, facts: facts)]
        var r = Recorder()
        r.open(1, local: 40001, remote: "198.18.1.6", port: 443)
        r.traffic(1, tx: 300, rx: 200, replies: 1)
        s.sockets.byNetns[s.ns] = Array(r.sockets.values)
        #expect(s.w.poll().isEmpty, "the first pass only notes the contact")
        // The process exec'd the node program (its command line names the service).
        _ = try proc.dir.file("proc/700/stat", Array("700 (grass) S 1 700 700 0 -1 0 0 0 0 0 600 20 0 0 20 0 1 0 90000 1000 100 0".utf8))
        _ = try proc.dir.file("proc/700/cmdline", Array("/app/grass\0--server\0proxy.wynd.network\0".utf8))
        let program = try proc.dir.file("bins/700-grass", Samples.elf(["plain"]), mode: 0o755)
        try FileManager.default.removeItem(atPath: proc.root + "/700/exe")
        try FileManager.default.createSymbolicLink(atPath: proc.root + "/700/exe", withDestinationPath: program)
        s.clock.date += 2
        r.traffic(1, tx: 300, rx: 200, replies: 1)
        s.sockets.byNetns[s.ns] = Array(r.sockets.values)
        let alerts = s.w.poll()
        let process = try #require(alerts.first { $0.detector == .minerProcess }, "\(alerts.map(\.summary))")
        #expect(process.family == "grass")
        let a = try #require(alerts.first { $0.detector == .bandwidthService })
        #expect(a.severity == .high && a.summary.contains("miner-process alert"), "\(a.summary)")
    }
}
