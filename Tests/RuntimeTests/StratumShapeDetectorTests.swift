import Foundation
import Testing
import MinewatchHost
import MinewatchModel
import MinewatchNetwork
import MinewatchSignatures
@testable import MinewatchRuntime

/// Stratum's shape inside TLS in `watch`: a trait alone, medium with the container at its CPU
/// limit, high with a RandomX or miner alert.
@Suite struct StratumShapeDetectorTests {
    static let rules = BundledRules.load().0

    func pass(cores: Double?, shaped: Bool = true) -> ContainerPass {
        var facts = SessionFacts()
        facts.protocolName = .tls
        facts.sni = "203.0.113.9"
        if shaped {
            facts.jobPushes = JobPushes(pushes: 12, meanPushBytes: 379, pushPeriodSeconds: 3.1, clientMessages: 18, answered: 18, meanClientBytes: 216,
                                        meanAnswerBytes: 101, bytesPerSecond: 278, seconds: 40)
        }
        var snap = ContainerSnapshot(ref: ContainerRef(id: String(repeating: "ab", count: 32), runtime: .podman, cgroupPath: "/"), time: Date(timeIntervalSince1970: 4_000_000),
                                     processes: [])
        snap.cgroup = CgroupStats(cpuNanos: 0, cpuLimitCores: 0.5, memoryBytes: nil)
        snap.sessions = [LiveSession(client: "198.18.1.5", clientPort: 40000, serverPort: 443, server: "198.18.1.2:443", first: snap.time, facts: facts)]
        var p = ContainerPass(snapshot: snap, traffic: nil)
        p.cpuCores = cores
        return p
    }

    @Test func traitThenMediumThenHigh() throws {
        let d = MiningProtocolDetector(rules: Self.rules)
        var state = d.makeState()
        let idle = DetectionContext(now: Date(timeIntervalSince1970: 4_000_000), alerted: [])
        #expect(d.inspect(pass(cores: 0.02), state: &state, context: idle) == nil)
        #expect(d.traits(state).map(\.name) == ["stratum shape"])
        let busy = try #require(d.inspect(pass(cores: 0.49), state: &state, context: idle))
        #expect(busy.severity == .medium && busy.evidence.contains { $0.name == "cpu" })
        let randomx = DetectionContext(now: idle.now, alerted: [.cpuMiner], alertedAtMedium: [.cpuMiner])
        let high = try #require(d.inspect(pass(cores: 0.49), state: &state, context: randomx))
        #expect(high.severity == .high && high.evidence.contains { $0.name == "with" && $0.value == "cpu-miner" })
        // No shape, no verdict, no trait.
        var fresh = d.makeState()
        #expect(d.inspect(pass(cores: 0.49, shaped: false), state: &fresh, context: idle) == nil && d.traits(fresh).isEmpty)
    }
}
