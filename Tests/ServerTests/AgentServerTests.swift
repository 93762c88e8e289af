import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import MinewatchModel
import MinewatchServer
import MinewatchSinks
import Testing
import TestSupport

/// The agent's HTTP endpoint: metrics behind a token, the dashboard's page and API, DNS rebinding.
@Suite(.serialized) struct MetricsEndpointTests {
    func get(_ port: Int, _ path: String, token: String?) throws -> (Int, String) {
        var req = URLRequest(url: try #require(URL(string: "http://127.0.0.1:\(port)\(path)")), timeoutInterval: 10)
        if let token { req.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        let done = DispatchSemaphore(value: 0)
        let box = Box()
        URLSession.shared.dataTask(with: req) { d, r, _ in
            box.set((r as? HTTPURLResponse)?.statusCode ?? 0, String(decoding: d ?? Data(), as: UTF8.self))
            done.signal()
        }.resume()
        _ = done.wait(timeout: .now() + 15)
        return box.get()
    }

    final class Box: @unchecked Sendable {
        let lock = NSLock()
        var v: (Int, String) = (0, "")
        func set(_ a: Int, _ b: String) { lock.lock(); v = (a, b); lock.unlock() }
        func get() -> (Int, String) { lock.lock(); defer { lock.unlock() }; return v }
    }

    @Test func tokenIsRequiredAndMetricsAreServed() throws {
        let m = AgentMetrics()
        m.record(passSeconds: 0.01, containers: 3, alerts: [SampleAlerts.xmrig()], silenced: [(SampleAlerts.xmrig(), "allowed")],
                 exceptionHits: ["allowed": 1], sinks: [SinkStats(name: "stdout", written: 5, dropped: 2, failed: 0, queued: 1)], telemetry: [])
        let token = "s3cret-s3cret-s3cret"
        let server = AgentServer(host: "127.0.0.1", port: 0, token: token, routes: [.fixed("/metrics") { ("text/plain; version=0.0.4", m.exposition()) }])
        let port = try server.start()
        defer { server.stop() }
        #expect(try get(port, "/metrics", token: nil).0 == 401)
        #expect(try get(port, "/metrics", token: "wrong-wrong-wrong-wrong").0 == 401)
        let (status, body) = try get(port, "/metrics", token: token)
        #expect(status == 200)
        for line in [#"minewatch_alerts_total{detector="mining-protocol",severity="high",family="xmrig"} 1"#,
                     #"minewatch_alerts_silenced_total{detector="mining-protocol",exception="allowed"} 1"#,
                     #"minewatch_exception_hits{exception="allowed"} 1"#, "minewatch_containers_watched 3",
                     #"minewatch_sink_dropped_total{sink="stdout"} 2"#, #"minewatch_sink_queue_length{sink="stdout"} 1"#,
                     "minewatch_pass_duration_seconds_count 1", "minewatch_passes_total 1"] {
            #expect(body.contains(line), "\(line) not in:\n\(body)")
        }
        #expect(body.contains("minewatch_agent_resident_memory_bytes") && body.contains("minewatch_agent_cpu_seconds_total"))
        #expect(server.refused == 2)
    }

    @Test func dashboardPageIsPublicItsAPINeedsTheToken() throws {
        let token = "s3cret-s3cret-s3cret"
        let state = DashboardState(hostname: "n")
        let server = AgentServer(host: "127.0.0.1", port: 0, token: token, routes: DashboardRoutes.routes(state: state, history: nil))
        let port = try server.start()
        defer { server.stop() }
        #expect(try get(port, "/", token: nil).0 == 200, "a browser cannot send a token for the page itself")
        #expect(try get(port, "/dashboard.js", token: nil).0 == 200)
        #expect(try get(port, "/api/containers", token: nil).0 == 401)
        #expect(try get(port, "/api/containers", token: token).0 == 200)
    }

    @Test func loopbackWithoutATokenRefusesOtherHostNames() throws {
        let server = AgentServer(host: "127.0.0.1", port: 0, token: nil, routes: [.fixed("/metrics") { ("text/plain", Array("ok\n".utf8)) }])
        let port = try server.start()
        defer { server.stop() }
        func curl(_ extra: [String]) throws -> String {
            String(decoding: try TestSupport.run(["curl", "-s", "-m", "10", "-o", "/dev/null", "-w", "%{http_code}"] + extra + ["http://127.0.0.1:\(port)/metrics"]).out, as: UTF8.self)
        }
        #expect(try curl([]) == "200")
        #expect(try curl(["-H", "Host: localhost:\(port)"]) == "200")
        #expect(try curl(["-H", "Host: attacker.example:\(port)"]) == "403", "DNS rebinding")
        #expect(try curl(["-H", "Sec-Fetch-Site: cross-site"]) == "403")
    }
}
