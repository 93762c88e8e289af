import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import MinewatchCore
import MinewatchOutput
import MinewatchModel
import MinewatchServer
import MinewatchSinks
import Testing
import TestSupport

/// The shapes other tools ingest (Falco events for Falcosidekick, OCSF Detection Findings), the
/// HTTP sink's retries, and the metrics endpoint's token.
@Suite struct EventShapeTests {
    static func alert() -> Alert {
        let t = Date(timeIntervalSince1970: 1_796_119_200.123456)
        return Alert(time: t, container: .init(id: String(repeating: "0123456789abcdef", count: 4), name: "web", image: "docker.io/library/nginx:1.25",
                                               runtime: "kubernetes", k8s: KubernetesMetadata(namespace: "shop", pod: "web-7d9f", container: "nginx"),
                                               labels: ["app": "web"]),
                     detector: .miningProtocol, severity: .high, family: "xmrig", summary: "Stratum login to pool.example.org:3333",
                     evidence: [Evidence(kind: .pool, name: "pool", value: "198.51.100.7:3333"), Evidence(kind: .attribute, name: "agent", value: "XMRig/6.21.0")],
                     metrics: ["logins": 1], pid: 4242, exe: "/usr/local/bin/kworkerds", startedAt: t.addingTimeInterval(-3), detectedAt: t,
                     timeToDetect: 3, technique: "T1496.001")
    }

    @Test func falcoEventHasFalcosidekicksFields() throws {
        let body = EventRenderer.falcoEvent(Self.alert(), hostname: "node-1")
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any])
        #expect(Set(obj.keys) == ["output", "priority", "rule", "time", "output_fields", "source", "tags", "hostname"])
        #expect(obj["priority"] as? String == "Error")
        #expect(obj["source"] as? String == "minewatch")
        #expect(obj["rule"] as? String == "Mining protocol from container")
        #expect(obj["hostname"] as? String == "node-1")
        let time = try #require(obj["time"] as? String)
        #expect(time.wholeMatch(of: /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z/) != nil, "\(time)")
        #expect(time.hasPrefix("2026-12-01T"))
        let tags = try #require(obj["tags"] as? [String])
        #expect(tags.contains("T1496") && tags.contains("T1496.001") && tags.contains("mitre_impact"))
        let f = try #require(obj["output_fields"] as? [String: Any])
        #expect(f["container.id"] as? String == "0123456789ab")
        #expect(f["container.name"] as? String == "web")
        #expect(f["container.image.repository"] as? String == "docker.io/library/nginx")
        #expect(f["container.image.tag"] as? String == "1.25")
        #expect(f["k8s.ns.name"] as? String == "shop")
        #expect(f["k8s.pod.name"] as? String == "web-7d9f")
        #expect(f["proc.name"] as? String == "kworkerds")
        #expect(f["proc.exepath"] as? String == "/usr/local/bin/kworkerds")
        #expect(f["proc.pid"] as? Int == 4242)
        #expect(f["fd.rip"] as? String == "198.51.100.7")
        #expect(f["fd.rport"] as? Int == 3333)
        // Flat: every value a string or a number.
        #expect(f.values.allSatisfy { $0 is String || $0 is NSNumber })
        #expect((obj["output"] as? String)?.contains("k8s.ns.name=shop") == true)
    }

    @Test func ocsfDetectionFinding() throws {
        let line = EventRenderer.ocsfLine(.alert(Self.alert()), hostname: "node-1", version: "1.0")
        #expect(line.hasSuffix("\n") && line.filter { $0 == "\n" }.count == 1)
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(obj["class_uid"] as? Int == 2004 && obj["category_uid"] as? Int == 2)
        #expect(obj["activity_id"] as? Int == 1 && obj["type_uid"] as? Int == 200401)
        #expect(obj["severity_id"] as? Int == 4)
        #expect(obj["time"] as? Int == 1_796_119_200_123)
        let info = try #require(obj["finding_info"] as? [String: Any])
        #expect((info["uid"] as? String)?.isEmpty == false && info["title"] as? String == "Mining protocol from container")
        let meta = try #require(obj["metadata"] as? [String: Any])
        #expect((meta["product"] as? [String: Any])?["name"] as? String == "minewatch")
        #expect(meta["version"] as? String != nil)
        let attacks = try #require(obj["attacks"] as? [[String: Any]])
        #expect((attacks.first?["technique"] as? [String: Any])?["uid"] as? String == "T1496")
        #expect((attacks.first?["sub_technique"] as? [String: Any])?["uid"] as? String == "T1496.001")
        #expect((attacks.first?["tactic"] as? [String: Any])?["uid"] as? String == "TA0040")
        // Telemetry and responses are not findings.
        #expect(EventRenderer.ocsfLine(.telemetry([], time: Date()), hostname: "n", version: "1") == "")
    }

    @Test func imageReferences() {
        #expect(EventRenderer.splitImage("registry:5000/team/app:2.1") == ("registry:5000/team/app", "2.1"))
        #expect(EventRenderer.splitImage("registry:5000/team/app") == ("registry:5000/team/app", nil))
        #expect(EventRenderer.splitImage("app@sha256:abcd") == ("app", "sha256:abcd"))
    }
}

/// A tiny HTTP/1.1 receiver on loopback: answers each request with the next status of `statuses`
/// (200 after them) and keeps the bodies.
struct ReceiverError: Error { var errno: Int32 }

final class Receiver: @unchecked Sendable {
    let fd: Int32
    let port: Int
    let lock = NSLock()
    var statuses: [Int]
    var requests: [(head: String, body: [UInt8])] = []

    init(statuses: [Int]) throws {
        self.statuses = statuses
        let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, 4)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0, listen(s, 16) == 0 else { throw ReceiverError(errno: errno) }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(s, $0, &len) } }
        fd = s
        port = Int(UInt16(bigEndian: addr.sin_port))
        Thread { [self] in self.serve() }.start()
    }

    func serve() {
        while true {
            let c = accept(fd, nil, nil)
            if c < 0 { return }
            var data: [UInt8] = []
            var buf = [UInt8](repeating: 0, count: 65536)
            var head = ""
            var body: [UInt8] = []
            while true {
                let n = read(c, &buf, buf.count)
                if n <= 0 { break }
                data += buf[0..<n]
                if let r = data.firstRange(of: Array("\r\n\r\n".utf8)) {
                    head = String(decoding: data[..<r.lowerBound], as: UTF8.self)
                    let len = head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
                        .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
                    if data.count - r.upperBound >= len { body = Array(data[r.upperBound..<(r.upperBound + len)]); break }
                }
            }
            lock.lock()
            requests.append((head, body))
            let status = statuses.isEmpty ? 200 : statuses.removeFirst()
            lock.unlock()
            let reply = "HTTP/1.1 \(status) X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            _ = reply.withCString { write(c, $0, strlen($0)) }
            close(c)
        }
    }

    var received: [(head: String, body: [UInt8])] { lock.lock(); defer { lock.unlock() }; return requests }
    func stop() { shutdown(fd, Int32(SHUT_RDWR)); close(fd) }
}

@Suite(.serialized) struct HTTPSinkTests {
    @Test func retriesWithBackoffThenDelivers() throws {
        let rx = try Receiver(statuses: [503, 503])
        defer { rx.stop() }
        let sink = HTTPSink(name: "falcosidekick", url: try #require(URL(string: "http://127.0.0.1:\(rx.port)/")), retries: 3, token: "t0ken-t0ken-t0ken",
                            backoff: { _ in 0.01 }) { EventRenderer.falcoBody($0, hostname: "n") }
        let q = SinkQueue(sink, capacity: 10)
        q.enqueue(.alert(EventShapeTests.alert()))
        q.enqueue(.telemetry([], time: Date()))
        q.close(timeout: 10)
        let got = rx.received
        #expect(got.count == 3, "two failures, then delivered: \(got.map(\.head))")
        #expect(got.allSatisfy { $0.head.hasPrefix("POST / HTTP/1.1") && $0.head.contains("Content-Type: application/json") && $0.head.contains("Authorization: Bearer t0ken-t0ken-t0ken") })
        let obj = try JSONSerialization.jsonObject(with: Data(got.last?.body ?? [])) as? [String: Any]
        #expect(obj?["source"] as? String == "minewatch")
        #expect(q.stats.alertsWritten == 1 && q.stats.failed == 0)
    }

    @Test func givesUpAfterRetriesAndCountsTheFailure() throws {
        let rx = try Receiver(statuses: [500, 500, 500, 500])
        defer { rx.stop() }
        let sink = HTTPSink(name: "x", url: try #require(URL(string: "http://127.0.0.1:\(rx.port)/")), retries: 2, backoff: { _ in 0.01 }) { EventRenderer.falcoBody($0, hostname: "n") }
        let q = SinkQueue(sink, capacity: 10)
        q.enqueue(.alert(EventShapeTests.alert()))
        q.close(timeout: 10)
        #expect(rx.received.count == 3)
        #expect(q.stats.failed == 1 && q.stats.lastError?.contains("receiver answered 500") == true)
    }

    @Test func aClientErrorIsNotRetried() throws {
        let rx = try Receiver(statuses: [400])
        defer { rx.stop() }
        let sink = HTTPSink(name: "x", url: try #require(URL(string: "http://127.0.0.1:\(rx.port)/")), retries: 5, backoff: { _ in 0.01 }) { EventRenderer.falcoBody($0, hostname: "n") }
        let q = SinkQueue(sink, capacity: 10)
        q.enqueue(.alert(EventShapeTests.alert()))
        q.close(timeout: 10)
        #expect(rx.received.count == 1 && q.stats.failed == 1)
    }
}

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
        m.record(passSeconds: 0.01, containers: 3, alerts: [EventShapeTests.alert()], silenced: [(EventShapeTests.alert(), "allowed")],
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
