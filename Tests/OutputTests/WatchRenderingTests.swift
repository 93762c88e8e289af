import Foundation
import MinewatchModel
import MinewatchCore
import MinewatchOutput

import Testing

@Suite struct WatchRenderingTests {
    let t = Date(timeIntervalSince1970: 1_900_000_000)

    func alert(response: ResponseOutcome? = nil) -> Alert {
        Alert(time: t, container: .init(id: String(repeating: "ab", count: 32), name: "web-1", image: "nginx:1", runtime: "docker"),
              detector: .bandwidthMiner, severity: .high, family: nil, summary: "uploads 1.0 MB/s", evidence: [],
              metrics: ["ratio": 500], pid: 7, exe: "/svc", startedAt: t, detectedAt: t, timeToDetect: 22, response: response)
    }

    @Test func jsonLinesCarryEveryField() throws {
        let line = WatchRenderer.jsonLine(alert(response: ResponseOutcome(action: "freeze", dryRun: false, target: "cgroup x", ok: true, result: "frozen")))
        #expect(line.hasSuffix("\n") && !line.dropLast().contains("\n"))
        let o = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        for k in ["time", "container", "detector", "severity", "family", "summary", "evidence", "metrics", "startedAt", "detectedAt", "timeToDetect", "response"] {
            #expect(o.keys.contains(k), "missing \(k)")
        }
        #expect(o["family"] is NSNull)
        #expect((o["response"] as? [String: Any])?["result"] as? String == "frozen")
        // No response key when only alerting.
        #expect(!WatchRenderer.jsonLine(alert()).contains("\"response\""))
    }

    @Test func tableAndLiveScreen() {
        let line = WatchRenderer.tableLine(alert(response: ResponseOutcome(action: "kill", dryRun: true, target: "pid 7 (svc)", ok: true, result: "would kill pid 7 with SIGKILL")))
        #expect(line.contains("HIGH") && line.contains("bandwidth-miner") && line.contains("web-1") && line.contains("uploads 1.0 MB/s"))
        #expect(line.contains("-> dry run: kill pid 7 (svc): would kill pid 7"))
        let tel = ContainerTelemetry(time: t, container: .init(id: "abc", name: "web-1", image: "nginx:1", runtime: "docker"), processes: 3,
                                     cpuCores: 0.25, cpuLimitCores: 2, cpuShare: 0.125, memoryBytes: 50_000_000,
                                     rxBytesPerSecond: 1000, txBytesPerSecond: 2_500_000, rxPacketsPerSecond: 10, txPacketsPerSecond: 1800,
                                     outboundTxBytesPerSecond: 0, outboundRxBytesPerSecond: 0, inboundTxBytesPerSecond: 2_400_000,
                                     inboundRxBytesPerSecond: 900, outboundConnections: 0, inboundConnections: 4, listeningPorts: [80],
                                     connections: [], hostNetwork: false)
        let screen = WatchRenderer.screen(telemetry: [tel], alerts: [alert()], interval: 2)
        #expect(screen.contains("1 container, every 2 s, 1 alert"))
        #expect(screen.contains("web-1") && screen.contains("0.25/2.0") && screen.contains("2.5M") && screen.contains("0/4"))
    }
}
