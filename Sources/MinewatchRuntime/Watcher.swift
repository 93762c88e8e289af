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
    let ruleSet: RuleSet
    /// Live packet capture per container namespace (protocol evidence); nil: off.
    public var capture: LiveCapture?
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
    /// Per namespace: the last TCP activity value and when it last changed (for capture rings).
    var tcpSeen: [UInt64: (value: UInt64, at: Date)] = [:]
    var capturePasses = 0
    /// Per namespace: interface packet count and TCP activity at the last snmp read.
    var lastActivity: [UInt64: (packets: UInt64, tcp: UInt64, connections: UInt64)] = [:]
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
    var socketCache: [UInt64: (activity: UInt64, connections: UInt64, sockets: [SocketEntry])] = [:]
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
        ruleSet = rules.ruleSet
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
        out += pollProtocol(views)
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
            let evidence = ["miner-process", "pool-contact", "drift", "mining-protocol"].filter { alerted.contains("\(c.id)/\($0)") }
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
        var netns: UInt64?
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
        var nsConnections: [UInt64: UInt64?] = [:]
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
                    nsConnections[ns] = .some(last.connections)
                } else {
                    let c = proc.tcpCounters(first.pid)
                    let tcp = c.map { $0.connections &+ $0.segments }
                    nsActivity[ns] = .some(tcp)
                    nsConnections[ns] = .some(c?.connections)
                    if let packets, let tcp, let c { lastActivity[ns] = (packets, tcp, c.connections) }
                }
            }
            if nsSockets[ns] == nil {
                // No TCP segment moved (loopback included) and no connection opened since the last
                // read: its sockets and their counters are as they were, so the socket dump (which
                // walks the host's whole TCP table) is skipped. Idle containers cost no dump.
                let activity = nsActivity[ns] ?? nil
                let connections = nsConnections[ns] ?? nil
                if let activity, let cached = socketCache[ns], cached.activity == activity {
                    nsSockets[ns] = cached.sockets
                } else if let activity, let connections, let cached = socketCache[ns], cached.connections == connections,
                          let fresh = socketStats?.refresh(cached.sockets.filter { $0.proto == .tcp }, pid: first.pid, netns: ns) {
                    // Segments moved but no connection opened, failed or reset: the same sockets,
                    // asked for one by one (cheaper than a dump, which walks the whole TCP table).
                    let list = fresh + cached.sockets.filter { $0.proto != .tcp }
                    nsSockets[ns] = list
                    socketCache[ns] = (activity, connections, list)
                } else {
                    // TCP with counters from sock_diag (else /proc/<pid>/net/tcp*); UDP sockets with
                    // their endpoints for telemetry from /proc/<pid>/net/udp*.
                    let tcp = socketStats?.tcpSockets(pid: first.pid, netns: ns)
                    let list = tcp.map { $0 + proc.sockets(first.pid, tcp: false) } ?? proc.sockets(first.pid)
                    nsSockets[ns] = list
                    if let activity { socketCache[ns] = (activity, connections ?? 0, list) }
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
                pid: first.pid, exe: first.exe, netns: ns)
        }
        socketStats?.retain(namespaces: Set(nsSockets.keys))
        if let capture {
            // Containers with their own namespace (the host's is not captured), while they have TCP
            // traffic: a ring opens at the first pass that sees TCP segments move and closes after
            // two idle minutes, so idle containers cost no ring (a session's first second may be missed).
            var wanted: [UInt64: Int32] = [:]
            for (_, v) in views where !v.observation.hostNetwork {
                guard let ns = v.netns else { continue }
                if let tcp = nsActivity[ns] ?? nil {
                    if let seen = tcpSeen[ns] {
                        if seen.value != tcp { tcpSeen[ns] = (tcp, now) }
                    } else {
                        // Namespaces there at start count as idle until they move; a new one
                        // (its counters start at 0) is active if anything moved.
                        tcpSeen[ns] = (tcp, capturePasses > 0 && tcp > 0 ? now : .distantPast)
                    }
                }
                if let seen = tcpSeen[ns], now.timeIntervalSince(seen.at) < 120, seen.at != .distantPast { wanted[ns] = v.pid }
            }
            tcpSeen = tcpSeen.filter { nsSockets[$0.key] != nil }
            capturePasses += 1
            capture.sync(wanted)
        }
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
            let others = ["miner-process", "pool-contact", "drift", "mining-protocol"].filter { alerted.contains("\(id)/\($0)") }
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

    /// Detector 6: what the container said on the wire (live capture): a Stratum login with jobs,
    /// PacketCrypt announcement posts, getwork, or a TLS/HTTP name of a pool domain.
    func pollProtocol(_ views: [String: NetView]) -> [Alert] {
        guard let capture else { return [] }
        var out: [Alert] = []
        for (id, v) in views.sorted(by: { $0.key < $1.key }) {
            guard !alerted.contains("\(id)/mining-protocol"), let ns = v.netns, !v.observation.hostNetwork else { continue }
            // Sessions this container opened (not ones it serves: a pool in a container is not a miner).
            let o = v.observation
            let ownPorts = Set(o.sockets.map(\.localPort))
            let sessions = capture.sessions(ns).filter { ownPorts.contains($0.clientPort) || !o.listenPorts.contains($0.serverPort) }
            guard !sessions.isEmpty else { continue }
            var summary: String?
            var severity = Severity.critical
            var family: String?
            var evidence: [Evidence] = []
            var first = Date()
            let stratum = sessions.filter { $0.facts.protocolName.hasPrefix("stratum") && ($0.facts.login != nil || $0.facts.jobs > 0 || $0.facts.submits > 0) }
            let pkt = sessions.filter { $0.facts.protocolName == "packetcrypt" }
            if let s = stratum.max(by: { $0.facts.jobs < $1.facts.jobs }) {
                let f = s.facts
                family = CaptureAnalyzer.family(agent: f.agent)
                summary = "Stratum\(f.protocolName == "stratum-monero" ? " (Monero)" : "") session to \(s.server)"
                    + (f.login.map { " logged in as \($0)" } ?? "") + (f.agent.map { " (agent \($0))" } ?? "")
                    + ": \(f.jobs) jobs, \(f.submits) shares, \(f.accepted) accepted"
                if f.jobs == 0 && f.accepted == 0 { severity = .high }
                evidence.append(Evidence(kind: .pool, name: "pool", value: s.server))
                if let l = f.login { evidence.append(WireEvidence.login(l)) }
                if let a = f.agent { evidence.append(Evidence(kind: .attribute, name: "agent", value: a)) }
                first = s.first
            } else if !pkt.isEmpty, pkt.contains(where: { $0.facts.announcements > 0 })
                        || clock.now().timeIntervalSince(pkt.map(\.first).min() ?? Date()) > 30 {
                // Waits (up to 30 s) for a counted batch, so the alert can say how many.
                family = "packetcrypt"
                let anns = pkt.reduce(0) { $0 + $1.facts.announcements }, posts = pkt.reduce(0) { $0 + $1.facts.annPosts }
                let handlers = Set(pkt.filter { $0.facts.annPosts > 0 }.map(\.server)).sorted()
                let pools = Set(pkt.filter { $0.facts.configPolls > 0 }.map(\.server)).sorted()
                if posts == 0 { severity = .high }
                summary = "PacketCrypt: \(anns) announcements in \(posts) posts to \(handlers.count) handler\(handlers.count == 1 ? "" : "s")"
                    + ", config.json polls of \(pools.count) pool\(pools.count == 1 ? "" : "s")" + (pkt.compactMap(\.facts.payto).first.map { ", payto \($0)" } ?? "")
                evidence += handlers.map { Evidence(kind: .pool, name: "handler", value: $0) } + pools.map { Evidence(kind: .pool, name: "pool", value: $0) }
                if let p = pkt.compactMap(\.facts.payto).first { evidence.append(WireEvidence.payto(p)) }
                first = pkt.map(\.first).min() ?? first
            } else if let g = sessions.first(where: { $0.facts.getwork > 0 }) {
                severity = .high
                summary = "getwork/getblocktemplate mining requests to \(g.server)"
                evidence.append(Evidence(kind: .pool, name: "server", value: g.server))
                first = g.first
            } else if let (s, domain) = sessions.lazy.compactMap({ s in (s.facts.sni ?? s.facts.host).flatMap { self.ruleSet.poolDomain(for: $0) }.map { (s, $0) } }).first {
                severity = .medium
                summary = "connection to mining pool domain \(domain) (\(s.facts.sni != nil ? "TLS server name" : "HTTP Host") \(s.facts.sni ?? s.facts.host ?? ""), \(s.server))"
                evidence.append(Evidence(kind: .pool, name: domain, value: s.server))
                first = s.first
            }
            guard let summary else { continue }
            alerted.insert("\(id)/mining-protocol")
            let now = clock.now()
            out.append(Alert(time: now, container: alertContainer(v.container), detector: "mining-protocol", severity: severity, family: family,
                             summary: summary, evidence: evidence, metrics: ["sessions": Double(sessions.count)], pid: v.pid, exe: v.exe,
                             startedAt: first, detectedAt: now, timeToDetect: max(0, now.timeIntervalSince(first))))
        }
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
