import ArgumentParser
import Foundation
import MinewatchConfig
import MinewatchCore
import MinewatchHistory
import MinewatchRuntime
import MinewatchServer
import Synchronization

/// The agent's HTTP endpoint: Prometheus metrics, and the dashboard with its API when asked;
/// each pass records what they show.
struct WatchEndpoints {
    var metrics: AgentMetrics?
    var server: AgentServer?
    var dashboard: DashboardState?

    /// The HTTP endpoint (metrics, and the dashboard when asked), when a listen address is set
    /// or the dashboard is on. Anything but loopback needs a token.
    static func start(command: WatchCommand, config: AgentConfig, history historyStore: HistoryStore?) throws -> WatchEndpoints {
        var e = WatchEndpoints()
        let wantDashboard = command.dashboard || config.dashboard == true
        guard let listen = command.metricsListen ?? config.metricsListen ?? (wantDashboard ? "127.0.0.1:9376" : nil) else { return e }
        guard let addr = ListenAddress.parse(listen) else {
            Terminal.error("metrics listen address '\(listen)': expected host:port")
            throw ExitCode(2)
        }
        let tokenFile = command.tokenFile ?? config.tokenFile
        let token = try tokenFile.map { tf in try Terminal.orExit { () throws(MinewatchError) in try TokenFile.read(tf) } }
        if tokenFile == nil && !addr.isLoopback {
            Terminal.error("metrics listen address \(listen) is not loopback: a bearer token is required (--token-file or token_file)")
            throw ExitCode(2)
        }
        let m = AgentMetrics()
        var routes: [AgentServer.Route] = [.fixed("/metrics") { ("text/plain; version=0.0.4; charset=utf-8", m.exposition()) }]
        if wantDashboard {
            let state = DashboardState(hostname: WatchOutputs.hostname)
            var open: (@Sendable () -> HistoryReader?)?
            if let path = historyStore?.path {
                let cache = HistoryReaderCache(path: path)
                open = { cache.reader() }
            }
            routes += DashboardRoutes.routes(state: state, history: open)
            e.dashboard = state
        }
        let s = AgentServer(host: addr.host, port: addr.port, token: token, routes: routes)
        let port = try Terminal.orExit { () throws(MinewatchError) in try s.start() }
        let base = "http://\(addr.host.contains(":") ? "[\(addr.host)]" : addr.host):\(port)"
        Terminal.error("metrics at \(base)/metrics" + (wantDashboard ? ", dashboard at \(base)/" : "") + (token == nil ? "" : " (bearer token required)"))
        e.metrics = m
        e.server = s
        return e
    }

    /// What one pass shows there: the dashboard's live state and the metrics.
    func record(_ agent: Agent) {
        let w = agent.watcher
        if let dashboard {
            let hits = w.exceptions.hits
            dashboard.update(telemetry: w.currentTelemetry, alerts: agent.lastAlerts,
                             exceptions: w.exceptions.rules.map { .init(name: $0.name, reason: $0.reason, source: $0.source, hits: hits[$0.name] ?? 0) },
                             at: w.sampler.lastPassTime ?? Date())
        }
        guard let metrics else { return }
        metrics.record(passSeconds: agent.lastPassSeconds, containers: w.currentTelemetry.count, alerts: agent.lastAlerts,
                       silenced: w.silenced, exceptionHits: w.exceptions.hits, sinks: agent.sinkStats, telemetry: w.currentTelemetry)
        let c = w.computeStats
        metrics.recordCompute(fpuSamples: c.fpuSamples, fpuStoppedSeconds: c.fpuStoppedSeconds, memoryScannedBytes: c.memoryScannedBytes,
                              memoryScannedProcesses: c.memoryScannedProcesses)
    }

    func stop() { server?.stop() }
}

/// The dashboard's reader of the agent's own history, opened on first use (the store created
/// the file) and kept.
final class HistoryReaderCache: Sendable {
    let path: String
    let cached = Mutex<HistoryReader?>(nil)
    init(path: String) { self.path = path }
    func reader() -> HistoryReader? {
        cached.withLock { c in
            if let c { return c }
            c = try? HistoryReader(path: path)
            return c
        }
    }
}
