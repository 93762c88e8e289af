import ArgumentParser
import Foundation
import MinewatchConfig
import MinewatchCore
import MinewatchEngine
import MinewatchHistory
import MinewatchHost
import MinewatchNetwork
import MinewatchOutput
import MinewatchReport
import MinewatchRuntime
import MinewatchServer
import MinewatchSignatures
import MinewatchSinks
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// What `watch` runs with: the command line over the config file over the defaults, and the
/// pieces made from it (rules, the pipeline, outputs, the metrics endpoint). Reloads (SIGHUP)
/// go through here too.
struct WatchSetup {
    let command: WatchCommand
    /// The config file in use (nil: none).
    let configPath: String?
    var config: AgentConfig
    var ruleCount = 0
    var interval: Double
    let sockDiag = SockDiagReader()
    var metrics: AgentMetrics?
    var server: AgentServer?
    var dashboard: DashboardState?
    var historyStore: HistoryStore?

    init(command: WatchCommand) throws {
        self.command = command
        if let path = command.config {
            configPath = path
        } else {
            configPath = FileManager.default.fileExists(atPath: ConfigLoader.defaultPath) ? ConfigLoader.defaultPath : nil
        }
        if let configPath {
            let (c, diags) = ConfigLoader.load(path: configPath)
            for d in diags { Terminal.error(d.description) }
            guard let c else { throw ExitCode(2) }
            config = c
        } else {
            config = AgentConfig(file: "")
        }
        interval = command.interval?.seconds ?? config.interval ?? 2
        // Before any other thread starts: other containers' cgroup paths must be absolute.
        switch CgroupNamespace.joinHostIfPrivate() {
        case .alreadyHost: break
        case .joined: Terminal.error("joined the host's cgroup namespace (this agent runs in a private one)")
        case .failed(let e):
            Terminal.error("in a private cgroup namespace and cannot join the host's (\(String(cString: strerror(e)).lowercased()); needs CAP_SYS_ADMIN and hostPID): CPU, memory and freeze are unavailable for other containers")
        }
        if command.dryRun && (command.action?.rawValue ?? config.action?.type ?? "alert") == "alert" {
            throw ValidationError("--dry-run needs an --action other than alert")
        }
    }

    var ruleFiles: [String] { config.rules + command.rules.ruleFiles }
    var includeBundled: Bool { !command.rules.noBundled && (config.bundledRules ?? true) }
    var disabled: Set<DetectorID> { Set(command.disable).union(config.detectors.filter { !$0.value }.keys) }

    /// Rules from the config's files and --rules; every diagnostic printed; nil when any.
    func loadRules() -> RuleSet? {
        let (set, diags) = BundledRules.load(userFiles: ruleFiles, includeBundled: includeBundled)
        for d in diags { Terminal.error(d.description) }
        if !diags.isEmpty { return nil }
        if set.rules.isEmpty {
            Terminal.error("no rules loaded")
            return nil
        }
        return set
    }

    func modelSettings(_ set: RuleSet) -> ModelSettings { set.models.merged(with: config.models) }

    mutating func makeAgent() throws -> Agent {
        guard let set = loadRules() else { throw ExitCode(2) }
        ruleCount = set.rules.count
        let compiled = CompiledRules(set)
        let watcher = Watcher(rules: compiled, sockets: sockDiag)
        let models = modelSettings(set)
        watcher.reconfigure(rules: compiled, disabled: disabled,
                            models: (command.models.bandwidth(models), command.models.relay(models)))
        watcher.includeHost = command.includeHost || config.includeHost == true
        watcher.exceptions = ExceptionSet(config.exceptions)
        let socket = command.engineSocket ?? config.engineSocket ?? EngineClient.defaultSocket()
        let engine = socket.map { EngineClient(socket: $0) }
        let names = engine.map { EngineNames(client: $0) }
        var lookup: (@Sendable (String) -> ContainerMetadata?)?
        var cached: (@Sendable (String) -> ContainerMetadata?)?
        if let names {
            lookup = { names.lookup($0) }
            cached = { names.cached($0) }
        }
        let resolver = MetadataResolver(engine: lookup, engineCached: cached, bundles: RuntimeStateReader(extra: config.runtimeState + command.runtimeState))
        watcher.describe = { resolver.lookup($0) }
        watcher.describeCached = { resolver.cached($0) }
        let only = command.containers.isEmpty ? (config.containers ?? []) : command.containers
        if !only.isEmpty { watcher.onlyContainers = try WatchCommand.resolveContainers(only, engine) }
        let action = command.action ?? config.action.flatMap { ResponseAction(rawValue: $0.type) } ?? .alert
        let actOn = command.actOn ?? config.action?.actOn ?? .high
        let dryRun = command.dryRun || config.action?.dryRun == true
        if action == .stop && engine == nil && !dryRun {
            Terminal.error("--action stop needs an engine socket (--engine-socket); stops will fail")
        }
        let capture = !command.noCapture && config.capture != false && !disabled.contains(.miningProtocol)
        if capture && getuid() == 0 { watcher.capture = LiveCapture(heartbeat: command.models.heartbeat(models)) }
        let responder = action == .alert ? nil : Responder(action: action, actOn: actOn, dryRun: dryRun, actuator: HostActuator(engine: engine))
        try openHistory()
        let sinks = try makeSinks()
        let agent = Agent(watcher: watcher, sinks: sinks, responder: responder)
        watcher.store.onEvict = { [previous = watcher.store.onEvict] id in
            previous?(id)
            resolver.forget(id)
        }
        try startServer()
        metrics?.setLoaded(rules: ruleCount, exceptions: config.exceptions.count)
        return agent
    }

    /// The node's name for events: the Kubernetes downward API's NODE_NAME, else the host name.
    static var hostname: String {
        if let n = ProcessInfo.processInfo.environment["NODE_NAME"], !n.isEmpty { return n }
        var buf = [CChar](repeating: 0, count: 256)
        return gethostname(&buf, buf.count) == 0 ? String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : "unknown"
    }

    /// The outputs: the primary (stdout or --output, JSON lines or the table), then OCSF and
    /// Falcosidekick when configured; each behind its own bounded queue.
    func makeSinks() throws -> [SinkQueue] {
        let capacity = command.queueSize ?? config.outputs.queueSize ?? 10_000
        var out: [SinkQueue] = []
        let primaryPath = command.output ?? config.outputs.jsonl.map(\.path).flatMap { $0 == "-" ? nil : $0 }
        let wantTelemetry = command.telemetry || config.outputs.jsonl?.telemetry == true
        let fmt = command.format ?? (primaryPath == nil && Terminal.stdoutIsTTY && config.outputs.jsonl == nil ? .table : .jsonl)
        let live = fmt == .table && primaryPath == nil && Terminal.stdoutIsTTY
        let handle = try Self.open(primaryPath)
        let every = interval
        let sink: any Sink
        switch fmt {
        case .jsonl:
            sink = LineSink(name: primaryPath ?? "stdout", handle: handle, closeWhenDone: primaryPath != nil) { WatchRenderer.jsonLines($0, telemetry: wantTelemetry) }
        case .table where live:
            sink = ScreenSink(handle: handle) { t, a in WatchRenderer.screen(telemetry: t, alerts: a, interval: every) }
        case .table:
            handle.write(Data(WatchRenderer.tableHeader.utf8))
            sink = LineSink(name: primaryPath ?? "stdout", handle: handle, closeWhenDone: primaryPath != nil) { WatchRenderer.tableLines($0) }
        }
        out.append(SinkQueue(sink, capacity: capacity))
        if let h = historyStore { out.append(SinkQueue(HistorySink(store: h), capacity: capacity)) }
        let host = Self.hostname
        let version = MinewatchVersion.current
        if let ocsf = command.ocsfOutput ?? config.outputs.ocsf?.path {
            let path = ocsf == "-" ? nil : ocsf
            let h = try Self.open(path)
            out.append(SinkQueue(LineSink(name: "ocsf:\(path ?? "stdout")", handle: h, closeWhenDone: path != nil) {
                EventRenderer.ocsfLine($0, hostname: host, version: version)
            }, capacity: capacity))
        }
        if let u = command.falcosidekickURL ?? config.outputs.falcosidekick?.url, let url = URL(string: u) {
            let c = config.outputs.falcosidekick
            var token: String?
            if let tf = c?.tokenFile {
                do throws(MinewatchError) { token = try TokenFile.read(tf) } catch {
                    Terminal.error(error.description)
                    throw ExitCode(2)
                }
            }
            out.append(SinkQueue(HTTPSink(name: "falcosidekick", url: url, timeout: c?.timeout ?? 5, retries: c?.retries ?? 5, token: token) {
                EventRenderer.falcoBody($0, hostname: host)
            }, capacity: capacity))
        }
        return out
    }

    /// A file opened for appending (created when missing), or standard output for nil.
    static func open(_ path: String?) throws -> FileHandle {
        guard let path else { return .standardOutput }
        if !FileManager.default.fileExists(atPath: path) { _ = FileManager.default.createFile(atPath: path, contents: nil) }
        guard let h = FileHandle(forWritingAtPath: path) else {
            Terminal.error("open \(path): cannot write")
            throw ExitCode(2)
        }
        h.seekToEndOfFile()
        return h
    }

    /// The history database, when one is configured (--history or history:).
    mutating func openHistory() throws {
        guard let path = command.history ?? config.history?.path else { return }
        var limits = HistoryStore.Limits()
        if let r = command.historyRetention?.seconds ?? config.history?.retention { limits.retention = r }
        if let r = config.history?.samplesRetention { limits.samplesRetention = r }
        if let s = command.historyMaxSize {
            guard let b = ByteAmounts.parse(s), b >= 1_048_576, b < 1e15 else {
                Terminal.error("--history-max-size: expected a size of at least 1MiB such as 256MiB, not '\(s)'")
                throw ExitCode(2)
            }
            limits.maxBytes = Int64(b)
        } else if let b = config.history?.maxBytes {
            limits.maxBytes = b
        }
        limits.samplesRetention = min(limits.samplesRetention, limits.retention)
        do throws(MinewatchError) {
            historyStore = try HistoryStore(path: path, limits: limits)
        } catch {
            Terminal.error(error.description)
            throw ExitCode(2)
        }
    }

    /// The HTTP endpoint (metrics, and the dashboard when asked), when a listen address is set
    /// or the dashboard is on. Anything but loopback needs a token.
    mutating func startServer() throws {
        let wantDashboard = command.dashboard || config.dashboard == true
        guard let listen = command.metricsListen ?? config.metricsListen ?? (wantDashboard ? "127.0.0.1:9376" : nil) else { return }
        guard let addr = ListenAddress.parse(listen) else {
            Terminal.error("metrics listen address '\(listen)': expected host:port")
            throw ExitCode(2)
        }
        var token: String?
        if let tf = command.tokenFile ?? config.tokenFile {
            do throws(MinewatchError) { token = try TokenFile.read(tf) } catch {
                Terminal.error(error.description)
                throw ExitCode(2)
            }
        } else if !addr.isLoopback {
            Terminal.error("metrics listen address \(listen) is not loopback: a bearer token is required (--token-file or token_file)")
            throw ExitCode(2)
        }
        let m = AgentMetrics()
        var routes: [AgentServer.Route] = [.fixed("/metrics") { ("text/plain; version=0.0.4; charset=utf-8", m.exposition()) }]
        if wantDashboard {
            let state = DashboardState(hostname: Self.hostname)
            var open: (@Sendable () -> HistoryReader?)?
            if let path = historyStore?.path {
                let cache = HistoryReaderCache(path: path)
                open = { cache.reader() }
            }
            routes += DashboardRoutes.routes(state: state, history: open)
            dashboard = state
        }
        let s = AgentServer(host: addr.host, port: addr.port, token: token, routes: routes)
        do throws(MinewatchError) {
            let port = try s.start()
            let base = "http://\(addr.host.contains(":") ? "[\(addr.host)]" : addr.host):\(port)"
            Terminal.error("metrics at \(base)/metrics" + (wantDashboard ? ", dashboard at \(base)/" : "") + (token == nil ? "" : " (bearer token required)"))
        } catch {
            Terminal.error(error.description)
            throw ExitCode(2)
        }
        metrics = m
        server = s
    }

    func recordMetrics(_ agent: Agent) {
        let w = agent.watcher
        if let dashboard {
            let hits = w.exceptions.hits
            dashboard.update(telemetry: w.telemetry.values.sorted { $0.container.id < $1.container.id }, alerts: agent.lastAlerts,
                             exceptions: w.exceptions.rules.map { .init(name: $0.name, reason: $0.reason, source: $0.source, hits: hits[$0.name] ?? 0) },
                             at: w.sampler.lastPassTime ?? Date())
        }
        guard let metrics else { return }
        metrics.record(passSeconds: agent.lastPassSeconds, containers: w.store.states.count, alerts: agent.lastAlerts,
                       silenced: w.silenced, exceptionHits: w.exceptions.hits, sinks: agent.sinkStats, telemetry: Array(w.telemetry.values))
    }

    /// SIGHUP: reads the config file and the rules again. On any problem the old ones stay in
    /// force and every problem is reported; per-container state is kept either way. Outputs and
    /// listen addresses take effect on restart.
    mutating func reload(_ agent: Agent) {
        var next = config
        if let configPath {
            let (c, diags) = ConfigLoader.load(path: configPath)
            for d in diags { Terminal.error(d.description) }
            guard let c else {
                Terminal.error("reload: \(configPath) has errors; keeping the configuration in force")
                metrics?.reloaded(ok: false)
                return
            }
            next = c
        }
        let previous = config
        config = next
        guard let set = loadRules() else {
            config = previous
            Terminal.error("reload: the rules have errors; keeping the rules and configuration in force")
            metrics?.reloaded(ok: false)
            return
        }
        let w = agent.watcher
        let models = modelSettings(set)
        w.reconfigure(rules: CompiledRules(set), disabled: disabled, models: (command.models.bandwidth(models), command.models.relay(models)))
        w.exceptions.replace(with: config.exceptions)
        w.includeHost = command.includeHost || config.includeHost == true
        interval = command.interval?.seconds ?? config.interval ?? 2
        ruleCount = set.rules.count
        metrics?.setLoaded(rules: ruleCount, exceptions: config.exceptions.count)
        metrics?.reloaded(ok: true)
        Terminal.error("reload: \(set.rules.count) rules, \(config.exceptions.count) exceptions, \(disabled.count) detectors off; per-container state kept"
            + (configPath.map { " (\($0))" } ?? ""))
    }
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
