import Foundation
import MinewatchCore
import MinewatchHistory
import MinewatchModel
import Synchronization

/// What the dashboard shows live: the last pass's telemetry, recent alerts and the exceptions
/// in force with their hits. The watch loop updates it once per pass; requests read it.
public final class DashboardState: Sendable {
    public struct ExceptionView: Sendable, Codable, Hashable {
        public var name: String
        public var reason: String
        public var source: String
        public var hits: Int
        public init(name: String, reason: String, source: String, hits: Int) {
            self.name = name
            self.reason = reason
            self.source = source
            self.hits = hits
        }
    }

    struct State {
        var telemetry: [ContainerTelemetry] = []
        var recent: [Alert] = []
        var byContainer: [String: [Alert]] = [:]
        var exceptions: [ExceptionView] = []
        /// The last passes' CPU share, upload and download per container: the plot shows their
        /// mean, because uploads come in bursts and one 2 s pass can be all silence.
        var window: [String: [(cpu: Double?, up: Double?, down: Double?)]] = [:]
        var updated = Date.distantPast
        var passes = 0
    }
    let state = Mutex(State())
    public let hostname: String
    /// Alerts kept in memory (the history keeps them all).
    public let keep: Int

    /// Passes the plot averages over (10: 20 s at the default interval).
    static let windowPasses = 10

    static func mean(_ xs: [Double?]) -> Double? {
        let v = xs.compactMap { $0 }
        return v.isEmpty ? nil : v.reduce(0, +) / Double(v.count)
    }

    public init(hostname: String, keep: Int = 500) {
        self.hostname = hostname
        self.keep = keep
    }

    public func update(telemetry: [ContainerTelemetry], alerts: [Alert], exceptions: [ExceptionView], at time: Date) {
        state.withLock { s in
            s.telemetry = telemetry
            var window: [String: [(cpu: Double?, up: Double?, down: Double?)]] = [:]
            for t in telemetry {
                var w = s.window[t.container.id] ?? []
                w.append((t.cpuShare, t.outboundTxBytesPerSecond ?? t.txBytesPerSecond, t.outboundRxBytesPerSecond ?? t.rxBytesPerSecond))
                if w.count > Self.windowPasses { w.removeFirst(w.count - Self.windowPasses) }
                window[t.container.id] = w
            }
            s.window = window
            s.recent += alerts
            if s.recent.count > keep { s.recent.removeFirst(s.recent.count - keep) }
            for a in alerts { s.byContainer[a.container.id, default: []].append(a) }
            // Containers that are gone and have no recent alert are forgotten.
            if s.byContainer.count > keep {
                let live = Set(telemetry.map(\.container.id)).union(s.recent.map(\.container.id))
                s.byContainer = s.byContainer.filter { live.contains($0.key) }
            }
            s.exceptions = exceptions
            s.updated = time
            s.passes += 1
        }
    }

    /// One container as the scatter plot draws it.
    public struct ContainerView: Sendable, Codable, Hashable {
        public var id: String
        public var name: String?
        public var image: String?
        public var runtime: String
        public var k8s: KubernetesMetadata?
        public var cpuCores: Double?
        public var cpuLimitCores: Double?
        /// CPU as a share of its limit (or of the host's cores when it has none), the mean of
        /// the last 10 passes (as the rates below).
        public var cpuShare: Double?
        public var memoryBytes: UInt64?
        /// Outbound upload (bytes/s sent on connections it opened; interface counters otherwise).
        public var uploadBytesPerSecond: Double?
        public var downloadBytesPerSecond: Double?
        public var connections: Int
        public var alerts: [AlertBrief]
        public var traits: [String]
        public var silenced: [String]
    }

    public struct AlertBrief: Sendable, Codable, Hashable {
        public var detector: String
        public var severity: String
        public var family: String?
        public var summary: String
        public var time: Date
    }

    public struct Snapshot: Sendable, Codable {
        public var hostname: String
        public var updated: Date
        public var passes: Int
        public var containers: [ContainerView]
    }

    public func snapshot() -> Snapshot {
        state.withLock { s in
            let views = s.telemetry.map { t -> ContainerView in
                let alerts = (s.byContainer[t.container.id] ?? []).map {
                    AlertBrief(detector: $0.detector.rawValue, severity: $0.severity.rawValue, family: $0.family, summary: $0.summary, time: $0.detectedAt)
                }
                let w = s.window[t.container.id] ?? []
                return ContainerView(id: t.container.id, name: t.container.name, image: t.container.image, runtime: t.container.runtime,
                                     k8s: t.container.k8s, cpuCores: t.cpuCores, cpuLimitCores: t.cpuLimitCores,
                                     cpuShare: Self.mean(w.map(\.cpu)) ?? t.cpuShare, memoryBytes: t.memoryBytes,
                                     uploadBytesPerSecond: Self.mean(w.map(\.up)) ?? t.outboundTxBytesPerSecond ?? t.txBytesPerSecond,
                                     downloadBytesPerSecond: Self.mean(w.map(\.down)) ?? t.outboundRxBytesPerSecond ?? t.rxBytesPerSecond,
                                     connections: t.outboundConnections + t.inboundConnections, alerts: alerts,
                                     traits: (t.traits ?? []).map(\.name), silenced: t.silenced ?? [])
            }
            return Snapshot(hostname: hostname, updated: s.updated, passes: s.passes, containers: views)
        }
    }

    public var recentAlerts: [Alert] { state.withLock { $0.recent } }
    public var exceptions: [ExceptionView] { state.withLock { $0.exceptions } }
}

/// The dashboard's routes: the page, its script, and the JSON API (documented in the README).
public enum DashboardRoutes {
    static let encoder = ReportJSON.encoder()

    static func json<T: Encodable>(_ v: T) -> AgentServer.RouteResponse {
        guard let d = try? encoder.encode(v) else { return .error(500, "cannot encode") }
        return .json(Array(d))
    }

    /// `since` as a duration back from now (`1h`, `30m`), an RFC 3339 time or epoch seconds.
    public static func since(_ text: String?, default d: Double, now: Date = Date()) -> Date? {
        guard let text, !text.isEmpty else { return now.addingTimeInterval(-d) }
        var date: Date?
        if text.allSatisfy({ $0.isNumber || $0 == "." }) {
            date = Double(text).map { Date(timeIntervalSince1970: $0) }
        } else if let secs = Durations.parse(text) {
            date = now.addingTimeInterval(-secs)
        } else {
            date = ISO8601DateFormatter().date(from: text)
        }
        // Only times that can be: from the epoch to a day ahead (nan, inf and 1e300 are not).
        guard let date, date.timeIntervalSince1970.isFinite, date.timeIntervalSince1970 >= 0,
              date <= now.addingTimeInterval(86400) else { return nil }
        return date
    }

    static let badSince = AgentServer.RouteResponse.error(400, "since: expected 1h, an RFC 3339 time or epoch seconds")

    /// `history` opens the agent's history file for the series and alerts (nil: history is off).
    public static func routes(state: DashboardState, history: (@Sendable () -> HistoryReader?)?) -> [AgentServer.Route] {
        [
            .fixed("/", isPublic: true) { (contentType: "text/html; charset=utf-8", body: Array(DashboardAssets.html.utf8)) },
            .fixed("/dashboard.js", isPublic: true) { (contentType: "text/javascript; charset=utf-8", body: Array(DashboardAssets.script.utf8)) },
            .init(path: "/api/containers") { _ in json(state.snapshot()) },
            .init(path: "/api/exceptions") { _ in json(state.exceptions) },
            .init(path: "/api/alerts") { req in
                guard let since = since(req.query["since"], default: 86400) else { return badSince }
                let container = req.query["container"]
                if let reader = history?() {
                    do throws(MinewatchError) {
                        var id = container
                        if let c = container { id = try reader.containers(matching: c).first?.id ?? c }
                        return json(["alerts": try reader.alerts(since: since, container: id, limit: 2000)])
                    } catch {
                        return .error(500, error.description)
                    }
                }
                let list = state.recentAlerts.filter { a in a.detectedAt >= since && (container.map { c in a.container.id.hasPrefix(c) || a.container.name == c } ?? true) }
                return json(["alerts": list])
            },
            .init(path: "/api/containers/:id/series") { req in
                guard let ref = req.parameters["id"], !ref.isEmpty else { return .error(400, "no container") }
                guard let since = since(req.query["since"], default: 3600) else { return badSince }
                guard let reader = history?() else { return .error(404, "the agent keeps no history (--history FILE)") }
                do throws(MinewatchError) {
                    guard let c = try reader.containers(matching: ref).first else { return .error(404, "no container \(ref) in the history") }
                    return json(try reader.history(of: c, since: since, perMinute: req.query["per"] == "minute", alertLimit: 500))
                } catch {
                    return .error(500, error.description)
                }
            },
        ]
    }
}
