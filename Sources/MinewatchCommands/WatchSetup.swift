import ArgumentParser
import Foundation
import MinewatchConfig
import MinewatchCore
import MinewatchEngine
import MinewatchHost
import MinewatchNetwork
import MinewatchOutput
import MinewatchModel
import MinewatchRuntime
import MinewatchServer
import MinewatchSignatures
import MinewatchSinks
#if canImport(Glibc)
import Glibc
#endif

/// What `watch` runs with: the command line over the config file over the defaults, and the
/// pipeline made from it (rules, detectors, metadata, responses); the outputs and the HTTP
/// endpoint are built by `WatchOutputs` and `WatchEndpoints`. Reloads (SIGHUP) go through here.
struct WatchSetup {
    let command: WatchCommand
    /// The config file in use (nil: none).
    let configPath: String?
    var config: AgentConfig
    var ruleCount = 0
    var interval: Double
    let sockDiag = SockDiagReader()
    var endpoints = WatchEndpoints()

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
        if command.dryRun && (command.action ?? config.action?.type ?? .alert) == .alert {
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

    /// The detectors' settings from the command line, the config and the rules' models.
    func detectorSettings(_ models: ModelSettings) -> DetectorSettings {
        var s = DetectorSettings()
        s.disabled = disabled
        s.bandwidth = command.models.bandwidth(models)
        s.relay = command.models.relay(models)
        s.memoryScan = !command.noMemoryScan && config.memoryScan != false
        s.fpuSampling = !command.noFPUSampling && config.fpuSampling != false
        return s
    }

    mutating func makeAgent() throws -> Agent {
        guard let set = loadRules() else { throw ExitCode(2) }
        ruleCount = set.rules.count
        let compiled = CompiledRules(set)
        let models = modelSettings(set)
        let watcher = Watcher(rules: compiled, settings: detectorSettings(models), sockets: sockDiag)
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
        let action = command.action ?? config.action?.type ?? .alert
        let actOn = command.actOn ?? config.action?.actOn ?? .high
        let dryRun = command.dryRun || config.action?.dryRun == true
        if action == .stop && engine == nil && !dryRun {
            Terminal.error("--action stop needs an engine socket (--engine-socket); stops will fail")
        }
        let capture = !command.noCapture && config.capture != false && watcher.detectors.needsCapture
        if capture && getuid() == 0 { watcher.capture = LiveCapture(heartbeat: command.models.heartbeat(models)) }
        let responder = action == .alert ? nil : Responder(action: action, actOn: actOn, dryRun: dryRun, actuator: HostActuator(engine: engine))
        var outputs = WatchOutputs(command: command, config: config, interval: interval)
        try outputs.openHistory()
        let sinks = try outputs.makeSinks()
        let agent = Agent(watcher: watcher, sinks: sinks, responder: responder)
        watcher.store.onEvict = { [previous = watcher.store.onEvict] id in
            previous?(id)
            resolver.forget(id)
        }
        endpoints = try WatchEndpoints.start(command: command, config: config, history: outputs.historyStore)
        endpoints.metrics?.setLoaded(rules: ruleCount, exceptions: config.exceptions.count)
        return agent
    }

    /// Settings a reload does not apply (they are built once: the responder, the capture, the
    /// outputs, the endpoint, the metadata sources).
    static func restartOnly(_ a: AgentConfig, _ b: AgentConfig) -> [String] {
        var out: [String] = []
        if a.action != b.action { out.append("action") }
        if a.containers != b.containers { out.append("containers") }
        if a.capture != b.capture { out.append("capture") }
        if a.engineSocket != b.engineSocket { out.append("engine_socket") }
        if a.runtimeState != b.runtimeState { out.append("runtime_state") }
        if a.outputs != b.outputs { out.append("outputs") }
        if a.metricsListen != b.metricsListen { out.append("listen") }
        if a.tokenFile != b.tokenFile { out.append("token_file") }
        if a.history != b.history { out.append("history") }
        if a.dashboard != b.dashboard { out.append("dashboard") }
        return out
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
                endpoints.metrics?.reloaded(ok: false)
                return
            }
            next = c
        }
        let previous = config
        config = next
        guard let set = loadRules() else {
            config = previous
            Terminal.error("reload: the rules have errors; keeping the rules and configuration in force")
            endpoints.metrics?.reloaded(ok: false)
            return
        }
        let w = agent.watcher
        let models = modelSettings(set)
        w.reconfigure(rules: CompiledRules(set), settings: detectorSettings(models))
        w.replaceExceptions(config.exceptions)
        w.includeHost = command.includeHost || config.includeHost == true
        interval = command.interval?.seconds ?? config.interval ?? 2
        ruleCount = set.rules.count
        endpoints.metrics?.setLoaded(rules: ruleCount, exceptions: config.exceptions.count)
        endpoints.metrics?.reloaded(ok: true)
        Terminal.error("reload: \(set.rules.count) rules, \(config.exceptions.count) exceptions, \(disabled.count) detectors off; per-container state kept"
            + (configPath.map { " (\($0))" } ?? ""))
        let later = Self.restartOnly(previous, config)
        if !later.isEmpty { Terminal.error("reload: \(later.joined(separator: ", ")) changed and take effect on restart") }
    }
}
