import ArgumentParser
import Foundation
import MinewatchCore
import MinewatchReport
import MinewatchEngine
import MinewatchHost
import MinewatchImage
import MinewatchNetwork
import MinewatchOutput
import MinewatchRuntime
import MinewatchSignatures
import MinewatchSinks
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Set from the SIGINT/SIGTERM handler; the loop checks it between short sleeps.
nonisolated(unsafe) var watchStopRequested: sig_atomic_t = 0

public struct WatchCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "watch",
        abstract: "Watch running containers and alert on miners: CPU miners and bandwidth miners.",
        discussion: """
        Finds containers from the cgroup paths of processes (podman, Docker, containerd/Kubernetes, \
        CRI-O; cgroup v1 and v2) and runs six detectors every interval: miner-process (executables \
        scanned with the `scan` rules, command lines, environment), pool-contact (outbound \
        connections to pool ports), drift (executables not in the image), cpu-miner (sustained CPU \
        at the limit with other evidence), bandwidth-miner (sustained upload-heavy outbound \
        traffic in repeated exchanges to a few destinations) and, as root, mining-protocol (Stratum \
        logins, PacketCrypt posts, pool names, seen in packets captured in each container's \
        namespace). One alert per container per detector. \
        Stops after --duration, or on SIGINT/SIGTERM.
        """
    )

    enum Format: String, ExpressibleByArgument { case table, jsonl }

    @Option(help: "Time between passes (2s, 500ms, 1m; bare numbers are seconds).")
    var interval = DurationArgument(seconds: 2)

    @Option(help: "Stop after this long (60s, 10m, 1h; default: run until SIGINT/SIGTERM).")
    var duration: DurationArgument?

    @Option(name: .shortAndLong, help: "table (live screen on a terminal) or jsonl (default when not a terminal).")
    var format: Format?

    @Option(name: .shortAndLong, help: "Append alerts to this file instead of standard output.")
    var output: String?

    @Flag(help: "With jsonl, also write one telemetry record per container per pass (\"type\": \"telemetry\").")
    var telemetry = false

    @Option(name: .customLong("engine-socket"), help: "Docker Engine API socket for container names and images, and for --action stop (default: $DOCKER_HOST, /var/run/docker.sock, /run/podman/podman.sock). Without one, alerts carry ids only.")
    var engineSocket: String?

    @Flag(name: .customLong("include-host"), help: "Also inspect processes outside containers (reported as container \"host\"; never acted on).")
    var includeHost = false

    @Flag(name: .customLong("no-capture"), help: "Do not capture packets in container namespaces (protocol evidence; on by default as root).")
    var noCapture = false

    @Option(name: .customLong("container"), help: ArgumentHelp("Watch only this container (an id or id prefix; with an engine socket also a name). Repeatable.", valueName: "id"))
    var containers: [String] = []

    @Option(help: "What to do with an alert at or above --act-on: alert, freeze (the container's cgroup), kill (the named process), stop (the container, through the engine API).")
    var action: ResponseAction = .alert

    @Option(name: .customLong("act-on"), help: "Lowest severity that triggers --action.")
    var actOn: Severity = .high

    @Flag(name: .customLong("dry-run"), help: "Say what --action would do without doing it.")
    var dryRun = false

    @OptionGroup(title: "Behaviour models (override the rule files' models:)") var models: ModelOptions

    @OptionGroup var rules: RuleOptions

    public init() {}

    public func validate() throws {
        if !(0.1...3600).contains(interval.seconds) { throw ValidationError("--interval must be between 100ms and 1h") }
        if let duration, duration.seconds <= 0 { throw ValidationError("--duration must be positive") }
        if dryRun && action == .alert { throw ValidationError("--dry-run needs an --action other than alert") }
    }

    public func run() throws {
        let set = try rules.load()
        let sockDiag = SockDiagReader()
        let watcher = Watcher(rules: CompiledRules(set), sockets: sockDiag)
        watcher.includeHost = includeHost
        watcher.bandwidthModel = models.bandwidth(set.models)
        watcher.relayModel = models.relay(set.models)
        let socket = engineSocket ?? EngineClient.defaultSocket()
        let engine = socket.map { EngineClient(socket: $0) }
        if let engine {
            let names = EngineNames(client: engine)
            watcher.describe = names.lookup
            watcher.describeCached = names.cached
        }
        if !containers.isEmpty { watcher.onlyContainers = try resolveContainers(engine) }
        if action == .stop && engine == nil && !dryRun {
            Terminal.error("--action stop needs an engine socket (--engine-socket); stops will fail")
        }
        if !noCapture && getuid() == 0 { watcher.capture = LiveCapture(heartbeat: models.heartbeat(set.models)) }
        let responder = action == .alert ? nil : Responder(action: action, actOn: actOn, dryRun: dryRun, actuator: HostActuator(engine: engine))
        let fmt = format ?? (output == nil && Terminal.stdoutIsTTY ? .table : .jsonl)
        let live = fmt == .table && output == nil && Terminal.stdoutIsTTY
        var handle: FileHandle = .standardOutput
        if let output {
            if !FileManager.default.fileExists(atPath: output) { _ = FileManager.default.createFile(atPath: output, contents: nil) }
            guard let h = FileHandle(forWritingAtPath: output) else {
                Terminal.error("open \(output): cannot write")
                throw ExitCode(2)
            }
            h.seekToEndOfFile()
            handle = h
        }
        let sink: any Sink
        let wantTelemetry = telemetry
        let every = interval.seconds
        switch fmt {
        case .jsonl:
            sink = LineSink(name: output ?? "stdout", handle: handle, closeWhenDone: output != nil) { WatchRenderer.jsonLines($0, telemetry: wantTelemetry) }
        case .table where live:
            sink = ScreenSink(handle: handle) { t, a in WatchRenderer.screen(telemetry: t, alerts: a, interval: every) }
        case .table:
            handle.write(Data(WatchRenderer.tableHeader.utf8))
            sink = LineSink(name: output ?? "stdout", handle: handle, closeWhenDone: output != nil) { WatchRenderer.tableLines($0) }
        }
        let agent = Agent(watcher: watcher, sinks: [SinkQueue(sink)], responder: responder)
        signal(SIGINT) { _ in watchStopRequested = 1 }
        signal(SIGTERM) { _ in watchStopRequested = 1 }
        let deadline = duration.map { Date().addingTimeInterval($0.seconds) }
        var warnedSockDiag = false
        var warnedCapture = false
        while watchStopRequested == 0 {
            let passStart = Date()
            agent.pass()
            if !warnedSockDiag, let e = sockDiag.firstError {
                warnedSockDiag = true
                Terminal.error("per-connection counters unavailable (\(e.description)); the bandwidth detector uses interface counters")
            }
            if !warnedCapture, let e = (watcher.capture as? LiveCapture)?.firstError {
                warnedCapture = true
                Terminal.error("packet capture unavailable in some namespaces (\(e.description)); protocol evidence is missing there")
            }
            for r in agent.takeResponseFailures() { Terminal.error("\(r.response.action) \(r.response.target): \(r.response.result)") }
            if let deadline, Date() >= deadline { break }
            // A fixed cadence (the pass's own time is not added to the interval); sleep in short
            // steps so a signal or the deadline ends the wait promptly.
            let wake = max(passStart.addingTimeInterval(every), Date().addingTimeInterval(every / 10))
            while watchStopRequested == 0 && Date() < wake && (deadline.map { Date() < $0 } ?? true) { usleep(50_000) }
        }
        (watcher.capture as? LiveCapture)?.stop()
        agent.finish()
        for r in agent.takeResponseFailures() { Terminal.error("\(r.response.action) \(r.response.target): \(r.response.result)") }
        // What the detectors raised against what the sinks wrote (drops counted): nothing is lost silently.
        let sinks = agent.sinkStats.map { st in
            "sink \(st.name): \(st.alertsWritten) alerts written, \(st.alertsDropped) dropped, \(st.dropped) records dropped, \(st.failed) failed"
                + (st.lastError.map { " (last error: \($0))" } ?? "")
        }
        Terminal.error("watch: \(watcher.passes) passes, \(agent.alertsRaised) alerts raised, \(watcher.store.evicted) containers gone; " + sinks.joined(separator: "; "))
    }

    /// `--container` values as id prefixes: ids as given, names through the engine. A name no
    /// engine resolves is an error, never a silent watch of nothing.
    func resolveContainers(_ engine: EngineClient?) throws -> [String] {
        let known: [String: (name: String, image: String)]
        do throws(MinewatchError) {
            known = try engine?.containers() ?? [:]
        } catch {
            known = [:]
            Terminal.error("engine: \(error.description)")
        }
        return try containers.map { c in
            if let hit = known.first(where: { $0.value.name == c }) { return hit.key }
            let lower = c.lowercased()
            if lower.count >= 4, lower.allSatisfy(\.isHexDigit) { return lower }
            throw ValidationError("--container \(c): no running container has this name\(engine == nil ? " (no engine socket to look names up; give an id)" : "") and it is not a container id")
        }
    }
}

extension ResponseAction: ExpressibleByArgument {}

/// Container names and images from the engine. An alert for an unknown id refreshes the list at
/// once; telemetry refreshes it at most every 10 s. After a failure nothing is asked for 30 s, and
/// every request has a 5 s timeout, so a slow or wedged engine never stalls the watch loop for
/// long. An engine that stops answering is reported once on stderr; alerts then carry ids only,
/// and names return when it answers again.
final class EngineNames: Sendable {
    struct Cache {
        var names: [String: (name: String, image: String)] = [:]
        var warned = false
        var lastRefresh = Date.distantPast
        var backoffUntil = Date.distantPast
    }
    let client: EngineClient
    let cache = Mutex(Cache())

    init(client: EngineClient) {
        var c = client
        c.http.timeoutSeconds = 5
        self.client = c
    }

    func refresh(_ c: inout Cache) {
        c.lastRefresh = Date()
        do {
            c.names = try client.containers()
            if c.warned { Terminal.error("engine: answering again") }
            c.warned = false
        } catch {
            if !c.warned { Terminal.error("engine: \(error.description); alerts carry container ids only") }
            c.warned = true
            c.backoffUntil = Date().addingTimeInterval(30)
        }
    }

    /// For alerts: an unknown id refreshes the list (unless the engine just failed).
    func lookup(_ id: String) -> (name: String, image: String)? {
        cache.withLock { c in
            if let hit = c.names[id] { return hit }
            if Date() >= c.backoffUntil { refresh(&c) }
            return c.names[id]
        }
    }

    /// For telemetry: refreshes at most every 10 s.
    func cached(_ id: String) -> (name: String, image: String)? {
        cache.withLock { c in
            if let hit = c.names[id] { return hit }
            if Date() >= c.backoffUntil && Date().timeIntervalSince(c.lastRefresh) >= 10 { refresh(&c) }
            return c.names[id]
        }
    }
}
