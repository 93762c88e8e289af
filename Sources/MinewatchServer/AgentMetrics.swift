import Foundation
import MinewatchModel
import MinewatchSinks
import Prometheus
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The agent's Prometheus metrics (swift-prometheus's registry, text exposition at /metrics).
/// Names follow Prometheus conventions: one `minewatch_` prefix, base units, `_total` counters,
/// labels of low cardinality only (detector, severity, family, sink, exception; never container
/// ids). The watch loop calls `record` once per pass; scrapes read the registry concurrently.
public final class AgentMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()
    struct Last {
        var sinks: [String: SinkStats] = [:]
        var captureDrops: [String: Int] = [:]
        var cpuSeconds: Double = 0
        var exceptionHits: [String: Int] = [:]
        var compute: [String: Double] = [:]
    }
    let last = Mutex(Last())
    let passDuration: ValueHistogram
    let containers: Gauge
    let passes: Counter
    let memory: Gauge
    let cpu: Counter
    let captureDropped: Counter
    let rules: Gauge
    let exceptionsLoaded: Gauge

    public init() {
        passDuration = registry.makeValueHistogram(name: "minewatch_pass_duration_seconds",
                                                   buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10],
                                                   help: "Time one watch pass took (sampling the host and every detector).")
        containers = registry.makeGauge(name: "minewatch_containers_watched", help: "Containers seen in the last pass.")
        passes = registry.makeCounter(name: "minewatch_passes_total", help: "Watch passes run.")
        memory = registry.makeGauge(name: "minewatch_agent_resident_memory_bytes", help: "Resident memory of the agent.")
        cpu = registry.makeCounter(name: "minewatch_agent_cpu_seconds_total", help: "CPU time the agent used (user and system).")
        captureDropped = registry.makeCounter(name: "minewatch_capture_dropped_packets_total",
                                              help: "Packets the kernel dropped from the agent's capture rings (protocol evidence may be incomplete).")
        rules = registry.makeGauge(name: "minewatch_rules_loaded", help: "Rules in force.")
        exceptionsLoaded = registry.makeGauge(name: "minewatch_exceptions_loaded", help: "Exceptions in force.")
    }

    /// What one pass did.
    public func record(passSeconds: Double, containers n: Int, alerts: [Alert], silenced: [(alert: Alert, exception: String)],
                       exceptionHits: [String: Int], sinks: [SinkStats], telemetry: [ContainerTelemetry]) {
        passDuration.record(passSeconds)
        containers.set(Double(n))
        passes.increment()
        for a in alerts {
            registry.makeCounter(name: "minewatch_alerts_total",
                                 labels: [("detector", a.detector.rawValue), ("severity", a.severity.rawValue), ("family", a.family ?? "none")],
                                 help: "Alerts emitted, by detector, severity and family.").increment()
        }
        for s in silenced {
            registry.makeCounter(name: "minewatch_alerts_silenced_total", labels: [("detector", s.alert.detector.rawValue), ("exception", s.exception)],
                                 help: "Alerts an exception silenced (not emitted), by detector and exception.").increment()
        }
        last.withLock { l in
            for (name, hits) in exceptionHits {
                let g = registry.makeGauge(name: "minewatch_exception_hits", labels: [("exception", name)],
                                           help: "Alerts each exception in force has silenced since the agent started.")
                if l.exceptionHits[name] != hits { g.set(Double(hits)) }
            }
            l.exceptionHits = exceptionHits
            Self.recordSinks(sinks, registry: registry, last: &l.sinks)
            var drops: [String: Int] = [:]
            for t in telemetry {
                guard let d = t.captureDrops else { continue }
                drops[t.container.id] = d
                let before = l.captureDrops[t.container.id] ?? 0
                if d > before { captureDropped.increment(by: Int64(d - before)) }
            }
            l.captureDrops = drops
            let cpuNow = Self.cpuSeconds()
            if cpuNow > l.cpuSeconds { cpu.increment(by: cpuNow - l.cpuSeconds) }
            l.cpuSeconds = cpuNow
        }
        if let rss = Self.residentBytes() { memory.set(Double(rss)) }
    }

    /// Running totals of what reading processes' memory and threads cost (they restart from 0
    /// when the detectors are rebuilt: a total that went down counts as a restart).
    public func recordCompute(fpuSamples: Int, fpuStoppedSeconds: Double, memoryScannedBytes: Int64, memoryScannedProcesses: Int) {
        let now: [(String, String, Double)] = [
            ("minewatch_fpu_samples_total", "Rounding-mode samples of busy threads taken with ptrace.", Double(fpuSamples)),
            ("minewatch_fpu_stopped_seconds_total", "Time those samples kept the sampled threads stopped.", fpuStoppedSeconds),
            ("minewatch_memory_scanned_bytes_total", "Process memory read with process_vm_readv and scanned with the rules.", Double(memoryScannedBytes)),
            ("minewatch_memory_scanned_processes_total", "Processes whose memory was scanned.", Double(memoryScannedProcesses)),
        ]
        last.withLock { l in
            for (name, help, value) in now {
                let before = l.compute[name] ?? 0
                let delta = value >= before ? value - before : value
                if delta > 0 { registry.makeCounter(name: name, help: help).increment(by: delta) }
                l.compute[name] = value
            }
        }
    }

    public func setLoaded(rules n: Int, exceptions e: Int) {
        rules.set(Double(n))
        exceptionsLoaded.set(Double(e))
    }

    /// Counts a configuration reload (SIGHUP) by result (ok, failed).
    public func reloaded(ok: Bool) {
        registry.makeCounter(name: "minewatch_config_reloads_total", labels: [("result", ok ? "ok" : "failed")],
                             help: "Configuration reloads (SIGHUP), by result.").increment()
    }

    /// The text exposition format.
    public func exposition() -> [UInt8] { registry.emitToBuffer() }

    /// Each sink's queue length, and what it wrote, dropped and failed since `last` (updated).
    static func recordSinks(_ sinks: [SinkStats], registry: PrometheusCollectorRegistry, last: inout [String: SinkStats]) {
        for s in sinks {
            let prev = last[s.name]
            let labels = [("sink", s.name)]
            registry.makeGauge(name: "minewatch_sink_queue_length", labels: labels, help: "Records waiting in a sink's queue.").set(Double(s.queued))
            func bump(_ name: String, _ help: String, _ now: Int, _ before: Int?) {
                let c = registry.makeCounter(name: name, labels: labels, help: help)
                if now > (before ?? 0) { c.increment(by: Int64(now - (before ?? 0))) }
            }
            bump("minewatch_sink_written_total", "Records a sink wrote.", s.written, prev?.written)
            bump("minewatch_sink_dropped_total", "Records a sink's full queue refused (the sink was too slow).", s.dropped, prev?.dropped)
            bump("minewatch_sink_failed_total", "Records a sink failed to write (after its retries).", s.failed, prev?.failed)
            last[s.name] = s
        }
    }

    static func cpuSeconds() -> Double {
        var ru = rusage()
        guard getrusage(Int32(RUSAGE_SELF.rawValue), &ru) == 0 else { return 0 }
        return Double(ru.ru_utime.tv_sec) + Double(ru.ru_utime.tv_usec) / 1e6 + Double(ru.ru_stime.tv_sec) + Double(ru.ru_stime.tv_usec) / 1e6
    }

    static func residentBytes() -> UInt64? {
        guard let s = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return nil }
        let f = s.split(separator: " ")
        guard f.count > 1, let pages = UInt64(f[1]) else { return nil }
        return pages * UInt64(sysconf(Int32(_SC_PAGESIZE)))
    }
}
