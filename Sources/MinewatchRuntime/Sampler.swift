import Foundation
import MinewatchCore
import MinewatchHost
import MinewatchNetwork
#if canImport(Glibc)
import Glibc
#endif

/// One process of a container in one pass.
public struct ProcessSnapshot: Sendable {
    public var sample: ProcessSample
    /// True in the first pass that sees this process running this executable (pid, start time and
    /// executable: an exec into another program is new again).
    public var isNew: Bool
    /// Selected environment variables, read when the process is new.
    public var environment: [String: String]
    /// CPU cores it used since the last pass (nil in the first pass that sees it).
    public var cpuCores: Double?
    public init(sample: ProcessSample, isNew: Bool, environment: [String: String] = [:], cpuCores: Double? = nil) {
        self.sample = sample
        self.isNew = isNew
        self.environment = environment
        self.cpuCores = cpuCores
    }
    public var key: ProcessKey { ProcessKey(pid: sample.pid, startTicks: sample.startTicks, program: sample.exe ?? sample.comm) }
}

/// One process running one program: its pid, start time and executable (its name when the
/// executable is unknown). An exec into another program is another key.
public struct ProcessKey: Hashable, Sendable {
    public let pid: Int32
    public let startTicks: UInt64
    public let program: String
}

/// What the sampler read about one container in one pass: the only input of the detectors.
public struct ContainerSnapshot: Sendable {
    public var ref: ContainerRef
    public var time: Date
    public var processes: [ProcessSnapshot]
    public var cgroup: CgroupStats?
    /// Run-queue wait of its threads (ns, summed), when asked for (containers that may be judged on CPU).
    public var runQueueWaitNanos: UInt64?
    public var netns: UInt64?
    public var hostNetwork: Bool
    /// Sockets its processes hold (TCP with per-connection counters when sock_diag answered).
    public var sockets: [SocketEntry]
    /// TCP ports listening in its namespace: connections to them are inbound.
    public var listenPorts: Set<UInt16>
    /// Interface counters of its own namespace; nil on the host network.
    public var interfaces: NetCounters?
    /// Socket inode -> pid holding it.
    public var owners: [UInt64: Int32]
    /// The overlay upper directory of its root mount (files written since it started).
    public var upperDir: String?
    /// Mining-relevant sessions seen in its namespace's packets (capture on).
    public var sessions: [LiveSession]
    /// The packet ring of its namespace: open, and the packets the kernel dropped from it so far.
    public var capture: LiveCapture.RingStatus?
    /// DNS questions its namespace asked, most recent last (capture on).
    public var dnsQuestions: [String] = []
    /// Outbound connections the capture saw open and close where no pass saw their socket
    /// (capture on): their bytes belong to the container as much as its sockets' do.
    public var shortConnections: [CapturedFlow] = []
    /// Names its /etc/hosts gives addresses (`--add-host`, pinned names): address -> names.
    public var hostNames: [String: [String]] = [:]
    /// Nothing of the container ran since the last pass and it holds no TCP connection: no task
    /// of its cgroup used a nanosecond of CPU, its processes are the last pass's, its interface
    /// counters were not read again (see `HostSampler.idleCountersEvery`), and the capture has
    /// no ring, session, name or closed connection of its namespace. Such a pass tells the
    /// detectors nothing new but the time (see `Watcher.poll`).
    public var still = false

    /// The process that stands for the container (its first one with a network namespace).
    public var mainPid: Int32 { (processes.first { $0.sample.netns != nil } ?? processes.first)?.sample.pid ?? 0 }
    public var mainExe: String? { (processes.first { $0.sample.netns != nil } ?? processes.first)?.sample.exe }

    public init(ref: ContainerRef, time: Date, processes: [ProcessSnapshot], cgroup: CgroupStats? = nil, runQueueWaitNanos: UInt64? = nil,
                netns: UInt64? = nil, hostNetwork: Bool = false, sockets: [SocketEntry] = [], listenPorts: Set<UInt16> = [],
                interfaces: NetCounters? = nil, owners: [UInt64: Int32] = [:], upperDir: String? = nil, sessions: [LiveSession] = [],
                capture: LiveCapture.RingStatus? = nil) {
        self.ref = ref
        self.time = time
        self.processes = processes
        self.cgroup = cgroup
        self.runQueueWaitNanos = runQueueWaitNanos
        self.netns = netns
        self.hostNetwork = hostNetwork
        self.sockets = sockets
        self.listenPorts = listenPorts
        self.interfaces = interfaces
        self.owners = owners
        self.upperDir = upperDir
        self.sessions = sessions
        self.capture = capture
    }

    /// Its connections in the neutral form the bandwidth model reads.
    public var observation: NetObservation {
        var o = NetObservation(time: time, sockets: sockets, listenPorts: listenPorts, interfaces: interfaces, hostNetwork: hostNetwork, owners: owners)
        o.captured = capture != nil
        o.connections += shortConnections.map { f in
            ConnectionSample(id: f.id, remoteAddress: f.server, remotePort: f.serverPort, localPort: f.clientPort, inbound: false, established: false,
                             counters: ConnectionCounters(bytesSent: f.clientBytes, bytesReceived: f.serverBytes, segmentsIn: f.serverDataPackets))
        }
        return o
    }
}

extension NetObservation {
    /// From host telemetry: TCP connections (not listeners) of the sockets, inbound when to a
    /// listening port, with sock_diag's counters when present.
    public init(time: Date, sockets: [SocketEntry], listenPorts: Set<UInt16>, interfaces: NetCounters?, hostNetwork: Bool,
                owners: [UInt64: Int32] = [:]) {
        let conns = sockets.filter { $0.proto == .tcp && !$0.isListening && $0.remotePort != 0 }.map { s in
            ConnectionSample(id: s.inode, remoteAddress: s.remoteAddress, remotePort: s.remotePort, localPort: s.localPort,
                             inbound: listenPorts.contains(s.localPort), established: s.isEstablished,
                             counters: s.counters.map { ConnectionCounters(bytesSent: $0.bytesSent, bytesReceived: $0.bytesReceived, segmentsIn: $0.dataSegsIn) },
                             owner: owners[s.inode])
        }
        self.init(time: time, connections: conns,
                  interfaces: interfaces.map { InterfaceTotals(rxBytes: $0.rxBytes, txBytes: $0.txBytes, rxPackets: $0.rxPackets, txPackets: $0.txPackets) },
                  hostNetwork: hostNetwork)
    }
}

/// One pass over the host.
public struct HostSnapshot: Sendable {
    public var time: Date
    public var containers: [ContainerSnapshot]
}

/// Reads the host once per pass and produces one snapshot per container: processes, cgroup CPU
/// and memory, namespace counters, sockets with their counters, and what the packet capture saw.
/// It owns the caches that make sampling cheap (held stat files, socket lists and owners per
/// namespace while its TCP counters are unchanged, the upper directory per container) and
/// nothing else: what detectors remember lives in the container store.
public final class HostSampler {
    public let proc: ProcfsReader
    let cgroups: CgroupReader
    let socketStats: SocketStatsSource?
    let clock: WallClock
    /// Live packet capture per container namespace (protocol evidence); nil: off.
    public var capture: (any SessionSource)?
    public var includeHost = false
    /// When not empty, only containers whose id starts with one of these are sampled.
    public var onlyContainers: [String] = []
    /// Environment variables read for new processes.
    public var environmentKeys: Set<String> = []

    /// Per network namespace: what makes an unchanged namespace cost nothing.
    /// See `network`: the longest a namespace that only makes short connections goes without a
    /// socket dump.
    static let shortConnectionDumpEvery: TimeInterval = 10

    /// How many passes a process that looks unchanged (same name, CPU time and address-space
    /// size) goes between reads of its executable link.
    static let exeRecheckPasses = 15

    /// How long a namespace whose connections the capture follows (it has a ring) goes without
    /// a dump: its new connections are learned from the ring, so the walk is only a backstop
    /// (for listeners and UDP sockets, which no count covers).
    static let capturedDumpEvery: TimeInterval = 30
    /// How long a namespace goes without a dump when the sockets known (the last dump's, asked
    /// for again by id, and those the capture saw open) are as many as the kernel counts in its
    /// tables (sockstat: listeners and every other state included, TCP and UDP): the walk then
    /// would list nothing new but a socket that replaced a UDP one, or a TCP one the capture
    /// missed while another it knew closed in the same pass.
    static let accountedDumpEvery: TimeInterval = 300

    /// The longest an idle container's namespace (its cgroup used no CPU since the last pass, no
    /// TCP connection) goes with the interface counters last read.
    static let idleCountersEvery: TimeInterval = 30

    /// The namespace's TCP sockets without a dump: the last dump's, asked for again by id, and
    /// the connections the capture saw open since, asked for by their addresses (both ways round:
    /// the namespace may be either end), and how many of them count as established in the
    /// namespace's counters (CurrEstab: ESTABLISHED and CLOSE_WAIT). Nil when sockets cannot be
    /// asked for one by one.
    func knownConnections(_ cached: (activity: UInt64, connections: UInt64, established: UInt64, dumped: Date, list: [SocketEntry]),
                          pid: Int32, ns: UInt64) -> (list: [SocketEntry], established: Int)? {
        guard let stats = socketStats, var tcp = stats.refresh(cached.list.filter { $0.proto == .tcp }, pid: pid, netns: ns) else { return nil }
        func count(_ list: [SocketEntry]) -> Int { list.filter { $0.state == 1 || $0.state == 8 }.count }
        // The capture is asked even when the counts agree: a connection still opening (SYN_SENT,
        // a pool that does not answer) is not in CurrEstab but is in the capture.
        if let capture {
            let have = Set(tcp.map { CapturedFlow.key(localPort: $0.localPort, remoteAddress: $0.remoteAddress, remotePort: $0.remotePort) })
            let since = cached.dumped.addingTimeInterval(-2)
            var ask: [SocketEntry] = []
            for f in capture.openConnections(ns) where f.first >= since {
                for e in [SocketEntry.lookup(localAddress: f.client, localPort: f.clientPort, remoteAddress: f.server, remotePort: f.serverPort),
                          SocketEntry.lookup(localAddress: f.server, localPort: f.serverPort, remoteAddress: f.client, remotePort: f.clientPort)]
                    .compactMap({ $0 }) where !have.contains(CapturedFlow.key(localPort: e.localPort, remoteAddress: e.remoteAddress, remotePort: e.remotePort)) {
                    ask.append(e)
                }
            }
            guard ask.count <= 64 else { return nil }
            if !ask.isEmpty {
                guard let found = stats.refresh(ask, pid: pid, netns: ns) else { return nil }
                tcp += found
            }
        }
        return (tcp, count(tcp))
    }

    /// How many more `tcp` (every state) and `udp` sockets the namespace's sockstat counts than
    /// are known: (0, 0) when no socket of its tables is unknown.
    func unaccounted(_ tcp: [SocketEntry], udp: Int, pid: Int32, startTicks: UInt64) -> SocketGap {
        guard let counts = proc.socketCounts(pid, startTicks: startTicks, files: netFiles) else { return SocketGap(unreadable: true) }
        return SocketGap(tcp: counts.tcp - tcp.count, udp: counts.udp - udp)
    }

    /// What the kernel counts and the sockets known do not share: established connections
    /// (net/snmp's CurrEstab) and sockets of every state (sockstat), each as the kernel's count
    /// less the known ones.
    struct SocketGap: Equatable {
        var established = 0
        var tcp = 0
        var udp = 0
        /// sockstat could not be read: nothing is known to match.
        var unreadable = false
        var none: Bool { self == SocketGap() }
    }

    /// Passes a ringed namespace's walk may wait while the sockets known and the kernel's counts
    /// keep differing by different amounts (connections opening and closing between the reads).
    static let dumpDeferrals = 4

    /// The difference between the sockets `known` and the kernel's counts: established
    /// connections always, every socket too unless `counted` (a recent walk listed them).
    func socketGap(_ known: (list: [SocketEntry], established: Int), established: UInt64, udp: Int, counted: Bool,
                   pid: Int32, startTicks: UInt64) -> SocketGap {
        var gap = counted ? SocketGap() : unaccounted(known.list, udp: udp, pid: pid, startTicks: startTicks)
        gap.established = Int(established) - known.established
        return gap
    }

    /// Whether a namespace whose known sockets differ from the kernel's counts by `gap` goes
    /// one more pass without a walk. Established connections missing only with a ring (it learns
    /// new connections; without one, they stay missing), and only while the difference keeps changing: a socket
    /// the capture cannot show (a listener, a UDP socket, a connection it missed) leaves the same
    /// difference pass after pass and is walked for at the second; connections opening and
    /// closing between the reads (the ring hands a new connection's first packets over within
    /// half a second; a closing one leaves sockstat before the ask by id) change it. A busy
    /// server's and an API client's namespaces, walked for a moment's difference, were most
    /// of the host's TCP table walks on a dense node. At most `dumpDeferrals` passes in a row.
    static func waitsForDump(_ gap: SocketGap, ringed: Bool, cache: NamespaceCache) -> Bool {
        guard cache.deferrals < dumpDeferrals, ringed || gap.established == 0 else { return false }
        return cache.gapSeen != gap
    }

    /// Whether the live capture has a ring in this namespace (it sees the connections it opens).
    func ringed(_ ns: UInt64) -> Bool { (capture?.status(ns)?.ringBytes ?? 0) > 0 }

    struct NamespaceCache {
        /// The interface counters last read, and when (see `idleCountersEvery`).
        var counters: (value: NetCounters, at: Date)?
        /// Interface packets and TCP activity at the last net/snmp read.
        var lastActivity: (packets: UInt64, sent: UInt64, tcp: UInt64, connections: UInt64, established: UInt64)?
        /// The last socket list, the TCP activity it was read at, and when the host's TCP table
        /// was last dumped for it.
        var sockets: (activity: UInt64, connections: UInt64, established: UInt64, dumped: Date, list: [SocketEntry])?
        /// The last TCP activity value and when it last changed (for capture rings).
        var tcpSeen: (value: UInt64, at: Date)?
        /// Connection keys ("local port|remote address|remote port") of its sockets, with the
        /// socket, its counters and when a pass last saw it (kept a minute, longer than the
        /// capture reports closed connections): a captured connection with one of these was
        /// counted by a pass already.
        var socketKeysSeen: [String: (inode: UInt64, sent: UInt64, received: UInt64, at: Date, container: String)] = [:]
        /// When the capture's connections were last matched.
        var lastMatched: Date?
        /// The difference the last pass found between the sockets known and the kernel's counts,
        /// when it put off the walk, and how many passes in a row did (see `dumpDeferrals`).
        var gapSeen: SocketGap?
        var deferrals = 0
        var deferredDump: Bool { gapSeen != nil }
        /// Captured connections already given to a container (each is counted once), by id.
        var emitted: [UInt64: Date] = [:]
    }

    /// Per container: socket owners at a namespace activity value, and the upper directory.
    struct ContainerCache {
        /// Also the inodes of the namespace's sockets when the fds were read.
        var owners: (activity: UInt64, owners: [UInt64: Int32], pids: [Int32], inodes: Set<UInt64>)?
        var upperDir: String??
        var hosts: (mtime: Int, names: [String: [String]])?
        var hostsCheckedAt: Date?
    }

    var namespaces: [UInt64: NamespaceCache] = [:]
    var containers: [String: ContainerCache] = [:]
    let statFiles = ProcStatFiles()
    /// Each namespace's /proc/<pid>/net/dev and net/snmp, kept open between passes.
    let netFiles = KeptFiles()
    let threadLists = ProcfsReader.ThreadLists()
    /// Processes of the last pass by pid, and the keys that make a process "not new".
    var known: [Int32: ProcessSample] = [:]
    /// By pid (one process a pid in a pass): found by the pid, compared whole, so a process's
    /// executable path is not hashed twice a pass.
    var knownKeys: [Int32: ProcessKey] = [:]
    var hostNetns: UInt64?
    let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))
    var passes = 0
    public private(set) var lastPassTime: Date?
    /// kernel.pid_max (0 when unknown).
    lazy var pidMax: Int = {
        let text = (try? String(contentsOfFile: "\(proc.root)/sys/kernel/pid_max", encoding: .utf8)) ?? ""
        return Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
    }()
    /// A pid space of a million or more (the 64-bit default is 4194304).
    var largePidSpace: Bool { pidMax >= 1_000_000 }
    /// The pid allocation at the last pass.
    var lastAllocation: PidAllocation?
    /// Pids whose read in the last pass came before that pass's read of their cgroup's CPU time
    /// (new processes, host processes that joined a container, any read before the pass had read
    /// their cgroup's CPU time): a change between the
    /// two reads (an exec just after the stat was read) is not in the CPU time the next pass
    /// compares with, so they are read again however still their cgroup stood.
    var readBeforeTheirCgroup: Set<Int32> = []

    /// How long after it started a host process is still read for joining a container's cgroup.
    /// A runtime moves the process within milliseconds; this allows for a loaded machine.
    static let joinWindow: Double = 30

    /// Every running process is new again in the next pass (after a rules reload).
    public func forgetProcesses() { knownKeys = [:] }

    public init(proc: ProcfsReader = ProcfsReader(), cgroups: CgroupReader = CgroupReader(), clock: WallClock = SystemClock(),
                sockets: SocketStatsSource? = SockDiagReader()) {
        self.proc = proc
        self.cgroups = cgroups
        self.socketStats = sockets
        self.clock = clock
    }

    /// One pass. `runQueueFor`: containers whose threads' run-queue wait is read (CPU demand).
    public func sample(runQueueFor: Set<String> = []) -> HostSnapshot {
        let now = clock.now()
        let me = getpid()
        // One read of every process per pass; processes that vanish mid-read are skipped.
        // Processes seen in the last pass are re-read cheaply (stat and the exe link). Host
        // processes (outside containers, not watched) are not re-read at all while their pid stays
        // listed (with a pid space of a million or more, a pid cannot be reused within a pass),
        // except while they are young: a container's first process and every process `exec`
        // starts in a container begin outside it and join its cgroup while the runtime sets them
        // up, and a pass that saw one before that must not leave it a host process.
        let uptime = proc.uptime()
        let youngSince = uptime.map { UInt64(max(0, ($0 - Self.joinWindow) * ticksPerSecond)) }
        // In a smaller pid space a pid may come back within a pass, but only if the kernel
        // handed it out since the last pass: host processes whose pid it did not are not read.
        let allocation = largePidSpace ? nil : proc.pidAllocation()
        let earlier = lastAllocation
        lastAllocation = allocation
        let pidMax = pidMax
        func mayBeReused(_ pid: Int32) -> Bool {
            guard let allocation, let earlier, pidMax > 0 else { return true }
            return allocation.mayHaveReused(pid, since: earlier, pidMax: pidMax)
        }
        let unanchored = readBeforeTheirCgroup
        var readEarly: Set<Int32> = []
        func readProcess(_ pid: Int32) -> ProcessSample? {
            let k = known[pid]
            if let k, k.container == nil {
                if youngSince.map({ k.startTicks >= $0 }) ?? true { return proc.hostProcess(pid, known: k, followExe: includeHost, files: statFiles) }
                if !includeHost, largePidSpace || !mayBeReused(pid) { return k }
            }
            // A process of a cgroup none of whose tasks ran since the last pass (its CPU time did
            // not move by a nanosecond) is as it was: nothing is read. An idle container costs
            // one read of its cgroup's CPU time, not one of every process's stat. Unless its pid
            // may have been handed out again since the last pass: a zombie the last pass read,
            // reaped since, leaves its pid to a process of another container while its own
            // cgroup stays still.
            // That holds only for a sample read after the last pass read its cgroup's CPU time;
            // this pass reads that time before the process, whatever it finds.
            if let k, k.container != nil, !k.cgroupPaths.isEmpty, cgroups.idleSinceLastPass(k),
               !unanchored.contains(pid), largePidSpace || !mayBeReused(pid) { return k }
            // A watched process's executable link is read when it may have exec'd (see
            // `ProcfsReader.process`) and otherwise every `exeRecheckPasses` passes, spread by pid.
            return proc.process(pid, known: k, followExe: k?.container != nil || includeHost,
                                recheck: (Int(pid) &+ passes) % Self.exeRecheckPasses == 0, files: statFiles)
        }
        var samples = proc.pids().filter { $0 != me }.compactMap { pid -> ProcessSample? in
            let s = readProcess(pid)
            if let s, s.container != nil, !cgroups.usageReadThisPass(s) { readEarly.insert(pid) }
            return s
        }
        readBeforeTheirCgroup = readEarly
        let live = Set(samples.map(\.pid))
        statFiles.retain(live)
        threadLists.retain(live)
        let previous = known, previousTime = lastPassTime
        known = Dictionary(samples.map { ($0.pid, $0) }, uniquingKeysWith: { a, _ in a })
        if !includeHost { samples.removeAll { $0.container == nil } }
        if !onlyContainers.isEmpty {
            samples.removeAll { s in !onlyContainers.contains { p in s.container?.id.hasPrefix(p) == true } }
        }
        var byContainer: [String: (ContainerRef, [ProcessSnapshot])] = [:]
        var keys: [Int32: ProcessKey] = [:]
        keys.reserveCapacity(knownKeys.count)
        for s in samples {
            guard let c = s.container ?? (includeHost ? ContainerRef(id: "host", runtime: .podman, cgroupPath: "/") : nil) else { continue }
            var p = ProcessSnapshot(sample: s, isNew: false)
            if let k = previous[s.pid], k.startTicks == s.startTicks, s.cpuTicks >= k.cpuTicks, let t = previousTime, now > t {
                p.cpuCores = Double(s.cpuTicks - k.cpuTicks) / ticksPerSecond / now.timeIntervalSince(t)
            }
            let key = p.key
            keys[s.pid] = key
            if knownKeys[s.pid] != key {
                p.isNew = true
                if !environmentKeys.isEmpty { p.environment = proc.environment(s.pid, keep: environmentKeys) }
            }
            byContainer[c.id, default: (c, [])].1.append(p)
        }
        knownKeys = keys
        if hostNetns == nil { hostNetns = proc.process(1)?.netns }
        var out: [ContainerSnapshot] = []
        var nsSeen: Set<UInt64> = []
        for (id, (ref, procs)) in byContainer.sorted(by: { $0.key < $1.key }) {
            var snap = ContainerSnapshot(ref: ref, time: now, processes: procs)
            if let first = procs.first(where: { $0.sample.cgroupPaths.isEmpty == false }) {
                snap.cgroup = cgroups.stats(of: first.sample)
            }
            if runQueueFor.contains(id) { snap.runQueueWaitNanos = proc.runQueueWait(procs.map(\.sample), files: netFiles, threads: threadLists) }
            network(&snap, id: id, procs: procs.map(\.sample), seen: &nsSeen)
            // Still only when every process's cgroup stood still (a container's processes may sit
            // in several: systemd's scopes and services), and none is new. Each cgroup's CPU time
            // is read every pass (once: it is kept for the pass), so the next pass can compare.
            var allIdle = true
            for p in procs {
                let idle = !p.sample.cgroupPaths.isEmpty && cgroups.idleSinceLastPass(p.sample)
                if p.isNew || !idle { allIdle = false }
            }
            if !allIdle { snap.still = false }
            files(&snap, id: id, first: procs.first?.sample, now: now, cache: &containers[id, default: ContainerCache()])
            out.append(snap)
        }
        socketStats?.retain(namespaces: nsSeen)
        syncCapture(&out, now: now)
        // Only those gone are removed: filtering into new dictionaries copied every entry a pass.
        for ns in namespaces.keys.filter({ !nsSeen.contains($0) }) { namespaces[ns] = nil }
        for id in containers.keys.filter({ byContainer[$0] == nil }) { containers[id] = nil }
        passes += 1
        lastPassTime = now
        netFiles.sweep()
        cgroups.endPass()
        return HostSnapshot(time: now, containers: out)
    }

    /// Whether no TCP segment can have moved since the counters `last` (all packets, and those
    /// sent: see `sent`) were read: no packet sent, received or carried over loopback; but where
    /// the last socket list held no TCP connection (listeners only, or nothing), no packet sent
    /// or over loopback. Received packets that nothing answers cannot change TCP's counters
    /// there: a SYN to a listener or a closed port is answered (SYN-ACK or RST), and a namespace
    /// with no connection has no segment to take without reply. On a bridge of hundreds of
    /// containers every idle one receives the others' ARP broadcasts and IPv6 router
    /// solicitations, which sent most idle namespaces to net/snmp every pass.
    static func noTCPActivity(_ c: NetCounters, since last: (all: UInt64, sent: UInt64), connectionsKnown: Bool) -> Bool {
        connectionsKnown ? c.activity == last.all : sent(c) == last.sent
    }

    /// Packets sent, and carried over loopback.
    static func sent(_ c: NetCounters) -> UInt64 { c.txPackets &+ c.loopbackPackets }

    /// The container's overlay upper directory (read once) and the names its /etc/hosts gives
    /// addresses. The cache is changed where it is stored (see `network`).
    func files(_ snap: inout ContainerSnapshot, id: String, first: ProcessSample?, now: Date, cache: inout ContainerCache) {
        if cache.upperDir == nil, let pid = first?.pid {
            cache.upperDir = .some(proc.mountinfo(pid).flatMap(ProcParsers.overlayUpperDir))
        }
        snap.upperDir = cache.upperDir ?? nil
        // /etc/hosts: looked at when first seen, then every 30 s (a stat; read when it changed),
        // and only with outbound connections.
        if id != "host", let first, snap.sockets.contains(where: { $0.isEstablished }),
           cache.hostsCheckedAt.map({ now.timeIntervalSince($0) >= 30 }) ?? true {
            cache.hostsCheckedAt = now
            if let h = proc.hostsFile(first.pid, startTicks: first.startTicks, unlessModified: cache.hosts?.mtime), let names = h.names {
                cache.hosts = (h.mtime, names)
            }
        }
        snap.hostNames = cache.hosts?.names ?? [:]
    }

    /// Its namespace's counters and sockets, attributed by the socket inodes its processes hold.
    func network(_ snap: inout ContainerSnapshot, id: String, procs: [ProcessSample], seen: inout Set<UInt64>) {
        guard let first = procs.first(where: { $0.netns != nil }), let ns = first.netns else { return }
        let host = hostNetns == ns
        snap.netns = ns
        snap.hostNetwork = host
        let firstInPass = seen.insert(ns).inserted
        // The namespace's cache is changed where it is stored: a copy out and back retained
        // every field of it (and made the mutations below copy what they share), and removing
        // it and putting it back rehashed its neighbours.
        network(&snap, id: id, procs: procs, first: first, ns: ns, host: host, firstInPass: firstInPass, cache: &namespaces[ns, default: NamespaceCache()])
    }

    func network(_ snap: inout ContainerSnapshot, id: String, procs: [ProcessSample], first: ProcessSample, ns: UInt64, host: Bool, firstInPass: Bool,
                 cache: inout NamespaceCache) {
        let connectionsKnown = cache.sockets.map { $0.list.contains { $0.proto == .tcp && !$0.isListening } } ?? true
        let counters: NetCounters?
        var countersKept = false
        if !host, !connectionsKnown, let last = cache.counters, snap.time.timeIntervalSince(last.at) < Self.idleCountersEvery,
           !first.cgroupPaths.isEmpty, cgroups.idleSinceLastPass(first) {
            // Nothing of the container ran since the last pass and its namespace holds no TCP
            // connection: no process sent or took a byte, so its counters are as last read but
            // for what the kernel moved alone (the bridge's broadcasts, a handshake answered),
            // counted when they are next read. On a dense node this was a read of net/dev for
            // every idle container every pass.
            counters = last.value
            countersKept = true
        } else {
            counters = proc.netCounters(first.pid, startTicks: first.startTicks, files: netFiles)
            if let counters { cache.counters = (counters, snap.time) }
        }
        // net/snmp is costly to generate, so it is read only when some packet moved (interface
        // counters, loopback included, changed) since the last pass; in a namespace with no TCP
        // socket but listeners, only when one was sent (see `noTCPActivity`).
        var activity: UInt64?
        var connections: UInt64?
        var established: UInt64?
        if let counters, let last = cache.lastActivity, Self.noTCPActivity(counters, since: (last.packets, last.sent), connectionsKnown: connectionsKnown) {
            activity = last.tcp
            connections = last.connections
            established = last.established
        } else if let c = proc.tcpCounters(first.pid, startTicks: first.startTicks, files: netFiles) {
            activity = c.connections &+ c.segments
            connections = c.connections
            established = c.established
            if let counters { cache.lastActivity = (counters.activity, Self.sent(counters), c.connections &+ c.segments, c.connections, c.established) }
        }
        let now = snap.time
        var all: [SocketEntry]
        if let activity, let cached = cache.sockets, cached.activity == activity, !cache.deferredDump {
            // No TCP segment moved (loopback included) and no connection opened since the last
            // read: its sockets and their counters are as they were, so the socket dump (which
            // walks the host's whole TCP table) is skipped. Idle containers cost no dump. Not
            // when a walk was put off at the last pass: it is due whether or not TCP moved (a
            // new listener or UDP socket moves no TCP counter).
            all = cached.list
        } else if !firstInPass, let cached = cache.sockets {
            all = cached.list  // another container of the same namespace (a pod) read it this pass
        } else if let activity, let connections, let established, let cached = cache.sockets, cached.connections == connections, !cache.deferredDump,
                  let fresh = socketStats?.refresh(cached.list.filter { $0.proto == .tcp }, pid: first.pid, netns: ns) {
            // Segments moved but no connection opened, failed or reset: the same sockets, asked for
            // one by one (cheaper than a dump).
            all = fresh + cached.list.filter { $0.proto != .tcp }
            cache.sockets = (activity, connections, established, cached.dumped, all)
        } else if let activity, let connections, let established, let cached = cache.sockets,
                  case let age = now.timeIntervalSince(cached.dumped), age < Self.accountedDumpEvery,
                  case let ringed = ringed(ns),
                  let known = knownConnections(cached, pid: first.pid, ns: ns),
                  case let gap = socketGap(known, established: established, udp: cached.list.count { $0.proto == .udp },
                                      counted: age < (ringed ? Self.capturedDumpEvery : Self.shortConnectionDumpEvery), pid: first.pid, startTicks: first.startTicks),
                  gap.none || Self.waitsForDump(gap, ringed: ringed, cache: cache) {
            // Connections opened (and maybe closed) since the last dump: the sockets the last dump
            // listed, asked for again by id, plus those the capture saw open since, asked for by
            // their addresses, are exactly as many as the namespace has established (an API
            // client, health checks, a connection replaced). Short ones are in the capture's
            // closed connections. The host's TCP table is walked again at least every
            // `shortConnectionDumpEvery`, or `capturedDumpEvery` with a ring, unless the sockets
            // known are all the kernel counts in its tables (`accountedDumpEvery`).
            // When they are not, and the capture follows the namespace, the walk waits while the
            // difference keeps changing (see `waitsForDump`).
            if gap.none {
                cache.gapSeen = nil
                cache.deferrals = 0
            } else {
                cache.gapSeen = gap
                cache.deferrals += 1
            }
            all = known.list + cached.list.filter { $0.proto != .tcp }
            cache.sockets = (activity, connections, established, cached.dumped, all)
        } else {
            // TCP with counters from sock_diag (else /proc/<pid>/net/tcp*); UDP sockets with their
            // endpoints for telemetry from /proc/<pid>/net/udp*.
            let tcp = socketStats?.tcpSockets(pid: first.pid, netns: ns)
            all = tcp.map { $0 + proc.sockets(first.pid, tcp: false) } ?? proc.sockets(first.pid)
            cache.gapSeen = nil
            cache.deferrals = 0
            if let activity { cache.sockets = (activity, connections ?? 0, established ?? 0, now, all) }
        }
        let owners = socketOwners(procs, activity: activity, all: all, still: &snap.still, countersKept: countersKept,
                                  cache: &containers[id, default: ContainerCache()])
        // Sockets its processes hold; when fds cannot be read (not root), the whole namespace
        // (never on the host network, where that would mean every host connection).
        snap.sockets = owners.isEmpty ? (host ? [] : all) : all.filter { owners[$0.inode] != nil }
        snap.listenPorts = Set(all.filter { $0.proto == .tcp && $0.isListening }.map(\.localPort))
        snap.interfaces = host ? nil : counters
        snap.owners = owners
        if let tcp = activity {
            if let s = cache.tcpSeen {
                if s.value != tcp { cache.tcpSeen = (tcp, snap.time) }
            } else {
                // Namespaces there at start count as idle until they move; a new one (its counters
                // start at 0) is active if anything moved.
                cache.tcpSeen = (tcp, passes > 0 && tcp > 0 ? snap.time : .distantPast)
            }
        }
    }

    /// Which process of the container holds each socket of the namespace (`all`). Which sockets
    /// its processes hold changes only with traffic or with its processes. A pass that finds the
    /// namespace's TCP activity and the processes as they were leaves `still` as the interface
    /// counters did (kept: the container is still when it holds no TCP connection).
    func socketOwners(_ procs: [ProcessSample], activity: UInt64?, all: [SocketEntry], still: inout Bool, countersKept: Bool,
                      cache ccache: inout ContainerCache) -> [UInt64: Int32] {
        var owners: [UInt64: Int32] = [:]
        let pids = procs.map(\.pid)
        if let activity, let cached = ccache.owners, cached.activity == activity, cached.pids == pids {
            owners = cached.owners
            still = countersKept && !all.contains { $0.proto == .tcp && !$0.isListening }
        } else if let activity, let cached = ccache.owners, cached.pids == pids, !cached.owners.isEmpty,
                  all.allSatisfy({ cached.inodes.contains($0.inode) }) {
            // Traffic moved, but the namespace has no socket it did not have when the fds were
            // read, and the processes are the same: who holds which socket is as read then (a
            // socket passed to another process of the container keeps the old owner until a new
            // socket or a process change has the fds read again). A busy server's fd table was
            // read every pass for the same answer.
            owners = cached.owners
            ccache.owners = (activity, owners, pids, cached.inodes)
        } else {
            for p in procs { for inode in proc.socketInodes(p.pid) { owners[inode] = p.pid } }
            if let activity { ccache.owners = (activity, owners, pids, Set(all.map(\.inode))) }
        }
        return owners
    }

    /// The captured connections the containers of one network namespace opened (the client's
    /// address is theirs) that closed since they were last counted, each given once and to one
    /// container: one the previous pass saw open goes to the container that held its socket,
    /// under the socket's inode (so the traffic meter counts only what it moved after that
    /// pass); one no pass saw goes to the namespace's container when it has only one (in a pod
    /// whose containers share the namespace, whose it was is unknown, and it counts for none).
    /// `members`: the indices in `all` of the namespace's containers; one list for each.
    func shortConnections(_ flows: [CapturedFlow], of all: [ContainerSnapshot], members: [Int], ns: UInt64) -> [[CapturedFlow]] {
        let now = members.first.map { all[$0].time } ?? Date()
        if flows.isEmpty, members.allSatisfy({ all[$0].sockets.isEmpty }),
           namespaces[ns]?.socketKeysSeen.isEmpty ?? true, namespaces[ns]?.emitted.isEmpty ?? true {
            // An idle namespace: no closed connection to give, no socket to remember or forget.
            namespaces[ns]?.lastMatched = now
            return [[CapturedFlow]](repeating: [], count: members.count)
        }
        let snaps = members.map { all[$0] }
        var cache = namespaces[ns] ?? NamespaceCache()
        let previous = cache.lastMatched, seen = cache.socketKeysSeen
        // Every socket of the namespace's containers, with its connection key and its container.
        let sockets = snaps.flatMap { snap in
            snap.sockets.map { s in (key: CapturedFlow.key(localPort: s.localPort, remoteAddress: s.remoteAddress, remotePort: s.remotePort), socket: s, snap: snap) }
        }
        for (key, s, snap) in sockets {
            cache.socketKeysSeen[key] = (s.inode, s.counters?.bytesSent ?? 0, s.counters?.bytesReceived ?? 0, snap.time, snap.ref.id)
        }
        cache.socketKeysSeen = cache.socketKeysSeen.filter { now.timeIntervalSince($0.value.at) < 60 }
        cache.emitted = cache.emitted.filter { now.timeIntervalSince($0.value) < 60 }
        cache.lastMatched = now
        var out = [[CapturedFlow]](repeating: [], count: snaps.count)
        defer { namespaces[ns] = cache }
        guard !flows.isEmpty else { return out }
        let open = Set(sockets.map(\.socket.inode)), openKeys = Set(sockets.map(\.key))
        let local = Set(sockets.map(\.socket.localAddress)).subtracting(["0.0.0.0", "::", ""])
        let listening = snaps.reduce(into: Set<UInt16>()) { $0.formUnion($1.listenPorts) }
        for f in flows where cache.emitted[f.id] == nil {
            guard !(IPAddress(f.server)?.isLoopback ?? false),
                  local.isEmpty ? !listening.contains(f.serverPort) : local.contains(f.client) && !local.contains(f.server),
                  // This pass counts it through its socket (it closed after sock_diag read it).
                  !openKeys.contains(f.key) else { continue }
            if let s = seen[f.key] {
                // Seen open by the previous pass, closed now, and the capture saw all of it.
                guard s.at == previous, !open.contains(s.inode), f.clientBytes >= s.sent, f.serverBytes >= s.received,
                      let k = snaps.firstIndex(where: { $0.ref.id == s.container }) else { continue }
                var g = f
                g.id = s.inode
                out[k].append(g)
            } else {
                guard snaps.count == 1 else { continue }
                out[0].append(f)
            }
            cache.emitted[f.id] = now
        }
        return out
    }

    /// Containers with their own namespace (the host's is not captured), while they have TCP
    /// traffic: a ring opens at the first pass that sees TCP segments move and closes after two
    /// idle minutes, so idle containers cost no ring (a session's first second may be missed).
    func syncCapture(_ snaps: inout [ContainerSnapshot], now: Date) {
        guard let capture else { return }
        var wanted: [UInt64: Int32] = [:]
        // By index: a loop over the snapshots would copy each (every field retained and released).
        for i in snaps.indices where !snaps[i].hostNetwork {
            guard let ns = snaps[i].netns, let seen = namespaces[ns]?.tcpSeen, seen.at != .distantPast,
                  now.timeIntervalSince(seen.at) < 120 else { continue }
            wanted[ns] = snaps[i].processes.first { $0.sample.netns == ns }?.sample.pid ?? snaps[i].mainPid
        }
        capture.sync(wanted)
        var members: [UInt64: [Int]] = [:]
        for i in snaps.indices where !snaps[i].hostNetwork {
            if let ns = snaps[i].netns { members[ns, default: []].append(i) }
        }
        for (ns, list) in members {
            let given = shortConnections(capture.flows(ns), of: snaps, members: list, ns: ns)
            for (k, i) in list.enumerated() { snaps[i].shortConnections = given[k] }
        }
        for i in snaps.indices where !snaps[i].hostNetwork {
            guard let ns = snaps[i].netns else { continue }
            snaps[i].sessions = capture.sessions(ns)
            snaps[i].capture = capture.status(ns)
            snaps[i].dnsQuestions = capture.names(ns)
            if snaps[i].still, !snaps[i].sessions.isEmpty || snaps[i].capture != nil || !snaps[i].dnsQuestions.isEmpty
                || !snaps[i].shortConnections.isEmpty { snaps[i].still = false }
        }
    }
}
