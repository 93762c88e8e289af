import Foundation
import MinewatchCore
import MinewatchHistory
import MinewatchModel
import MinewatchServer
import MinewatchSinks
import Testing
import TestSupport

/// The history database: what the sink writes the reader gets back (alerts with evidence,
/// samples, minute roll-ups, metadata, silenced alerts), retention by age and by size, and the
/// dashboard's API over it.
@Suite struct HistoryTests {
    static let t0 = Date(timeIntervalSince1970: 1_796_119_980)  // a minute boundary
    static func container(_ id: String, name: String? = nil) -> Alert.Container {
        Alert.Container(id: id, name: name, image: "docker.io/library/busybox:1", runtime: "podman",
                        k8s: KubernetesMetadata(namespace: "shop", pod: "\(name ?? "p")-0", container: name), labels: ["app": name ?? "x"])
    }
    static func sample(_ c: Alert.Container, at t: Date, cpu: Double, up: Double) -> ContainerTelemetry {
        var s = ContainerTelemetry(time: t, container: c, processes: 1, outboundConnections: 2, inboundConnections: 1, listeningPorts: [],
                                   connections: ["tcp 198.18.1.5:443 out", "tcp 198.18.1.6:80 out"], hostNetwork: false)
        s.cpuCores = cpu
        s.cpuShare = cpu / 2
        s.memoryBytes = 10 << 20
        s.outboundTxBytesPerSecond = up
        s.outboundRxBytesPerSecond = up / 100
        return s
    }
    static func alert(_ c: Alert.Container, at t: Date, detector: DetectorID = .bandwidthMiner) -> Alert {
        Alert(time: t, container: c, detector: detector, severity: .high, family: "packetcrypt", summary: "uploads 600 kB/s to 2 pools",
              evidence: [Evidence(kind: .pool, name: "destination", value: "198.18.1.200 (300 kB/s)")], metrics: ["ratio": 800],
              pid: 42, exe: "/usr/local/bin/svc", startedAt: t.addingTimeInterval(-22), detectedAt: t, timeToDetect: 22, technique: "T1496.002")
    }

    @Test func whatTheSinkWritesTheReaderGetsBack() throws {
        let dir = try TempDir("history")
        defer { dir.cleanup() }
        let path = dir.path + "/h.db"
        let store = try HistoryStore(path: path)
        // The sink's clock is the end of the three minutes below: retention judges the samples by
        // it, not by the wall clock (with which a fixed t0 aged out of the 6 h sample retention).
        let q = SinkQueue(HistorySink(store: store, clock: FixedClock(date: Self.t0.addingTimeInterval(180))), capacity: 10_000)
        let miner = Self.container(String(repeating: "a1", count: 32), name: "miner")
        let web = Self.container(String(repeating: "b2", count: 32), name: "web")
        // Three minutes of 2 s passes; the miner alerts in the second minute.
        for i in 0..<90 {
            let t = Self.t0.addingTimeInterval(Double(i) * 2)
            q.enqueue(.telemetry([Self.sample(miner, at: t, cpu: 0.05, up: 600_000), Self.sample(web, at: t, cpu: 1.5, up: 2_000)], time: t))
            if i == 40 { q.enqueue(.alert(Self.alert(miner, at: t))) }
            if i == 50 { q.enqueue(.silenced(Self.alert(web, at: t, detector: .poolContact), exception: "web-3333")) }
        }
        q.close(timeout: 20)
        #expect(q.stats.failed == 0 && q.stats.dropped == 0, "\(q.stats)")
        let r = try HistoryReader(path: path)
        #expect(try r.integrityCheck() == "ok")
        let counts = try r.counts()
        #expect(counts["samples"] == 180 && counts["alerts"] == 1 && counts["silenced"] == 1 && counts["containers"] == 2, "\(counts)")
        #expect(counts["minutes"] == 6, "3 minutes x 2 containers: \(counts)")
        let alerts = try r.alerts(since: Self.t0, container: miner.id)
        #expect(alerts.count == 1 && alerts.first?.evidence.first?.value == "198.18.1.200 (300 kB/s)" && alerts.first?.family == "packetcrypt")
        #expect(try r.alerts(since: Self.t0.addingTimeInterval(3600)).isEmpty)
        // Found by id prefix, name, pod or Kubernetes container name.
        for ref in ["a1a1a1", "miner", "miner-0"] { #expect(try r.containers(matching: ref).first?.id == miner.id, "\(ref)") }
        let c = try #require(try r.containers(matching: "miner").first)
        #expect(c.image == "docker.io/library/busybox:1" && c.k8s?.namespace == "shop" && c.labels == ["app": "miner"])
        let perPass = try r.series(container: miner.id, since: Self.t0)
        #expect(perPass.count == 90 && perPass.first?.uploadBytesPerSecond == 600_000 && perPass.first?.connections == 3)
        let minutes = try r.series(container: web.id, since: Self.t0, perMinute: true)
        #expect(minutes.count == 3)
        #expect(minutes.allSatisfy { abs(($0.cpuCores ?? 0) - 1.5) < 1e-9 && $0.memoryBytes == 10 << 20 })
        #expect(minutes.first?.destinations == ["198.18.1.5:443 out", "198.18.1.6:80 out"])
        #expect(try r.silenced(since: Self.t0).map(\.exception) == ["web-3333"])
    }

    @Test func retentionByAgeAndBySize() throws {
        let dir = try TempDir("retention")
        defer { dir.cleanup() }
        let path = dir.path + "/h.db"
        let store = try HistoryStore(path: path, limits: .init(retention: 3600, samplesRetention: 600, maxBytes: 2 << 20))
        let c = Self.container(String(repeating: "c3", count: 32), name: "busy")
        // Two hours of samples, written in batches of one minute.
        for minute in 0..<120 {
            var b = HistoryStore.Batch()
            for s in 0..<30 { b.samples.append(Self.sample(c, at: Self.t0.addingTimeInterval(Double(minute * 60 + s * 2)), cpu: 0.1, up: 1000)) }
            b.minutes.append(.init(containerID: c.id, minute: Int64(Self.t0.timeIntervalSince1970 / 60) + Int64(minute), samples: 30, cpuCores: 0.1,
                                   cpuCoresMax: 0.1, cpuShare: 0.05, memoryBytesMax: 1, uploadBps: 1000, downloadBps: 10, connectionsMax: 3, destinations: []))
            if minute == 5 || minute == 110 { b.alerts.append(Self.alert(c, at: Self.t0.addingTimeInterval(Double(minute * 60)))) }
            try store.write(b)
        }
        let end = Self.t0.addingTimeInterval(120 * 60)
        try store.enforceRetention(now: end)
        let r = try HistoryReader(path: path)
        let oldestSample = try r.series(container: c.id, since: .distantPast).first { $0.connections == 3 && $0.time >= end.addingTimeInterval(-700) }
        #expect(oldestSample != nil)
        let perPass = try r.series(container: c.id, since: .distantPast)
        #expect(perPass.allSatisfy { $0.time >= end.addingTimeInterval(-3600) }, "nothing older than the retention")
        #expect(try r.alerts().count == 1, "the alert of the first minute is past its age")
        #expect(store.bytesOnDisk <= 2 << 20, "\(store.bytesOnDisk) bytes")
        #expect(try r.integrityCheck() == "ok")

        // Over its size: the oldest rows go until it fits.
        let small = try HistoryStore(path: dir.path + "/small.db", limits: .init(retention: 86400 * 30, samplesRetention: 86400 * 30, maxBytes: 1 << 20))
        for minute in 0..<200 {
            var b = HistoryStore.Batch()
            for s in 0..<30 { b.samples.append(Self.sample(c, at: Self.t0.addingTimeInterval(Double(minute * 60 + s * 2)), cpu: 0.1, up: 1000)) }
            try small.write(b)
            if minute % 20 == 19 { try small.enforceRetention(now: Self.t0.addingTimeInterval(Double(minute * 60))) }
        }
        try small.enforceRetention(now: Self.t0.addingTimeInterval(200 * 60))
        #expect(small.bytesOnDisk <= 1 << 20, "\(small.bytesOnDisk) bytes")
        let kept = try HistoryReader(path: dir.path + "/small.db").series(container: c.id, since: .distantPast)
        #expect(!kept.isEmpty && kept.last?.time == Self.t0.addingTimeInterval(Double(199 * 60 + 58)), "the newest are kept")
    }

    @Test func readersSeeCommittedBatchesWhileTheWriterWrites() throws {
        let dir = try TempDir("concurrent")
        defer { dir.cleanup() }
        let path = dir.path + "/h.db"
        let store = try HistoryStore(path: path)
        let c = Self.container(String(repeating: "d4", count: 32))
        var b = HistoryStore.Batch()
        b.samples = [Self.sample(c, at: Self.t0, cpu: 1, up: 1)]
        try store.write(b)
        let r = try HistoryReader(path: path)
        #expect(try r.counts()["samples"] == 1)
        try store.write(b)
        #expect(try r.counts()["samples"] == 2)
        #expect(throws: MinewatchError.self) { try HistoryReader(path: dir.path + "/missing.db") }
        try Data("not a database at all, just text".utf8).write(to: URL(fileURLWithPath: dir.path + "/bad.db"))
        #expect(throws: MinewatchError.self) { try HistoryReader(path: dir.path + "/bad.db") }
    }

    @Test func dashboardAPIOverTheHistory() async throws {
        let dir = try TempDir("dashapi")
        defer { dir.cleanup() }
        let path = dir.path + "/h.db"
        let store = try HistoryStore(path: path)
        let c = Self.container(String(repeating: "e5", count: 32), name: "proxy")
        var b = HistoryStore.Batch()
        let now = Date()
        b.samples = (0..<10).map { Self.sample(c, at: now.addingTimeInterval(Double($0 - 10) * 2), cpu: 0.02, up: 250_000) }
        b.alerts = [Self.alert(c, at: now.addingTimeInterval(-4), detector: .relay)]
        try store.write(b)
        let state = DashboardState(hostname: "node-1")
        state.update(telemetry: [Self.sample(c, at: now, cpu: 0.02, up: 250_000)], alerts: b.alerts,
                     exceptions: [.init(name: "egress", reason: "our proxy", source: "m.yaml:9", hits: 3)], at: now)
        let reader = try HistoryReader(path: path)
        let routes = Dictionary(uniqueKeysWithValues: DashboardRoutes.routes(state: state, history: { reader }).map { ($0.path, $0) })
        func get(_ path: String, _ params: [String: String] = [:], _ query: [String: String] = [:]) async throws -> (Int, [String: Any]) {
            let r = await try #require(routes[path]).handler(.init(parameters: params, query: query))
            return (r.status, (try? JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any]) ?? [:])
        }
        let (s1, list) = try await get("/api/containers")
        let first = (list["containers"] as? [[String: Any]])?.first
        #expect(s1 == 200 && first?["id"] as? String == c.id && first?["uploadBytesPerSecond"] as? Double == 250_000)
        #expect((first?["alerts"] as? [[String: Any]])?.first?["detector"] as? String == "relay")
        let (s2, series) = try await get("/api/containers/:id/series", ["id": "proxy"], ["since": "1h"])
        #expect(s2 == 200 && (series["samples"] as? [Any])?.count == 10 && (series["alerts"] as? [Any])?.count == 1, "\(series)")
        #expect(try await get("/api/containers/:id/series", ["id": "nothing"]).0 == 404)
        #expect(try await get("/api/containers/:id/series", ["id": "proxy"], ["since": "soon"]).0 == 400)
        for bad in ["nan", "inf", "-inf", "1e300", "99999999999999999999"] {
            #expect(try await get("/api/containers/:id/series", ["id": "proxy"], ["since": bad]).0 == 400, "since=\(bad)")
            #expect(try await get("/api/alerts", [:], ["since": bad]).0 == 400, "since=\(bad)")
        }
        let (s3, alerts) = try await get("/api/alerts", [:], ["since": "24h", "container": "proxy"])
        #expect(s3 == 200 && (alerts["alerts"] as? [Any])?.count == 1)
        let ex = await try #require(routes["/api/exceptions"]).handler(.init())
        #expect(String(decoding: ex.body, as: UTF8.self).contains("\"hits\":3"))
        let page = await try #require(routes["/"]).handler(.init())
        #expect(page.contentType.hasPrefix("text/html") && String(decoding: page.body, as: UTF8.self).contains("<script src=\"/dashboard.js\">"))
        #expect(!String(decoding: page.body, as: UTF8.self).contains("http"), "no external asset: \(String(decoding: page.body, as: UTF8.self).ranges(of: "http").count)")
        #expect(DashboardRoutes.since("30m", default: 0, now: now) == now.addingTimeInterval(-1800))
        #expect(DashboardRoutes.since("1796120000", default: 0) == Date(timeIntervalSince1970: 1_796_120_000))
    }
}
