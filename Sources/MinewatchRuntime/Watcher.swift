import Foundation
import MinewatchCore
import MinewatchDetectors
import MinewatchHost
import MinewatchSignatures

/// The host side of `watch`: every interval, finds container processes through procfs, runs the
/// detectors and hands each new alert to `emit` (one alert per container per detector).
public final class Watcher: @unchecked Sendable {
    let proc: ProcfsReader
    let clock: Clock
    let process: MinerProcessDetector
    let poolContact: PoolContactDetector
    public var cpu = CPUDetector()
    public var drift = DriftDetector()
    let cgroups: CgroupReader
    /// CPU samples per container (bounded to the detector's window plus a margin).
    var cpuSamples: [String: [CPUDetector.Sample]] = [:]
    /// First time a pool contact was seen per container (its evidence start).
    var contactSince: [String: Date] = [:]
    let bootTime: Date
    let ticksPerSecond: Double
    /// (container id, detector) pairs already alerted.
    var alerted: Set<String> = []
    /// (pid, start ticks, executable) already inspected: a process is scanned once per program it
    /// runs, and pid reuse is noticed.
    var seen: Set<String> = []
    public var includeHost = false
    /// Names and images by container id (from an engine API); nil when there is none.
    public var describe: (@Sendable (String) -> (name: String, image: String)?)?

    public init(rules: CompiledRules, proc: ProcfsReader = ProcfsReader(), cgroups: CgroupReader = CgroupReader(),
                clock: Clock = SystemClock()) {
        self.proc = proc
        self.cgroups = cgroups
        self.clock = clock
        process = MinerProcessDetector(rules: rules, procRoot: proc.root)
        poolContact = PoolContactDetector(ports: rules.ruleSet.minerPorts)
        ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))
        let uptime = (try? String(contentsOfFile: "\(proc.root)/uptime", encoding: .utf8))?.split(separator: " ").first.flatMap { Double($0) } ?? 0
        bootTime = Date().addingTimeInterval(-uptime)
    }

    /// One pass over all processes. Returns the new alerts.
    public func poll() -> [Alert] {
        var out: [Alert] = []
        let me = getpid()
        // One read of every process per pass; processes that vanish mid-read are skipped.
        let samples = proc.pids().filter { $0 != me }.compactMap { proc.process($0) }
        for s in samples {
            let pid = s.pid
            guard let c = s.container ?? (includeHost ? ContainerRef(id: "host", runtime: .podman, cgroupPath: "/") : nil) else { continue }
            // pid + start time survive exec, so the executable is part of the key: a process that
            // execs a miner (runc init, a shell script's `exec`) is inspected again.
            let key = "\(pid):\(s.startTicks):\(s.exe ?? s.comm)"
            if seen.contains(key) { continue }
            seen.insert(key)
            let alertKey = "\(c.id)/miner-process"
            if alerted.contains(alertKey) { continue }
            let env = proc.environment(pid, keep: MinerProcessDetector.environmentKeys)
            let findings = process.inspect(ProcessObservation(sample: s, environment: env))
            guard let worst = findings.max(by: { $0.severity < $1.severity }) else { continue }
            alerted.insert(alertKey)
            let now = clock.now()
            let started = startDate(s)
            let family = findings.compactMap(\.family).first
            let where_ = Set(findings.map(\.path)).sorted().joined(separator: ", ")
            out.append(Alert(
                time: now,
                container: alertContainer(c),
                detector: "miner-process", severity: worst.severity, family: family,
                summary: "\(family ?? "unknown") miner running as pid \(pid) (\(s.comm)): \(worst.title) in \(where_)",
                evidence: findings.flatMap { f in f.evidence.map { var e = $0; e.name = "\(f.ruleId):\(e.name)"; return e } },
                metrics: ["findings": Double(findings.count)],
                pid: pid, exe: s.exe, startedAt: started, detectedAt: now,
                timeToDetect: max(0, now.timeIntervalSince(started))))
        }
        out += pollDrift(samples)
        out += pollNetwork(samples)
        out += pollCPU(samples)
        // Forget processes that are gone so the set stays bounded.
        if seen.count > 100_000 { seen.removeAll() }
        return out
    }

    /// The alert's container block; asks the engine once per alert.
    func alertContainer(_ c: ContainerRef) -> Alert.Container {
        let d = describe?(c.id)
        return .init(id: c.id, name: d?.name, image: d?.image, runtime: c.runtime.rawValue)
    }

    /// When a process started (its start ticks after boot).
    func startDate(_ s: ProcessSample) -> Date {
        bootTime.addingTimeInterval(Double(s.startTicks) / ticksPerSecond)
    }

    /// Drift: once per container, for processes not seen before.
    func pollDrift(_ samples: [ProcessSample]) -> [Alert] {
        var out: [Alert] = []
        var upper: [String: String?] = [:]
        for s in samples {
            guard let c = s.container, let exe = s.exe, !alerted.contains("\(c.id)/drift") else { continue }
            // The runtime's own init (runc's "runc:[2:INIT]", run from a cloned memfd) is briefly a
            // process of the container while it starts: not drift.
            if s.comm.hasPrefix("runc:[") || exe.contains("runc_cloned") { continue }
            let key = "drift:\(s.pid):\(s.startTicks):\(exe)"
            if seen.contains(key) { continue }
            seen.insert(key)
            if upper[c.id] == nil { upper[c.id] = .some(proc.mountinfo(s.pid).flatMap(DriftDetector.upperDir)) }
            let reasons = drift.reasons(exeLink: exe, upperDir: upper[c.id] ?? nil)
            guard !reasons.isEmpty else { continue }
            alerted.insert("\(c.id)/drift")
            let now = clock.now()
            let started = startDate(s)
            out.append(Alert(
                time: now,
                container: alertContainer(c),
                detector: "drift", severity: .medium, family: nil,
                summary: "executable not in the image runs as pid \(s.pid) (\(s.comm)): \(reasons.joined(separator: "; "))",
                evidence: [Evidence(kind: .attribute, name: "exe", value: exe)] + reasons.map { Evidence(kind: .attribute, name: "reason", value: $0) },
                metrics: [:], pid: s.pid, exe: exe, startedAt: started, detectedAt: now,
                timeToDetect: max(0, now.timeIntervalSince(started))))
        }
        return out
    }

    /// CPU at the limit for the window, for containers that already have miner evidence.
    func pollCPU(_ samples: [ProcessSample]) -> [Alert] {
        var out: [Alert] = []
        let now = clock.now()
        var done: Set<String> = []
        for s in samples {
            guard let c = s.container, done.insert(c.id).inserted, let st = cgroups.stats(paths: s.cgroupPaths) else { continue }
            var list = cpuSamples[c.id, default: []]
            list.append(.init(time: now, cpuNanos: st.cpuNanos, limitCores: st.cpuLimitCores))
            list.removeAll { now.timeIntervalSince($0.time) > cpu.window * 2 + 10 }
            cpuSamples[c.id] = list
            let key = "\(c.id)/cpu-miner"
            let evidence = ["miner-process", "pool-contact", "drift"].filter { alerted.contains("\(c.id)/\($0)") }
            guard !alerted.contains(key), !evidence.isEmpty, let hit = cpu.sustained(list) else { continue }
            alerted.insert(key)
            out.append(Alert(
                time: now,
                container: alertContainer(c),
                detector: "cpu-miner", severity: .high, family: nil,
                summary: String(format: "CPU at %.2f of %.2f cores for %.0f s, with %@", hit.cores, hit.limit, now.timeIntervalSince(hit.since),
                                evidence.joined(separator: " and ")),
                evidence: evidence.map { Evidence(kind: .attribute, name: "with", value: $0) },
                metrics: ["cores": hit.cores, "limitCores": hit.limit, "seconds": now.timeIntervalSince(hit.since)],
                pid: nil, exe: nil, startedAt: hit.since, detectedAt: now, timeToDetect: now.timeIntervalSince(hit.since)))
        }
        cpuSamples = cpuSamples.filter { done.contains($0.key) }  // containers that are gone
        return out
    }

    /// Pool contact, once per container: one process per network namespace is enough to read it.
    func pollNetwork(_ samples: [ProcessSample]) -> [Alert] {
        var out: [Alert] = []
        var namespaces: Set<UInt64> = []
        for s in samples {
            let pid = s.pid
            guard let c = s.container, let ns = s.netns else { continue }
            let key = "\(c.id)/pool-contact"
            if alerted.contains(key) || !namespaces.insert(ns).inserted { continue }
            let hits = poolContact.contacts(proc.sockets(pid))
            guard !hits.isEmpty else { continue }
            let now = clock.now()
            let since = contactSince[c.id] ?? now
            contactSince[c.id] = since
            alerted.insert(key)
            let endpoints = Set(hits.map { "\($0.remoteAddress):\($0.remotePort)" }).sorted()
            out.append(Alert(
                time: now,
                container: alertContainer(c),
                detector: "pool-contact", severity: .low, family: nil,
                summary: "outbound connection\(endpoints.count == 1 ? "" : "s") to mining-pool port\(endpoints.count == 1 ? "" : "s"): \(endpoints.prefix(5).joined(separator: ", "))",
                evidence: endpoints.map { Evidence(kind: .pool, name: "connection", value: $0) },
                metrics: ["connections": Double(hits.count), "destinations": Double(endpoints.count)],
                pid: pid, exe: s.exe, startedAt: since, detectedAt: now, timeToDetect: now.timeIntervalSince(since)))
        }
        return out
    }
}
