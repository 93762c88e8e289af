import Foundation
import MinewatchCore
import MinewatchHost
import MinewatchNetwork
import MinewatchModel
import MinewatchRuntime
import MinewatchSignatures
import MinewatchSinks
import Synchronization
import Testing
import TestSupport

/// The seams of the watch pipeline: the container store evicts, the mining-protocol detector
/// reads a session source (here a test double), sinks drop and count when they cannot keep up,
/// responses come after the alert was written, CPU demand counts run-queue wait and throttling.
@Suite struct PipelineTests {
    static let rules = CompiledRules(BundledRules.load().0)

    @Test func stateIsEvictedWhenAContainerIsGone() throws {
        let proc = try FakeProc()
        let cid = String(repeating: "4c", count: 32)
        try proc.add(pid: 610, comm: "kworker", cgroup: "/docker/\(cid)", cmdline: ["kworker"], exe: Samples.elf(Samples.xmrigStrings))
        let clock = StepClock(Date(timeIntervalSince1970: 3_000_000))
        let w = Watcher(rules: Self.rules, proc: ProcfsReader(root: proc.root), clock: clock)
        w.settings.scratchPrefixes = []
        #expect(w.poll().map(\.detector) == [.minerProcess])
        #expect(w.store[cid]?.alerted == [.minerProcess])
        try FileManager.default.removeItem(atPath: "\(proc.root)/610")
        clock.date += 5
        #expect(w.poll().isEmpty)
        #expect(w.store[cid] != nil, "kept for a moment after its processes are gone")
        clock.date += 11
        _ = w.poll()
        #expect(w.store[cid] == nil && w.store.states.isEmpty && w.store.evicted == 1)
        #expect(w.telemetry.isEmpty)
    }

    final class FakeSessions: SessionSource {
        var byNamespace: [UInt64: [LiveSession]] = [:]
        var drops = 0
        var synced: [UInt64: Int32] = [:]
        func sync(_ wanted: [UInt64: Int32]) { synced = wanted }
        func sessions(_ ns: UInt64) -> [LiveSession] { byNamespace[ns] ?? [] }
        func status(_ ns: UInt64) -> LiveCapture.RingStatus? { byNamespace[ns] == nil ? nil : .init(packets: 100, drops: drops) }
    }

    /// One container (pid `pid`, namespace `ns`) watched with packet sessions from a fake source.
    static func sessionPipeline(cid: String, pid: Int32, ns: UInt64) throws -> (FakeProc, Watcher, FakeSessions) {
        let proc = try FakeProc()
        try proc.add(pid: pid, comm: "svc", cgroup: "/docker/\(cid)", cmdline: ["svc"], exe: Samples.elf(["plain"]), netns: Int(ns))
        let w = Watcher(rules: Self.rules, proc: ProcfsReader(root: proc.root), clock: FixedClock(date: Date(timeIntervalSince1970: 3_100_000)),
                        sockets: RecordedSockets())
        w.settings.scratchPrefixes = []
        let source = FakeSessions()
        w.capture = source
        return (proc, w, source)
    }

    @Test func miningProtocolReadsTheSessionSource() throws {
        let cid = String(repeating: "5d", count: 32)
        let ns: UInt64 = 4026539001
        let (proc, w, source) = try Self.sessionPipeline(cid: cid, pid: 620, ns: ns)
        defer { _ = proc }
        #expect(w.poll().isEmpty, "no session, no alert")
        var facts = SessionFacts()
        facts.protocolName = .stratumMonero
        facts.login = "44AFFq5kSiGBoZ4NMDwYtN18obc8AemS33DBLWs3H7otXft3XjrpDtQGv7SqSsaBYBb98uNbr2VBBEt7f2wfn3RVGQBEP3A"
        facts.agent = "XMRig/6.21.0"
        facts.jobs = 3
        source.byNamespace[ns] = [LiveSession(client: "198.18.1.5", clientPort: 41000, serverPort: 3333, server: "198.18.1.2:3333",
                                              first: Date(timeIntervalSince1970: 3_099_990), facts: facts)]
        source.drops = 7
        let alerts = w.poll()
        let a = try #require(alerts.first { $0.detector == .miningProtocol })
        #expect(a.severity == .critical && a.family == "xmrig")
        #expect(a.evidence.contains { $0.kind == .wallet })
        #expect(a.evidence.contains { $0.value.contains("dropped 7 packets") }, "\(a.evidence)")
        #expect(w.telemetry[cid]?.captureDrops == 7)
        #expect(w.poll().isEmpty, "one alert per container per detector")
    }

    /// A miner whose agent string is rebranded and whose login is no wallet is still named by
    /// what its pool's jobs say: the RandomX algorithm, the Monero family.
    @Test func rebrandedStratumIsNamedFromTheWire() throws {
        let cid = String(repeating: "5e", count: 32)
        let ns: UInt64 = 4026539004
        let (proc, w, source) = try Self.sessionPipeline(cid: cid, pid: 623, ns: ns)
        defer { _ = proc }
        var facts = SessionFacts()
        facts.protocolName = .stratumMonero
        facts.login = "rig-07"
        facts.agent = "SysMonitor/2.1 (Linux x86_64)"
        facts.jobs = 2
        facts.submits = 1
        facts.algorithm = "rx/0"
        source.byNamespace[ns] = [LiveSession(client: "198.18.1.5", clientPort: 41002, serverPort: 443, server: "198.18.1.2:443",
                                              first: Date(timeIntervalSince1970: 3_099_990), facts: facts)]
        let a = try #require(w.poll().first { $0.detector == .miningProtocol })
        #expect(a.severity == .critical && a.family == "monero", "\(a.family ?? "none")")
        #expect(a.evidence.contains { $0.name == "family from the wire" && $0.value.contains("RandomX") }, "\(a.evidence)")
    }

    /// An HTTP Host header carries a port (`Host: pool.supportxmr.com:3333`): the pool domain is
    /// still recognised, as `pcap` recognises it.
    @Test func poolDomainInAHostHeaderWithAPort() throws {
        let ns: UInt64 = 4026539002
        let (proc, w, source) = try Self.sessionPipeline(cid: String(repeating: "6e", count: 32), pid: 621, ns: ns)
        defer { _ = proc }
        var facts = SessionFacts()
        facts.protocolName = .http
        facts.host = "pool.supportxmr.com:3333"
        source.byNamespace[ns] = [LiveSession(client: "198.18.1.5", clientPort: 41001, serverPort: 3333, server: "198.18.1.2:3333",
                                              first: Date(timeIntervalSince1970: 3_099_990), facts: facts)]
        let a = try #require(w.poll().first { $0.detector == .miningProtocol })
        #expect(a.severity == .medium && a.summary.contains("supportxmr.com"), "\(a.summary)")
        #expect(a.technique == "T1496.001")
    }

    /// The severity of watch's alerts is rule data too: a site's rule file raises contact with a
    /// mining-pool port, and the alert carries it.
    @Test func alertSeverityFromRuleData() throws {
        let user = RuleLoader().load(yaml: "version: 1\nverdicts:\n  - id: MW-WATCH-POOL-PORT\n    severity: high\n", file: "site.yaml")
        #expect(user.diagnostics.isEmpty)
        let rules = CompiledRules(BundledRules.load().0.merged(with: user.ruleSet))
        let proc = try FakeProc()
        let cid = String(repeating: "7f", count: 32)
        // Outbound 198.18.1.5:41234 -> 198.18.1.2:3333.
        let tcp = """
          sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
           1: 050112C6:A052 020112C6:0D05 01 00000000:00000000 00:00000000 00000000     0        0 2 1
        """
        try proc.add(pid: 622, comm: "svc", cgroup: "/docker/\(cid)", cmdline: ["svc"], exe: Samples.elf(["plain"]), netns: 4026539003, tcp: tcp)
        let w = Watcher(rules: rules, proc: ProcfsReader(root: proc.root), clock: FixedClock(date: Date()))
        w.settings.scratchPrefixes = []
        let a = try #require(w.poll().first { $0.detector == .poolContact })
        #expect(a.severity == .high && a.technique == "T1496.001")
    }

    /// A sink that blocks until released and remembers what it wrote, in order.
    final class GatedSink: Sink {
        let name = "gated"
        let gate = DispatchSemaphore(value: 0)
        let log = Mutex<[String]>([])
        func write(_ record: WatchRecord) throws(MinewatchError) {
            gate.wait()
            let text: String
            switch record {
            case .alert(let a): text = "alert \(a.detector)"
            case .response(let r): text = "response \(r.response.result)"
            case .telemetry: text = "telemetry"
            case .silenced(let a, let e): text = "silenced \(a.detector) by \(e)"
            case .admission(let e): text = "admission \(e.decision)"
            }
            log.withLock { $0.append(text) }
        }
    }

    @Test func aStuckSinkDropsAndCountsInsteadOfBlocking() throws {
        let sink = GatedSink()
        let q = SinkQueue(sink, capacity: 3)
        let t = Date()
        let alert = Alert(time: t, container: .init(id: "x", name: nil, image: nil, runtime: "podman"), detector: .drift, severity: .medium,
                          family: nil, summary: "s", evidence: [], metrics: [:], pid: 1, exe: nil, startedAt: t, detectedAt: t, timeToDetect: 0)
        var accepted = 0
        for _ in 0..<20 where q.enqueue(.alert(alert)) != nil { accepted += 1 }
        // Records the writer has taken count against the capacity: whenever the writer woke,
        // exactly `capacity` records are accepted and the rest are refused.
        #expect(accepted == 3, "\(accepted)")
        #expect(q.stats.dropped == 20 - accepted)
        for _ in 0..<accepted { sink.gate.signal() }
        q.close(timeout: 10)
        #expect(q.stats.written == accepted && q.stats.queued == 0)
        #expect(sink.log.withLock { $0.count } == accepted)
    }

    /// Records when it was asked to act, with what the sink had written by then.
    final class OrderingActuator: ResponseActuator, Sendable {

        let seen = Mutex<[String]>([])
        let sink: GatedSink
        init(sink: GatedSink) { self.sink = sink }
        func freeze(cgroupPaths: [String: String]) throws(MinewatchError) -> String {
            let written = sink.log.withLock { $0 }
            seen.withLock { $0.append("freeze after \(written)") }
            return "/sys/fs/cgroup/freezer/x/freezer.state"
        }
        func kill(pid: Int32, startTicks: UInt64) throws(MinewatchError) {}
        func stop(containerID: String) throws(MinewatchError) {}
    }

    @Test func responsesComeAfterTheAlertIsWritten() throws {
        let proc = try FakeProc()
        let cid = String(repeating: "6e", count: 32)
        try proc.add(pid: 630, comm: "kworker", cgroup: "/docker/\(cid)", cmdline: ["kworker"], exe: Samples.elf(Samples.xmrigStrings))
        let w = Watcher(rules: Self.rules, proc: ProcfsReader(root: proc.root), clock: FixedClock(date: Date()))
        w.settings.scratchPrefixes = []
        let sink = GatedSink()
        let actuator = OrderingActuator(sink: sink)
        let responder = Responder(action: .freeze, actOn: .high, dryRun: false, actuator: actuator, ownContainer: nil, ownPid: 1)
        let agent = Agent(watcher: w, sinks: [SinkQueue(sink)], responder: responder)
        #expect(agent.pass().count == 1)
        // Nothing is frozen while the alert waits in the (stuck) sink.
        usleep(200_000)
        #expect(actuator.seen.withLock { $0.isEmpty })
        for _ in 0..<10 { sink.gate.signal() }
        agent.finish(timeout: 10)
        let seen = actuator.seen.withLock { $0 }
        #expect(seen.count == 1 && seen.first?.hasPrefix("freeze after [\"alert miner-process\"") == true, "\(seen)")
        let log = sink.log.withLock { $0 }
        #expect(log.first == "alert miner-process" && log.contains("response frozen"), "\(log)")
        #expect(log.firstIndex(of: "response frozen") ?? 0 > log.firstIndex(of: "alert miner-process") ?? 99)
    }

    @Test func cpuDemandCountsRunQueueWaitAndThrottling() {
        let d = CPUDetector(threshold: 0.9, window: 20, hostCores: 2)
        let t0 = Date(timeIntervalSince1970: 1_000_000)
        func samples(used: Double, wait: Double, throttledShare: Double? = nil) -> [CPUDetector.Sample] {
            (0...5).map { i in
                let t = Double(i) * 5
                return CPUDetector.Sample(time: t0.addingTimeInterval(t), cpuNanos: UInt64(used * t * 1e9), limitCores: 0.5,
                                          waitNanos: UInt64(wait * t * 1e9), periods: throttledShare.map { _ in UInt64(i * 50) },
                                          throttledPeriods: throttledShare.map { UInt64(Double(i * 50) * $0) })
            }
        }
        // A miner on a contended host: it gets 0.3 of its 0.5 cores and waits to run for 0.2 more.
        let contended = d.sustained(samples(used: 0.3, wait: 0.2))
        #expect(contended != nil && (contended?.contended ?? 0) == 5)
        #expect(abs((contended?.demand ?? 0) - 0.5) < 0.01)
        // A build waiting on the disk: it neither runs nor waits to run.
        #expect(d.sustained(samples(used: 0.3, wait: 0.01)) == nil)
        // Throttled in most CFS periods: it wanted more than its quota.
        #expect(d.sustained(samples(used: 0.4, wait: 0, throttledShare: 0.8)) != nil)
        #expect(d.sustained(samples(used: 0.4, wait: 0, throttledShare: 0.1)) == nil)
    }

    @Test func durationsAsUsersTypeThem() {
        #expect(Durations.parse("2s") == 2 && Durations.parse("500ms") == 0.5 && Durations.parse("1m") == 60)
        #expect(Durations.parse("1h30m") == 5400 && Durations.parse("1.5s") == 1.5 && Durations.parse("2") == 2)
        #expect(Durations.parse("5x") == nil && Durations.parse("") == nil && Durations.parse("s") == nil && Durations.parse("1m5q") == nil)
        #expect(Durations.format(2) == "2s" && Durations.format(0.5) == "500ms" && Durations.format(90) == "1m30s" && Durations.format(3600) == "1h")
    }
}
