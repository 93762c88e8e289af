import Foundation
import MinewatchCore
import MinewatchPackets
import MinewatchModel
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A mining session seen live in a namespace.
public struct LiveSession: Sendable, Hashable {
    public var client: String
    public var clientPort: UInt16
    public var serverPort: UInt16
    public var server: String
    public var first: Date
    /// Held in an immutable box every copy shares: a session is copied from the capture's book to
    /// each pass's snapshot and by every detector that filters sessions, and the facts' many
    /// fields were retained and released one by one at each copy.
    @inlinable public var facts: SessionFacts {
        get { box.facts }
        set { box = FactsBox(newValue) }
    }
    @usableFromInline var box: FactsBox

    public init(client: String, clientPort: UInt16, serverPort: UInt16, server: String, first: Date, facts: SessionFacts) {
        self.client = client
        self.clientPort = clientPort
        self.serverPort = serverPort
        self.server = server
        self.first = first
        self.box = FactsBox(facts)
    }

    @usableFromInline final class FactsBox: Sendable, Hashable {
        @usableFromInline let facts: SessionFacts
        @usableFromInline init(_ facts: SessionFacts) { self.facts = facts }
        @usableFromInline static func == (a: FactsBox, b: FactsBox) -> Bool { a === b || a.facts == b.facts }
        @usableFromInline func hash(into h: inout Hasher) { h.combine(facts) }
    }
}

/// A TCP connection the capture saw in a namespace that is done (closed), with its payload
/// bytes each way: `watch` counts the ones too short to be seen by sock_diag at any pass (a
/// proxy node polling its vendor over fresh connections).
public struct CapturedFlow: Sendable, Hashable {
    /// Stable while the capture holds the flow; the top bit set, so it never equals a socket inode.
    public var id: UInt64
    public var client: String
    public var clientPort: UInt16
    public var server: String
    public var serverPort: UInt16
    public var clientBytes: UInt64
    public var serverBytes: UInt64
    public var serverDataPackets: UInt32
    public var first: Date
    /// Its last packet.
    public var last: Date

    public init(id: UInt64, client: String, clientPort: UInt16, server: String, serverPort: UInt16, clientBytes: UInt64, serverBytes: UInt64,
                serverDataPackets: UInt32, first: Date, last: Date? = nil) {
        self.id = id
        self.client = client
        self.clientPort = clientPort
        self.server = server
        self.serverPort = serverPort
        self.clientBytes = clientBytes
        self.serverBytes = serverBytes
        self.serverDataPackets = serverDataPackets
        self.first = first
        self.last = last ?? first
    }

    /// "local port|remote address|remote port" of the client side, the key a socket has too.
    public var key: String { Self.key(localPort: clientPort, remoteAddress: server, remotePort: serverPort) }

    /// The key of a connection as the client sees it (a socket's local port and remote end).
    public static func key(localPort: UInt16, remoteAddress: String, remotePort: UInt16) -> String { "\(localPort)|\(remoteAddress)|\(remotePort)" }
}

/// Protocol evidence for `watch`: one packet ring per container network namespace, owned and
/// drained by a capture thread of its own, feeding the same flow table and recognisers as `pcap`
/// (with a smaller per-flow inspection cap). Rings, flow tables and recognisers never leave that
/// thread; what the watcher reads (sessions, ring status, errors) is published through a mutex
/// after each drain, so the watcher never waits on packet decoding.
public final class LiveCapture: Sendable {
    /// A namespace's ring as the watcher sees it: packets read and packets the kernel dropped
    /// (PACKET_STATISTICS) since it opened. Drops mean protocol evidence may be incomplete.
    public struct RingStatus: Sendable, Hashable, Codable {
        public var packets: Int
        public var drops: Int
        /// The ring's size now (it follows the namespace's traffic; see `RingSize`).
        public var ringBytes: Int
        public init(packets: Int, drops: Int, ringBytes: Int = 0) {
            self.packets = packets
            self.drops = drops
            self.ringBytes = ringBytes
        }
    }

    /// A ring sized by need. A namespace's ring opens small (a chatty container: health checks,
    /// an API client) and moves up to the size its packet rate needs once the rate passes what
    /// its size takes, or straight to the largest when the kernel drops packets from it (the
    /// drops are counted and reported as evidence gaps all the same); it moves down one size after
    /// `calmSeconds` under a quarter of the smaller size's rate. A move opens the new ring before
    /// the old one is drained and closed, so no packet falls between them (the few both saw are
    /// retransmissions to the flow table, which keeps one copy). The larger sizes come in four
    /// large blocks rather than many small ones: the kernel hands a block over when it is full
    /// (or after `retireMilliseconds`), and each hand-over wakes the capture thread, so a
    /// 100 Mbit/s transfer woke it 37 times a second in 256 KiB blocks and 9 in 1 MiB ones.
    public struct RingSize: Sendable, Hashable, CustomStringConvertible {
        public var blockSize: Int
        public var blocks: Int
        /// Packets per second this size takes without drops, with room to spare.
        public var packetsPerSecond: Double
        public var bytes: Int { blockSize * blocks }
        public var description: String { "\(blocks)x\(blockSize / 1024) KiB" }

        public static let tiers = [
            RingSize(blockSize: 32 * 1024, blocks: 4, packetsPerSecond: 150),
            RingSize(blockSize: 256 * 1024, blocks: 4, packetsPerSecond: 3_000),
            RingSize(blockSize: 1024 * 1024, blocks: 4, packetsPerSecond: .infinity),
        ]
        public static let calmSeconds = 30.0
    }

    /// The size a ring at `tier` should have, given its packet rate over the last second or more,
    /// the drops in it, and how long the rate has stayed low (`calmSince`).
    static func nextTier(_ tier: Int, rate: Double, dropped: Bool, calmFor: Double) -> Int {
        let tiers = RingSize.tiers
        if dropped { return tiers.count - 1 }  // drops: straight to the largest
        if rate > tiers[tier].packetsPerSecond { return tiers.firstIndex { $0.packetsPerSecond >= rate } ?? tiers.count - 1 }
        if tier > 0 && rate < tiers[tier - 1].packetsPerSecond / 4 && calmFor >= RingSize.calmSeconds { return tier - 1 }
        return tier
    }

    struct Shared {
        var running = true
        /// Moves on each time `wanted` changes.
        var generation = 0
        /// Namespace inode -> a pid in it, as the watcher wants them.
        var wanted: [UInt64: Int32] = [:]
        var failed: Set<UInt64> = []
        var firstError: MinewatchError?
        var sessions: [UInt64: [LiveSession]] = [:]
        var flows: [UInt64: [CapturedFlow]] = [:]
        var open: [UInt64: [CapturedFlow]] = [:]
        var names: [UInt64: [String]] = [:]
        var status: [UInt64: RingStatus] = [:]
        var packets = 0
        var drops = 0
    }

    /// What the capture thread alone touches: a namespace's ring, its size and rate, its flows
    /// (`FlowBook`) and what was last published of them.
    final class Namespace {
        var ring: PacketRing
        var tier: Int
        /// Packets since `windowStart` (the rate's window), and since when the rate was low.
        var windowStart: Double
        var windowPackets = 0
        var windowDrops = 0
        var calmSince: Double
        let book: FlowBook
        var status = RingStatus(packets: 0, drops: 0)
        init(ring: PacketRing, tier: Int, now: Double, maxFlows: Int, cap: Int, heartbeat: HeartbeatThresholds) {
            self.ring = ring
            self.tier = tier
            windowStart = now
            calmSince = now
            book = FlowBook(maxFlows: maxFlows, cap: cap, heartbeat: heartbeat)
        }

        /// The open connections last published.
        var open: [CapturedFlow] = []
        /// The closed connections last published, and when.
        var flows: [CapturedFlow] = []
        var flowsAt = 0.0
        /// The sessions last published, and when.
        var published: [LiveSession] = []
        var publishedAt = 0.0
        var packetsSinceFlows = true
        /// When the capture thread last read this ring.
        var visitedAt = 0.0
        /// Whether the ring's descriptor is in the capture thread's epoll set (a ring that is
        /// closed leaves it by itself).
        var registered = false
    }

    let shared = Mutex(Shared())
    /// Written by `sync` to wake the capture thread's poll.
    let wakeRead: Int32
    let wakeWrite: Int32
    let procRoot: String
    let snapLength: Int
    let maxFlows: Int
    let inspectCap: Int
    let heartbeat: HeartbeatThresholds

    public init(procRoot: String = "/proc", snapLength: Int = 1024, maxFlowsPerNamespace: Int = 4096, inspectBytesPerFlow: Int = 256 * 1024,
                heartbeat: HeartbeatThresholds = HeartbeatThresholds()) {
        self.heartbeat = heartbeat
        self.procRoot = procRoot
        self.snapLength = snapLength
        maxFlows = maxFlowsPerNamespace
        inspectCap = inspectBytesPerFlow
        var fds: [Int32] = [-1, -1]
        if pipe(&fds) == 0 {
            for fd in fds {
                _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
                _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            }
        } else {
            fds = [-1, -1]
        }
        wakeRead = fds[0]
        wakeWrite = fds[1]
        Thread.detachNewThread { [weak self] in self?.loop() }
    }

    deinit {
        if wakeRead >= 0 { close(wakeRead) }
        if wakeWrite >= 0 { close(wakeWrite) }
    }

    public func stop() {
        shared.withLock { $0.running = false }
        wake()
    }

    func wake() {
        var b: UInt8 = 1
        if wakeWrite >= 0 { _ = write(wakeWrite, &b, 1) }
    }

    /// The namespaces to capture (`netns inode -> a pid in it`); rings open and close on the
    /// capture thread, which is woken at once.
    public func sync(_ wanted: [UInt64: Int32]) {
        let changed = shared.withLock { s -> Bool in
            s.failed = s.failed.filter { wanted[$0] != nil }
            let changed = Set(s.wanted.keys) != Set(wanted.keys)
            if s.wanted != wanted { s.generation &+= 1 }
            s.wanted = wanted
            s.sessions = s.sessions.filter { wanted[$0.key] != nil }
            s.flows = s.flows.filter { wanted[$0.key] != nil }
            s.open = s.open.filter { wanted[$0.key] != nil }
            s.names = s.names.filter { wanted[$0.key] != nil }
            s.status = s.status.filter { wanted[$0.key] != nil }
            return changed
        }
        if changed { wake() }
    }

    public var firstError: MinewatchError? { shared.withLock { $0.firstError } }

    /// Mining-relevant sessions recognised so far in a namespace (as of the last drain).
    public func sessions(_ ns: UInt64) -> [LiveSession] { shared.withLock { $0.sessions[ns] ?? [] } }

    /// Connections that opened and closed recently in a namespace (as of the last drain).
    public func flows(_ ns: UInt64) -> [CapturedFlow] { shared.withLock { $0.flows[ns] ?? [] } }

    /// TCP connections the capture saw open in a namespace and not yet closed (as of the last drain).
    public func openConnections(_ ns: UInt64) -> [CapturedFlow] { shared.withLock { $0.open[ns] ?? [] } }

    /// DNS questions a namespace asked (as of the last drain), most recent last.
    public func names(_ ns: UInt64) -> [String] { shared.withLock { $0.names[ns] ?? [] } }

    /// The namespace's ring, while one is open.
    public func status(_ ns: UInt64) -> RingStatus? { shared.withLock { $0.status[ns] } }

    /// Packets read and dropped by the kernel over all rings since the start.
    public var totals: (packets: Int, drops: Int) { shared.withLock { ($0.packets, $0.drops) } }

    /// How long the kernel keeps a block that is not full before handing it over: the watcher
    /// reads sessions once a pass (seconds), so half a second costs no evidence, and a chatty
    /// namespace wakes the capture thread twice a second rather than ten times.
    static let retireMilliseconds = 500

    /// How often a namespace's sessions are judged and published while packets come: the
    /// watcher reads them once a pass (2 s by default), so a second costs no evidence; every
    /// half second, an API client's namespace had its sessions (one per recent request
    /// connection, each named by its Host) copied out four times for each pass that read them.
    static let sessionsEvery = 1.0

    /// The capture thread's wake-ups are at least this far apart, unless a ring handed a full
    /// block over at the last one (traffic is filling it by size: a transfer, or a burst on a
    /// small ring, which must not wait). Each chatty namespace's ring hands a block over twice a
    /// second on its timer (`retireMilliseconds`), at its own moment, and a node of 50 API
    /// clients woke the thread 100 times a second for a few packets each. A tenth of a second
    /// (ten wake-ups a second at most while no block fills): at the rate the smallest ring is
    /// sized for (`RingSize.tiers`: 150 packets a second, at most `snapLength` bytes each) it
    /// fills an eighth of that ring, and on a dense node's mix it cost the agent 5-10% less CPU
    /// than a twentieth of a second did. A burst that starts just after a quiet wake-up waits
    /// out the gap: the smallest ring drops from about 1,200 packets a second held for that
    /// tenth (2,400 at a twentieth), and its drops move it to the largest size at once.
    static let minimumWakeGap = 0.1

    /// Every block the kernel filled, into the namespace's flow table. The kernel's drop count is
    /// read when blocks came (it drops only when every block is full, so a drop is followed by
    /// blocks to read) or when `countDrops`.
    func drain(_ n: Namespace, countDrops: Bool = true) -> (packets: Int, drops: Int) {
        let got = n.ring.drain { info, bytes in
            guard let p = PacketDecoder.decode(linkType: info.linkType, bytes, originalLength: info.originalLength) else { return }
            n.book.table.add(p, bytes: bytes, time: info.time, received: info.received)
        }
        let dropped = got > 0 || countDrops ? n.ring.drops() : 0
        n.status.packets += got
        n.status.drops += dropped
        return (got, dropped)
    }

    /// Moves a namespace to a ring of another size: the new one opens first, then the old one is
    /// drained a last time and closed. When the new one cannot open, the old one stays.
    func resize(_ n: Namespace, ns: UInt64, to tier: Int, pid: Int32, now: Double) -> (packets: Int, drops: Int) {
        let size = RingSize.tiers[tier]
        guard let ring = try? PacketRing(pid: pid, netns: ns, procRoot: procRoot, snapLength: snapLength, blockSize: size.blockSize, blocks: size.blocks,
                                         retireMilliseconds: Self.retireMilliseconds) else {
            return (0, 0)
        }
        let last = drain(n)
        n.ring = ring
        n.registered = false
        n.tier = tier
        n.calmSince = now
        return last
    }

    func loop() {
        var owned: [UInt64: Namespace] = [:]
        var buf = [UInt8](repeating: 0, count: 64)
        let readiness = ReadySet()
        readiness?.add(wakeRead)
        // Which namespace a registered descriptor reads (a closed ring's entry stays until its
        // number is used again; epoll never reports a closed descriptor).
        var byDescriptor: [Int32: UInt64] = [:]
        var scannedAt = 0.0
        // Rings are opened and closed when the namespaces wanted change, and those that could
        // not open yet are tried again every quarter second; rings that opened or moved are put
        // in the epoll set. Walking every namespace at every wake-up (a busy ring wakes this
        // thread dozens of times a second) cost more than the packets of the idle ones.
        var seenGeneration = -1
        var reconciledAt = 0.0
        var unregistered = false
        var wokeAt = 0.0
        var filling = false
        while true {
            let (running, wanted, failed, generation) = shared.withLock { ($0.running, $0.wanted, $0.failed, $0.generation) }
            if !running { return }
            var newFailures: [(UInt64, MinewatchError)] = []
            let opened = Date().timeIntervalSince1970
            let reconcile = generation != seenGeneration || opened - reconciledAt >= 0.25
            if reconcile {
                seenGeneration = generation
                reconciledAt = opened
                for ns in owned.keys where wanted[ns] == nil { owned[ns] = nil }
                unregistered = true  // and a ring epoll refused is offered again
            }
            for (ns, pid) in reconcile ? wanted : [:] where owned[ns] == nil && !failed.contains(ns) {
                do {
                    let size = RingSize.tiers[0]
                    let ring = try PacketRing(pid: pid, netns: ns, procRoot: procRoot, snapLength: snapLength, blockSize: size.blockSize, blocks: size.blocks,
                                              retireMilliseconds: Self.retireMilliseconds)
                    owned[ns] = Namespace(ring: ring, tier: 0, now: opened, maxFlows: maxFlows, cap: inspectCap, heartbeat: heartbeat)
                    unregistered = true
                } catch where error.code == .notFound || error.errno == ENOENT || error.errno == ESRCH {
                    // The process is gone or in another namespace now: the next pass names another.
                } catch {
                    newFailures.append((ns, error))
                }
            }
            // The rings that have blocks to hand over, from epoll (registered once each; poll()
            // over every ring at every wake-up was a tenth of the agent with hundreds of rings).
            // Without epoll every ring is read every 100 ms.
            var ready = Set<UInt64>()
            if let readiness {
                if unregistered {
                    unregistered = false
                    for (ns, n) in owned where !n.registered && readiness.add(n.ring.fd) {
                        n.registered = true
                        byDescriptor[n.ring.fd] = ns
                    }
                }
                let since = Date().timeIntervalSince1970 - wokeAt
                if !filling && since >= 0 && since < Self.minimumWakeGap {
                    usleep(UInt32((Self.minimumWakeGap - since) * 1_000_000))
                }
                filling = false
                let fds = readiness.wait(milliseconds: 500)
                wokeAt = Date().timeIntervalSince1970
                for fd in fds {
                    if fd == wakeRead {
                        while read(wakeRead, &buf, buf.count) > 0 {}
                    } else if let ns = byDescriptor[fd] {
                        ready.insert(ns)
                    }
                }
            } else {
                var wake = pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)
                _ = poll(&wake, 1, 100)
                if wake.revents != 0 { while read(wakeRead, &buf, buf.count) > 0 {} }
                ready = Set(owned.keys)
            }
            // Decoding happens here, outside the lock. Only the rings the kernel handed blocks
            // to are read, and every ring at least once a second (its rate, its connections
            // aging; looked for four times a second): with hundreds of rings, visiting each at
            // every wake-up cost more than the packets did.
            var published: [UInt64: ([LiveSession], RingStatus, [String], [CapturedFlow], [CapturedFlow])] = [:]
            let now = Date().timeIntervalSince1970
            var packets = 0, drops = 0
            let scanAll = now - scannedAt >= 0.25
            if scanAll { scannedAt = now }
            for ns in scanAll ? Array(owned.keys) : Array(ready) {
                guard let n = owned[ns], ready.contains(ns) || now - n.visitedAt >= 1 else { continue }
                n.visitedAt = now
                let (got, dropped) = drain(n, countDrops: now - n.windowStart >= 1)
                if n.ring.filledBlock { filling = true }
                packets += got
                drops += dropped
                n.windowPackets += got
                n.windowDrops += dropped
                if now - n.windowStart >= 1 {
                    let rate = Double(n.windowPackets) / (now - n.windowStart)
                    // Calm: under a quarter of what the next smaller ring takes.
                    if n.tier == 0 || rate >= RingSize.tiers[n.tier - 1].packetsPerSecond / 4 { n.calmSince = now }
                    let next = Self.nextTier(n.tier, rate: rate, dropped: n.windowDrops > 0, calmFor: now - n.calmSince)
                    if next != n.tier, let pid = wanted[ns] {
                        let (g, d) = resize(n, ns: ns, to: next, pid: pid, now: now)
                        packets += g
                        drops += d
                        if !n.registered { unregistered = true }
                    }
                    n.windowStart = now
                    n.windowPackets = 0
                    n.windowDrops = 0
                }
                n.status.ringBytes = n.ring.blockSize * n.ring.blockCount
                if got > 0 { n.packetsSinceFlows = true }
                n.book.absorb()
                // Closed connections are read once a pass: rebuilt at most every second while
                // packets come, and every five seconds (they age out) when none do.
                if now - n.flowsAt >= (n.packetsSinceFlows ? 1 : 5) {
                    n.book.sweep(now: now)
                    n.packetsSinceFlows = false
                    n.flows = n.book.closedFlows(now: now)
                    n.flowsAt = now
                }
                // Open connections are published as soon as one begins: the sampler learns a
                // namespace's new connections from them instead of walking the host's TCP table,
                // and one published after the pass that counts it costs that walk.
                if n.book.flowsOpened || n.flowsAt == now {
                    n.open = n.book.openConnections()
                }
                // Sessions are judged again at most every `sessionsEvery` (the watcher reads them
                // once a pass), and only the flows packets reached: a busy ring wakes this thread
                // many times a second, and judging every flow each time was most of the agent's CPU.
                if n.book.sessionsStale && now - n.publishedAt >= Self.sessionsEvery {
                    n.published = n.book.sessions()
                    n.publishedAt = now
                }
                published[ns] = (n.published, n.status, n.book.names, n.flows, n.open)
            }
            shared.withLock { s in
                for (ns, e) in newFailures {
                    s.failed.insert(ns)
                    if s.firstError == nil { s.firstError = e }
                }
                for (ns, p) in published where s.wanted[ns] != nil {
                    s.sessions[ns] = p.0
                    s.status[ns] = p.1
                    s.names[ns] = p.2
                    s.flows[ns] = p.3
                    s.open[ns] = p.4
                }
                s.packets += packets
                s.drops += drops
            }
        }
    }
}
