import Foundation
import MinewatchCore
import MinewatchDetectors
import MinewatchHost
import MinewatchNetwork
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
    let socketStats: SocketStatsSource?
    /// The bandwidth model every container's detector uses.
    public var bandwidthModel = BandwidthModel() {
        didSet { bandwidth = [:] }
    }
    var bandwidth: [String: BandwidthDetector] = [:]
    /// Latest per-container telemetry (one entry per container seen in the last pass).
    public internal(set) var telemetry: [String: ContainerTelemetry] = [:]
    /// Processes of each container in the last pass (for responses).
    public internal(set) var processes: [String: [ProcessSample]] = [:]
    var hostNetns: UInt64?
    /// Per namespace: interface packet count and TCP activity at the last snmp read.
    var lastActivity: [UInt64: (packets: UInt64, tcp: UInt64)] = [:]
    let statFiles = ProcStatFiles()
    /// kernel.pid_max of a million or more (the 64-bit default is 4194304).
    lazy var largePidSpace: Bool = {
        let text = (try? String(contentsOfFile: "\(proc.root)/sys/kernel/pid_max", encoding: .utf8)) ?? ""
        return (Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0) >= 1_000_000
    }()
    /// Processes of the last pass by pid.
    var known: [Int32: ProcessSample] = [:]
    /// Socket inodes held by each container's processes, with the namespace activity they were read at.
    var ownerCache: [String: (activity: UInt64, owners: [UInt64: Int32], pids: [Int32])] = [:]
    /// Last socket list per namespace and the packet count it was read at.
    var socketCache: [UInt64: (activity: UInt64, sockets: [SocketEntry])] = [:]
    /// Memory per container from the last pass.
    var memory: [String: UInt64] = [:]
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
    /// When not empty, only containers whose id starts with one of these are watched.
    public var onlyContainers: [String] = []
    /// Names and images by container id (from an engine API); nil when there is none.
    public var describe: (@Sendable (String) -> (name: String, image: String)?)?
    /// The same for telemetry, allowed to answer from a cache (nil: use `describe`).
    public var describeCached: (@Sendable (String) -> (name: String, image: String)?)?

    /// `sockets` gives per-connection byte counters (sock_diag); without it (or when it cannot
    /// answer) sockets come from /proc/<pid>/net/tcp and traffic from interface counters.
    public init(rules: CompiledRules, proc: ProcfsReader = ProcfsReader(), cgroups: CgroupReader = CgroupReader(),
                clock: Clock = SystemClock(), sockets: SocketStatsSource? = SockDiagReader()) {
        self.proc = proc
        self.cgroups = cgroups
        self.socketStats = sockets
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
        // Processes seen in the last pass are re-read cheaply (stat and the exe link). Host
        // processes (outside containers, not watched) are not re-read at all while their pid stays
        // listed: with a pid space of a million or more, a pid cannot be reused within a pass.
        var samples = proc.pids().filter { $0 != me }.compactMap { pid -> ProcessSample? in
            let k = known[pid]
            if let k, k.container == nil, !includeHost, largePidSpace { return k }
            return proc.process(pid, known: k, followExe: k?.container != nil || includeHost, files: statFiles)
        }
        statFiles.retain(Set(samples.map(\.pid)))
        known = Dictionary(samples.map { ($0.pid, $0) }, uniquingKeysWith: { a, _ in a })
        if !onlyContainers.isEmpty {
            samples.removeAll { s in !onlyContainers.contains { p in s.container?.id.hasPrefix(p) == true } }
        }
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
        let views = networkViews(samples)
        out += pollPoolContact(views)
        out += pollBandwidth(views)
        out += pollCPU(samples)
        updateTelemetry(samples, views)
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
            memory[c.id] = st.memoryBytes
            list.removeAll { now.timeIntervalSince($0.time) > cpu.window * 2 + 10 }
            cpuSamples[c.id] = list
            let key = "\(c.id)/cpu-miner"
            let evidence = ["miner-process", "pool-contact", "drift"].filter { alerted.contains("\(c.id)/\($0)") }
            guard !alerted.contains(key), !evidence.isEmpty, let hit = cpu.sustained(list) else { continue }
            alerted.insert(key)
            // The busiest process of the container is the one to name (and to kill).
            let top = samples.filter { $0.container?.id == c.id }.max { $0.cpuTicks < $1.cpuTicks }
            out.append(Alert(
                time: now,
                container: alertContainer(c),
                detector: "cpu-miner", severity: .high, family: nil,
                summary: String(format: "CPU at %.2f of %.2f cores for %.0f s, with %@", hit.cores, hit.limit, now.timeIntervalSince(hit.since),
                                evidence.joined(separator: " and ")),
                evidence: evidence.map { Evidence(kind: .attribute, name: "with", value: $0) },
                metrics: ["cores": hit.cores, "limitCores": hit.limit, "seconds": now.timeIntervalSince(hit.since)],
                pid: top?.pid, exe: top?.exe, startedAt: hit.since, detectedAt: now, timeToDetect: now.timeIntervalSince(hit.since)))
        }
        cpuSamples = cpuSamples.filter { done.contains($0.key) }  // containers that are gone
        memory = memory.filter { done.contains($0.key) }
        return out
    }

    /// One container's network view in a pass.
    struct NetView {
        var container: ContainerRef
        var observation: NetObservation
        /// Every TCP socket of the namespace (listeners included), for pool contact.
        var pid: Int32
        var exe: String?
    }

    /// Per container: its TCP sockets (from sock_diag when it answers, else /proc/<pid>/net/tcp),
    /// attributed by the socket inodes its processes hold, and its namespace's interface counters.
    func networkViews(_ samples: [ProcessSample]) -> [String: NetView] {
        if hostNetns == nil { hostNetns = proc.process(1)?.netns }
        let now = clock.now()
        var byContainer: [String: [ProcessSample]] = [:]
        var refs: [String: ContainerRef] = [:]
        for s in samples {
            guard let c = s.container else { continue }
            byContainer[c.id, default: []].append(s)
            refs[c.id] = c
        }
        var nsSockets: [UInt64: [SocketEntry]] = [:]
        var nsCounters: [UInt64: NetCounters?] = [:]
        var nsActivity: [UInt64: UInt64?] = [:]
        var views: [String: NetView] = [:]
        for (id, procs) in byContainer {
            guard let c = refs[id], let first = procs.first(where: { $0.netns != nil }), let ns = first.netns else { continue }
            let host = hostNetns == ns
            if nsCounters[ns] == nil { nsCounters[ns] = .some(proc.netCounters(first.pid)) }
            if nsActivity[ns] == nil {
                // net/snmp is costly to generate, so it is read only when some packet moved
                // (interface counters, loopback included, changed) since the last pass.
                let packets = (nsCounters[ns] ?? nil)?.activity
                if let packets, let last = lastActivity[ns], last.packets == packets {
                    nsActivity[ns] = .some(last.tcp)
                } else {
                    let tcp = proc.tcpActivity(first.pid)
                    nsActivity[ns] = .some(tcp)
                    if let packets, let tcp { lastActivity[ns] = (packets, tcp) }
                }
            }
            if nsSockets[ns] == nil {
                // No TCP segment moved (loopback included) and no connection opened since the last
                // read: its sockets and their counters are as they were, so the socket dump (which
                // walks the host's whole TCP table) is skipped. Idle containers cost no dump.
                let activity = nsActivity[ns] ?? nil
                if let activity, let cached = socketCache[ns], cached.activity == activity {
                    nsSockets[ns] = cached.sockets
                } else {
                    // TCP with counters from sock_diag (else /proc/<pid>/net/tcp*); UDP sockets with
                    // their endpoints for telemetry from /proc/<pid>/net/udp*.
                    let tcp = socketStats?.tcpSockets(pid: first.pid, netns: ns)
                    let list = tcp.map { $0 + proc.sockets(first.pid, tcp: false) } ?? proc.sockets(first.pid)
                    nsSockets[ns] = list
                    if let activity { socketCache[ns] = (activity, list) }
                }
            }
            let all = nsSockets[ns] ?? []
            // Which sockets its processes hold changes only with traffic or with its processes.
            var owners: [UInt64: Int32] = [:]
            let pids = procs.map(\.pid)
            let activity = nsActivity[ns] ?? nil
            if let activity, let cached = ownerCache[id], cached.activity == activity, cached.pids == pids {
                owners = cached.owners
            } else {
                for p in procs { for inode in proc.socketInodes(p.pid) { owners[inode] = p.pid } }
                if let activity { ownerCache[id] = (activity, owners, pids) }
            }
            // Sockets its processes hold; when fds cannot be read (not root), the whole namespace
            // (never on the host network, where that would mean every host connection).
            let mine = owners.isEmpty ? (host ? [] : all) : all.filter { owners[$0.inode] != nil }
            let listen = Set(all.filter { $0.proto == .tcp && $0.isListening }.map(\.localPort))
            views[id] = NetView(
                container: c,
                observation: NetObservation(time: now, sockets: mine, listenPorts: listen, interfaces: host ? nil : (nsCounters[ns] ?? nil),
                                            hostNetwork: host, owners: owners),
                pid: first.pid, exe: first.exe)
        }
        socketStats?.retain(namespaces: Set(nsSockets.keys))
        socketCache = socketCache.filter { nsSockets[$0.key] != nil }
        ownerCache = ownerCache.filter { views[$0.key] != nil }
        lastActivity = lastActivity.filter { nsSockets[$0.key] != nil }
        return views
    }

    /// Pool contact, once per container.
    func pollPoolContact(_ views: [String: NetView]) -> [Alert] {
        var out: [Alert] = []
        for (id, v) in views.sorted(by: { $0.key < $1.key }) {
            let key = "\(id)/pool-contact"
            if alerted.contains(key) { continue }
            let o = v.observation
            let hits = o.sockets.filter { $0.isEstablished && !o.listenPorts.contains($0.localPort) && poolContact.ports.contains($0.remotePort) }
            guard !hits.isEmpty else { continue }
            let now = clock.now()
            let since = contactSince[id] ?? now
            contactSince[id] = since
            alerted.insert(key)
            let endpoints = Set(hits.map { "\($0.remoteAddress):\($0.remotePort)" }).sorted()
            let pid = hits.compactMap { o.owners[$0.inode] }.first ?? v.pid
            out.append(Alert(
                time: now,
                container: alertContainer(v.container),
                detector: "pool-contact", severity: .low, family: nil,
                summary: "outbound connection\(endpoints.count == 1 ? "" : "s") to mining-pool port\(endpoints.count == 1 ? "" : "s"): \(endpoints.prefix(5).joined(separator: ", "))",
                evidence: endpoints.map { Evidence(kind: .pool, name: "connection", value: $0) },
                metrics: ["connections": Double(hits.count), "destinations": Double(endpoints.count)],
                pid: pid, exe: nil, startedAt: since, detectedAt: now, timeToDetect: now.timeIntervalSince(since)))
        }
        return out
    }

    /// The bandwidth-miner detector, per container.
    func pollBandwidth(_ views: [String: NetView]) -> [Alert] {
        var out: [Alert] = []
        for (id, v) in views.sorted(by: { $0.key < $1.key }) {
            var d = bandwidth[id] ?? BandwidthDetector(model: bandwidthModel)
            d.observe(v.observation)
            let verdict = alerted.contains("\(id)/bandwidth-miner") ? nil : d.verdict()
            bandwidth[id] = d
            guard let b = verdict else { continue }
            alerted.insert("\(id)/bandwidth-miner")
            let now = clock.now()
            let others = ["miner-process", "pool-contact", "drift"].filter { alerted.contains("\(id)/\($0)") }
            let corroborated = b.mirrored || b.polls || !others.isEmpty
            var why: [String] = []
            if b.mirrored { why.append("the same volume to \(b.destinations.count) destinations") }
            if b.polls { why.append("periodic small polls to an upload destination") }
            why += others
            let cores = telemetry[id]?.cpuCores
            let dests = b.destinations.map { "\($0.address) \(Self.rate($0.rate))" }
            var summary = "uploads \(Self.rate(b.uploadRate)) over outbound connections to \(b.destinations.count) destination"
                + "\(b.destinations.count == 1 ? "" : "s") (\(dests.prefix(4).joined(separator: ", "))), downloads \(Self.rate(b.downloadRate))"
                + String(format: " (%.0f:1), %d exchanges in %.0f s", b.ratio, b.exchanges, now.timeIntervalSince(b.since))
            if let cores { summary += String(format: ", CPU %.2f cores", cores) }
            if !why.isEmpty { summary += "; with \(why.joined(separator: ", "))" }
            var evidence = b.destinations.map { Evidence(kind: .pool, name: "destination", value: "\($0.address) (\(Self.rate($0.rate)))") }
            evidence += why.map { Evidence(kind: .attribute, name: "with", value: $0) }
            if v.observation.hostNetwork {
                evidence.append(Evidence(kind: .attribute, name: "network", value: "host network: no per-container interface counters; per-socket counters used"))
            }
            if !b.perConnection {
                evidence.append(Evidence(kind: .attribute, name: "counters", value: "no per-connection counters (sock_diag unavailable); namespace interface totals used"))
            }
            var metrics: [String: Double] = [
                "uploadBytesPerSecond": b.uploadRate, "downloadBytesPerSecond": b.downloadRate, "ratio": b.ratio,
                "destinations": Double(b.destinations.count), "exchanges": Double(b.exchanges), "connections": Double(b.connections),
                "windowSeconds": bandwidthModel.window,
            ]
            if let cores { metrics["cpuCores"] = cores }
            let owner = b.uploader ?? v.pid
            let started = b.since
            out.append(Alert(
                time: now, container: alertContainer(v.container), detector: "bandwidth-miner",
                severity: corroborated ? .high : .medium, family: nil, summary: summary, evidence: evidence, metrics: metrics,
                pid: owner, exe: processes[id]?.first { $0.pid == owner }?.exe, startedAt: started, detectedAt: now,
                timeToDetect: max(0, now.timeIntervalSince(started))))
        }
        bandwidth = bandwidth.filter { views[$0.key] != nil }
        return out
    }

    /// "1.2 MB/s" style.
    static func rate(_ bytesPerSecond: Double) -> String {
        let units = ["B/s", "kB/s", "MB/s", "GB/s"]
        var v = bytesPerSecond
        var i = 0
        while v >= 1000 && i < units.count - 1 { v /= 1000; i += 1 }
        return String(format: i == 0 ? "%.0f %@" : "%.1f %@", v, units[i])
    }
}
