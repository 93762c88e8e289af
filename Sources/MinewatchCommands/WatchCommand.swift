import ArgumentParser
import Foundation
import MinewatchConfig
import MinewatchCore
import MinewatchModel
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
/// Set from the SIGHUP handler: reload the config and the rules before the next pass.
nonisolated(unsafe) var watchReloadRequested: sig_atomic_t = 0
/// The pipe the handlers write a byte to, so the wait between passes ends at once (a signal may
/// be delivered to any thread, so it cannot be relied on to interrupt the main thread's wait
/// itself): read end, write end; -1 before it is made. Made once and never closed, so a handler
/// running on another thread at exit never writes to a closed or reused descriptor.
nonisolated(unsafe) var watchWakeRead: Int32 = -1
nonisolated(unsafe) var watchWakeFD: Int32 = -1

/// Wakes the loop from a signal handler, after the handler set its flag: only a write (async-
/// signal-safe), and no access to the flags (a handler interrupting another must not overlap
/// its access to the same variable).
func watchWake() {
    let fd = watchWakeFD
    guard fd >= 0 else { return }
    let saved = errno
    var b: UInt8 = 1
    _ = write(fd, &b, 1)
    errno = saved
}

public struct WatchCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "watch",
        abstract: "Watch running containers and alert on miners: CPU miners and bandwidth miners.",
        discussion: """
        Finds containers from the cgroup paths of processes (podman, Docker, containerd/Kubernetes, \
        CRI-O; cgroup v1 and v2) and runs eight detectors every interval: miner-process (executables \
        scanned with the `scan` rules, command lines, environment), pool-contact (outbound \
        connections to pool ports), drift (executables not in the image), cpu-miner (sustained CPU \
        demand at the limit with other evidence), bandwidth-miner (upload-heavy traffic with \
        evidence a miner is behind it), relay (a tunnel carrying what many other destinations send \
        and receive: proxyjacking), bandwidth-service (names of bandwidth-sharing services looked \
        up or sent) and, as root, mining-protocol (Stratum logins, PacketCrypt posts, pool names, \
        seen in packets captured in each container's namespace). One alert per container per \
        detector; exceptions in the config file silence alerts and count them. \
        Stops after --duration, or on SIGINT/SIGTERM; SIGHUP reloads the config and the rules.
        """
    )

    enum Format: String, ExpressibleByArgument { case table, jsonl }

    @Option(help: ArgumentHelp("The agent's config file (YAML; default \(ConfigLoader.defaultPath) when it exists). Options given here override it. SIGHUP reloads it with the rules.", valueName: "file"))
    var config: String?

    @Option(help: "Time between passes (2s, 500ms, 1m; bare numbers are seconds; default 2s).")
    var interval: DurationArgument?

    @Option(help: "Stop after this long (60s, 10m, 1h; default: run until SIGINT/SIGTERM).")
    var duration: DurationArgument?

    @Option(name: .shortAndLong, help: "table (live screen on a terminal) or jsonl (default when not a terminal).")
    var format: Format?

    @Option(name: .shortAndLong, help: "Append alerts to this file instead of standard output.")
    var output: String?

    @Flag(help: "With jsonl, also write one telemetry record per container per pass (\"type\": \"telemetry\").")
    var telemetry = false

    @Option(name: .customLong("ocsf-output"), help: ArgumentHelp("Also append alerts as OCSF Detection Findings (class 2004), one JSON line each (- for standard output).", valueName: "file"))
    var ocsfOutput: String?

    @Option(name: .customLong("falcosidekick-url"), help: ArgumentHelp("Also post alerts as Falco events to Falcosidekick (or any receiver of its POST /), retrying with back-off.", valueName: "url"))
    var falcosidekickURL: String?

    @Option(name: .customLong("queue-size"), help: "Records each output's queue holds before it drops and counts what does not fit (default 10000).")
    var queueSize: Int?

    @Option(name: [.customLong("listen"), .customLong("metrics-listen")], help: ArgumentHelp("Serve the HTTP endpoints on this address: Prometheus metrics at GET /metrics, the dashboard at / (127.0.0.1:9376; any other than loopback needs --token-file).", valueName: "host:port"))
    var metricsListen: String?

    @Flag(help: "Serve the dashboard and its JSON API (at the --listen address; 127.0.0.1:9376 when none is given).")
    var dashboard = false

    @Option(help: ArgumentHelp("Keep alerts and telemetry in this SQLite database (minewatch history reads it).", valueName: "file"))
    var history: String?

    @Option(name: .customLong("history-retention"), help: "How long the history keeps alerts and per-minute telemetry (default 7d, as 12h, 30d).")
    var historyRetention: DurationArgument?

    @Option(name: .customLong("history-max-size"), help: "Largest size of the history database with its WAL (default 256MiB); the oldest rows go first.")
    var historyMaxSize: String?

    @Option(name: .customLong("token-file"), help: ArgumentHelp("File whose first line is the bearer token the HTTP endpoints require.", valueName: "file"))
    var tokenFile: String?

    @Option(name: .customLong("engine-socket"), help: "Docker Engine API socket for container names and images, and for --action stop (default: $DOCKER_HOST, /var/run/docker.sock, /run/podman/podman.sock). Without one, alerts carry ids and what the runtimes' bundles say (containerd, CRI-O).")
    var engineSocket: String?

    @Option(name: .customLong("runtime-state"), help: ArgumentHelp("Also read container metadata from this folder: a containerd task root (<state>/io.containerd.runtime.v2.task) or containers/storage's overlay-containers. Repeatable.", valueName: "dir"))
    var runtimeState: [String] = []

    @Flag(name: .customLong("include-host"), help: "Also inspect processes outside containers (reported as container \"host\"; never acted on).")
    var includeHost = false

    @Flag(name: .customLong("no-capture"), help: "Do not capture packets in container namespaces (protocol evidence; on by default as root).")
    var noCapture = false

    @Flag(name: .customLong("no-memory-scan"), help: "Do not read the memory of packed, fileless, interpreter or busy processes (process_vm_readv).")
    var noMemoryScan = false

    @Flag(name: .customLong("no-fpu-sampling"), help: "Do not sample busy threads' rounding mode with ptrace (RandomX's run-time signature).")
    var noFPUSampling = false

    @Option(name: .customLong("container"), help: ArgumentHelp("Watch only this container (an id or id prefix; with an engine socket also a name). Repeatable.", valueName: "id"))
    var containers: [String] = []

    @Option(name: .customLong("disable"), help: ArgumentHelp("Switch a detector off (\(DetectorID.allCases.map(\.rawValue).joined(separator: ", "))). Repeatable.", valueName: "detector"))
    var disable: [DetectorID] = []

    @Option(help: "What to do with an alert at or above --act-on: alert, freeze (the container's cgroup), kill (the named process), stop (the container, through the engine API).")
    var action: ResponseAction?

    @Option(name: .customLong("act-on"), help: "Lowest severity that triggers --action (default high).")
    var actOn: Severity?

    @Flag(name: .customLong("dry-run"), help: "Say what --action would do without doing it.")
    var dryRun = false

    @OptionGroup(title: "Behaviour models (override the config's and the rule files' models:)") var models: ModelOptions

    @OptionGroup var rules: RuleOptions

    public init() {}

    public func validate() throws {
        if let interval, !(0.1...3600).contains(interval.seconds) { throw ValidationError("--interval must be between 100ms and 1h") }
        if let duration, duration.seconds <= 0 { throw ValidationError("--duration must be positive") }
        if dryRun && (action ?? .alert) == .alert && config == nil { throw ValidationError("--dry-run needs an --action other than alert") }
        if let q = queueSize, !(1...1_000_000).contains(q) { throw ValidationError("--queue-size must be between 1 and 1000000") }
        if let m = metricsListen, ListenAddress.parse(m) == nil { throw ValidationError("--metrics-listen: expected host:port such as 127.0.0.1:9376") }
        if let u = falcosidekickURL, URL(string: u).map({ ($0.scheme == "http" || $0.scheme == "https") && $0.host != nil }) != true {
            throw ValidationError("--falcosidekick-url: expected an http:// or https:// URL")
        }
    }

    public func run() throws {
        // Before any thread starts (threads inherit the mask). A parent may have started us with
        // these blocked: unblock them.
        var wake: [Int32] = [-1, -1]
        if watchWakeFD < 0, pipe(&wake) == 0 {
            for fd in wake {
                _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
                _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            }
            watchWakeRead = wake[0]
            watchWakeFD = wake[1]
        }
        signal(SIGINT) { _ in
            watchStopRequested = 1
            watchWake()
        }
        signal(SIGTERM) { _ in
            watchStopRequested = 1
            watchWake()
        }
        signal(SIGHUP) { _ in
            watchReloadRequested = 1
            watchWake()
        }
        // A parent may have started us with these blocked (the mask is inherited): unblock them.
        var handled = sigset_t()
        sigemptyset(&handled)
        for s in [SIGINT, SIGTERM, SIGHUP] { sigaddset(&handled, s) }
        pthread_sigmask(SIG_UNBLOCK, &handled, nil)
        var setup = try WatchSetup(command: self)
        let agent = try setup.makeAgent()
        let watcher = agent.watcher
        let deadline = duration.map { Date().addingTimeInterval($0.seconds) }
        var warnedSockDiag = false
        var warnedCapture = false
        while watchStopRequested == 0 {
            if watchReloadRequested != 0 {
                watchReloadRequested = 0
                setup.reload(agent)
            }
            let passStart = Date()
            agent.pass()
            setup.endpoints.record(agent)
            if !warnedSockDiag, let e = setup.sockDiag.firstError {
                warnedSockDiag = true
                Terminal.error("per-connection counters unavailable (\(e.description)); the bandwidth detector uses interface counters")
            }
            if !warnedCapture, let e = (watcher.capture as? LiveCapture)?.firstError {
                warnedCapture = true
                Terminal.error("packet capture unavailable in some namespaces (\(e.description)); protocol evidence is missing there")
            }
            for r in agent.takeResponseFailures() { Terminal.error("\(r.response.action) \(r.response.target): \(r.response.result)") }
            if let deadline, Date() >= deadline { break }
            // A fixed cadence (the pass's own time is not added to the interval). One wait on the
            // signal pipe until the next pass or the deadline: a signal ends it at once (polling
            // flags in 50 ms sleeps woke the agent 20 times a second for nothing).
            let every = setup.interval
            let next = max(passStart.addingTimeInterval(every), Date().addingTimeInterval(every / 10))
            Self.wait(until: deadline.map { min($0, next) } ?? next, wakeFD: watchWakeRead)
        }
        (watcher.capture as? LiveCapture)?.stop()
        agent.finish()
        setup.endpoints.stop()
        for r in agent.takeResponseFailures() { Terminal.error("\(r.response.action) \(r.response.target): \(r.response.result)") }
        // What the detectors raised against what the sinks wrote (drops counted): nothing is lost silently.
        let sinks = agent.sinkStats.map { st in
            "sink \(st.name): \(st.alertsWritten) alerts written, \(st.alertsDropped) dropped, \(st.dropped) records dropped, \(st.failed) failed"
                + (st.queued > 0 ? ", \(st.queued) still queued at exit" : "")
                + (st.lastError.map { " (last error: \($0))" } ?? "")
        }
        let hits = watcher.exceptions.hits.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
        Terminal.error("watch: \(watcher.passes) passes, \(agent.alertsRaised) alerts raised, \(watcher.store.evicted) containers gone; " + sinks.joined(separator: "; ")
            + (hits.isEmpty ? "" : "; silenced by exceptions: " + hits.joined(separator: ", ")))
    }

    /// Waits until `end` or until a signal handler wrote to the pipe `wakeFD` reads (drained
    /// here); without a pipe, in steps of 50 ms checking the flags.
    static func wait(until end: Date, wakeFD: Int32) {
        while watchStopRequested == 0 && watchReloadRequested == 0 {
            let left = end.timeIntervalSinceNow
            if left <= 0 { return }
            guard wakeFD >= 0 else {
                usleep(UInt32(min(left, 0.05) * 1_000_000))
                continue
            }
            var p = pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)
            if poll(&p, 1, Int32(min(left * 1000, 60_000).rounded(.up))) > 0 {
                var drain = [UInt8](repeating: 0, count: 64)
                while read(wakeFD, &drain, drain.count) > 0 {}
            }
        }
    }

    /// `--container` values as id prefixes: ids as given, names through the engine. A name no
    /// engine resolves is an error, never a silent watch of nothing.
    static func resolveContainers(_ containers: [String], _ engine: EngineClient?) throws -> [String] {
        let known: [String: ContainerMetadata]
        do throws(MinewatchError) {
            known = try engine?.containers() ?? [:]
        } catch {
            known = [:]
            Terminal.error("engine: \(error.description)")
        }
        return try containers.map { c in
            if let hit = known.first(where: { $0.value.name == c || $0.value.k8s?.pod == c }) { return hit.key }
            let lower = c.lowercased()
            if lower.count >= 4, lower.allSatisfy(\.isHexDigit) { return lower }
            throw ValidationError("--container \(c): no running container has this name\(engine == nil ? " (no engine socket to look names up; give an id)" : "") and it is not a container id")
        }
    }
}

extension ResponseAction: ExpressibleByArgument {}
extension DetectorID: ExpressibleByArgument {}

