import Foundation
import MinewatchCore
import MinewatchHost
import MinewatchNetwork
@testable import MinewatchRuntime
import MinewatchSignatures
import Testing
import TestSupport

/// The test double of sock_diag that counts dumps (each walks the host's whole TCP table) and
/// answers refreshes by id from the same sockets.
final class CountingSockets: SocketStatsSource {
    var sockets: [SocketEntry] = []
    var dumps = 0
    func tcpSockets(pid: Int32, netns: UInt64) -> [SocketEntry]? {
        dumps += 1
        return sockets
    }
    /// By id (the inode stands for it), or by addresses for a lookup without one (inode 0).
    func refresh(_ asked: [SocketEntry], pid: Int32, netns: UInt64) -> [SocketEntry]? {
        let ids = Set(asked.filter { $0.inode != 0 }.map(\.inode))
        let keys = Set(asked.filter { $0.inode == 0 }.map { "\($0.localAddress):\($0.localPort)>\($0.remoteAddress):\($0.remotePort)" })
        return sockets.filter { ids.contains($0.inode) || keys.contains("\($0.localAddress):\($0.localPort)>\($0.remoteAddress):\($0.remotePort)") }
    }
    func retain(namespaces: Set<UInt64>) {}
}

/// When a namespace's sockets are dumped (each dump walks the host's whole TCP table): short
/// connections that came and went between passes, with every listed socket still there, are
/// refreshed by id for up to 10 s; a connection that replaced a listed one, or one more
/// established, is dumped at once (a socket listed late loses what it moved before).
@Suite struct SocketDumpTests {
    static func counters(_ proc: FakeProc, pid: Int32, packets: Int, opens: Int, established: Int) throws {
        try counters(proc, pid: pid, rx: packets, tx: packets, opens: opens, established: established)
    }

    /// A namespace's /proc/<pid>/net/dev (eth0's packets each way) and net/snmp (connections
    /// opened and established; segments in and out as many as the packets).
    static func counters(_ proc: FakeProc, pid: Int32, rx: Int, tx: Int, opens: Int, established: Int) throws {
        let dev = """
            Inter-|   Receive                                                |  Transmit
             face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
              eth0: \(rx * 100) \(rx) 0 0 0 0 0 0 \(tx * 100) \(tx) 0 0 0 0 0 0

            """
        _ = try proc.dir.file("proc/\(pid)/net/dev", Array(dev.utf8))
        let snmp = """
            Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets CurrEstab InSegs OutSegs RetransSegs InErrs OutRsts InCsumErrors
            Tcp: 1 200 120000 -1 \(opens) 0 0 0 \(established) \(rx) \(tx) 0 0 0 0

            """
        _ = try proc.dir.file("proc/\(pid)/net/snmp", Array(snmp.utf8))
    }

    static func socket(_ inode: UInt64, port: UInt16) -> SocketEntry {
        SocketEntry(proto: .tcp, localAddress: "198.18.1.5", localPort: port, remoteAddress: "198.18.1.10", remotePort: 80, state: 1, inode: inode)
    }

    /// One client container in its own namespace, watched with `CountingSockets`, and its passes.
    final class Client {
        let proc: FakeProc
        let id: String
        let pid: Int32
        let clock = StepClock(Date(timeIntervalSince1970: 1_900_000_000))
        let sockets = CountingSockets()
        let watcher: Watcher
        var packets = 0

        init(id: String, pid: Int32, netns: Int) throws {
            proc = try FakeProc()
            self.id = id
            self.pid = pid
            try proc.add(pid: pid, comm: "client", cgroup: "/libpod_parent/libpod-\(id)", cmdline: ["/client"], exe: Samples.elf(["plain"]), netns: netns)
            watcher = Watcher(rules: CompiledRules(BundledRules.load().0), proc: ProcfsReader(root: proc.root), clock: clock, sockets: sockets)
            watcher.settings.scratchPrefixes = []
        }

        /// One pass `after` seconds: the namespace's sockets and TCP counters (packets move every
        /// pass unless `moved` is false).
        func pass(after: Double, _ listed: [SocketEntry]? = nil, opens: Int, established: Int, moved: Bool = true) throws {
            clock.date += after
            if let listed { sockets.sockets = listed }
            if moved { packets += 10 }
            try SocketDumpTests.counters(proc, pid: pid, packets: packets, opens: opens, established: established)
            _ = watcher.poll()
        }
        var dumps: Int { sockets.dumps }
        var outbound: Int? { watcher.telemetry[id]?.outboundConnections }
    }

    @Test func shortConnectionsAreRefreshedReplacedOnesDumped() throws {
        let c = try Client(id: String(repeating: "d4", count: 32), pid: 960, netns: 4026534001)
        let sockets = c.sockets, w = c.watcher, id = c.id
        try c.pass(after: 0, [Self.socket(1, port: 40001)], opens: 1, established: 1)
        #expect(sockets.dumps == 1)
        // A short connection came and went: the listed socket is still there, as many established.
        try c.pass(after: 2, opens: 2, established: 1)
        #expect(sockets.dumps == 1, "short connections are no reason to walk the TCP table")
        // The connection was replaced by another: dumped, so the new one is counted from its start.
        try c.pass(after: 2, [Self.socket(2, port: 40002)], opens: 3, established: 1)
        #expect(sockets.dumps == 2)
        #expect(w.telemetry[id]?.outboundConnections == 1)
        // One more established than the dump saw: dumped at once.
        try c.pass(after: 2, [Self.socket(2, port: 40002), Self.socket(3, port: 40003)], opens: 4, established: 2)
        #expect(sockets.dumps == 3)
        #expect(w.telemetry[id]?.outboundConnections == 2)
        // Short connections again: refreshed within 10 s of that dump; 11 s later the sockets
        // known cannot be matched with the kernel's counts (no sockstat here), and the walk
        // waits one pass (the counts may differ only for a moment), then is made.
        try c.pass(after: 2, opens: 5, established: 2)
        #expect(sockets.dumps == 3)
        try c.pass(after: 11, opens: 6, established: 2)
        #expect(sockets.dumps == 3)
        try c.pass(after: 2, opens: 7, established: 2)
        #expect(sockets.dumps == 4)
    }

    /// A capture that has a ring in every namespace and reports the connections it saw open.
    final class OpenFlows: SessionSource {
        var open: [CapturedFlow] = []
        func sync(_ wanted: [UInt64: Int32]) {}
        func sessions(_ ns: UInt64) -> [LiveSession] { [] }
        func status(_ ns: UInt64) -> LiveCapture.RingStatus? { .init(packets: 10, drops: 0, ringBytes: 128 << 10) }
        func openConnections(_ ns: UInt64) -> [CapturedFlow] { open }
    }

    /// With a capture ring in the namespace, a replaced connection is learned from the ring (asked
    /// for by its addresses) instead of a dump; one the ring has not handed over yet waits one
    /// pass, then the namespace is dumped; the table is walked at least every 30 s.
    @Test func connectionsTheCaptureSawOpenAreNotDumped() throws {
        let c = try Client(id: String(repeating: "d5", count: 32), pid: 961, netns: 4026534002)
        let sockets = c.sockets, w = c.watcher, id = c.id, clock = c.clock
        let flows = OpenFlows()
        w.capture = flows
        func opened(_ port: UInt16) -> CapturedFlow {
            CapturedFlow(id: UInt64(port), client: "198.18.1.5", clientPort: port, server: "198.18.1.10", serverPort: 80, clientBytes: 100, serverBytes: 100,
                         serverDataPackets: 1, first: clock.date)
        }
        try c.pass(after: 0, [Self.socket(1, port: 40001)], opens: 1, established: 1)
        #expect(sockets.dumps == 1)
        // Replaced, and the capture saw the new one open: found by its addresses, no dump.
        clock.date += 2
        flows.open = [opened(40002)]
        try c.pass(after: 0, [Self.socket(2, port: 40002)], opens: 2, established: 1)
        #expect(sockets.dumps == 1, "the capture named the new connection")
        #expect(w.telemetry[id]?.outboundConnections == 1)
        // Replaced again before the ring handed the new one over: the dump waits a pass...
        flows.open = []
        try c.pass(after: 2, [Self.socket(3, port: 40003)], opens: 3, established: 1)
        #expect(sockets.dumps == 1)
        // ...and the ring has it by then.
        flows.open = [opened(40003)]
        try c.pass(after: 2, opens: 3, established: 1)
        #expect(sockets.dumps == 1)
        #expect(w.telemetry[id]?.outboundConnections == 1)
        // Replaced by one the capture never sees opening (it joined mid-stream): dumped a pass later.
        flows.open = []
        try c.pass(after: 2, [Self.socket(4, port: 40004)], opens: 4, established: 1)
        #expect(sockets.dumps == 1)
        try c.pass(after: 2, opens: 4, established: 1)
        #expect(sockets.dumps == 2, "a pass later the counts still differ: dumped")
        // Short connections: no dump for 30 s after the last one, then one (a pass later, when
        // the known sockets still cannot be matched with the kernel's counts).
        try c.pass(after: 2, opens: 5, established: 1)
        #expect(sockets.dumps == 2)
        try c.pass(after: 29, opens: 6, established: 1)
        #expect(sockets.dumps == 2)
        try c.pass(after: 2, opens: 7, established: 1)
        #expect(sockets.dumps == 3)
    }

    /// Past the 30 s backstop, a namespace whose known sockets are all its tables hold (sockstat's
    /// counts, listeners and UDP included) is not walked; one more socket than known (a new
    /// listener) is, and every namespace is at least every 5 minutes.
    @Test func accountedNamespacesAreNotWalked() throws {
        let c = try Client(id: String(repeating: "d6", count: 32), pid: 962, netns: 4026534003)
        let sockets = c.sockets
        let flows = OpenFlows()
        c.watcher.capture = flows
        func sockstat(tcp: Int, udp: Int = 0) throws {
            _ = try c.proc.dir.file("proc/962/net/sockstat", Array("sockets: used 9\nTCP: inuse \(tcp) orphan 0 tw 2 alloc \(tcp) mem 1\nUDP: inuse \(udp) mem 0\n".utf8))
            _ = try c.proc.dir.file("proc/962/net/sockstat6", Array("TCP6: inuse 0\nUDP6: inuse 0\n".utf8))
        }
        try sockstat(tcp: 1)
        try c.pass(after: 0, [Self.socket(1, port: 40001)], opens: 1, established: 1)
        #expect(sockets.dumps == 1)
        // Short connections for 40 s: the one socket known is the one the kernel counts.
        var opens = 1
        for _ in 0..<20 {
            opens += 1
            try c.pass(after: 2, opens: opens, established: 1)
        }
        #expect(sockets.dumps == 1, "every socket accounted for: no walk after 30 s")
        // A listener opened: one more socket than known, walked.
        try sockstat(tcp: 2)
        let listener = SocketEntry(proto: .tcp, localAddress: "0.0.0.0", localPort: 8080, remoteAddress: "0.0.0.0", remotePort: 0, state: 10, inode: 9)
        opens += 1
        try c.pass(after: 2, [Self.socket(1, port: 40001), listener], opens: opens, established: 1)
        #expect(sockets.dumps == 1, "the counts may differ for a moment: the walk waits a pass")
        // The next pass walks it although no TCP segment moved (a listener moves none).
        try c.pass(after: 2, opens: opens, established: 1, moved: false)
        #expect(sockets.dumps == 2)
        // Accounted again, but 5 minutes after the last walk one is made. On the way, past the
        // 30 s backstop, the counts differ for one pass (a connection closing between the two
        // reads): no walk.
        for i in 0..<150 {
            if i == 20 { try sockstat(tcp: 3) } else if i == 21 { try sockstat(tcp: 2) }
            opens += 1
            try c.pass(after: 2, opens: opens, established: 1)
            if i == 21 { #expect(sockets.dumps == 2, "a moment's difference is no walk") }
        }
        #expect(sockets.dumps == 3)
    }

    /// A busy server's namespace past the 30 s backstop: connections open and close between the
    /// reads, so the kernel's counts differ from the sockets known by a different amount each
    /// pass. The walk waits while the difference keeps changing (at most 4 passes in a row); a
    /// difference that stays (a socket the capture cannot show) is walked for at its second pass.
    @Test func aChangingDifferenceWaitsAStayingOneIsWalked() throws {
        let c = try Client(id: String(repeating: "d8", count: 32), pid: 964, netns: 4026534005)
        let sockets = c.sockets
        c.watcher.capture = OpenFlows()
        func sockstat(tcp: Int, udp: Int = 0) throws {
            _ = try c.proc.dir.file("proc/964/net/sockstat", Array("sockets: used 9\nTCP: inuse \(tcp) orphan 0 tw 2 alloc \(tcp) mem 1\nUDP: inuse \(udp) mem 0\n".utf8))
            _ = try c.proc.dir.file("proc/964/net/sockstat6", Array("TCP6: inuse 0\nUDP6: inuse 0\n".utf8))
        }
        try sockstat(tcp: 1)
        var opens = 1
        try c.pass(after: 0, [Self.socket(1, port: 40001)], opens: opens, established: 1)
        #expect(sockets.dumps == 1)
        for _ in 0..<16 {
            opens += 1
            try c.pass(after: 2, opens: opens, established: 1)
        }
        #expect(sockets.dumps == 1, "past 30 s, every socket accounted for")
        // One more, one fewer, two more, one more: a different difference each pass; no walk.
        for (i, tcp) in [2, 0, 3, 2].enumerated() {
            try sockstat(tcp: tcp)
            opens += 1
            try c.pass(after: 2, opens: opens, established: 1)
            #expect(sockets.dumps == 1, "pass \(i): a changing difference is connections coming and going")
        }
        // A fifth pass in a row that differs: walked, whatever the difference.
        try sockstat(tcp: 0)
        opens += 1
        try c.pass(after: 2, opens: opens, established: 1)
        #expect(sockets.dumps == 2, "at most 4 passes without a walk")
        // Accounted again, then one UDP socket more, the same two passes running: walked at the second.
        try sockstat(tcp: 1)
        opens += 1
        try c.pass(after: 2, opens: opens, established: 1)
        #expect(sockets.dumps == 2)
        try c.pass(after: 31, opens: opens + 1, established: 1)
        try sockstat(tcp: 1, udp: 1)
        opens += 2
        try c.pass(after: 2, opens: opens, established: 1)
        #expect(sockets.dumps == 2)
        opens += 1
        try c.pass(after: 2, opens: opens, established: 1)
        #expect(sockets.dumps == 3, "the same difference two passes running: walked")
    }

    /// Received packets alone (the ARP broadcasts and router solicitations of a bridge's other
    /// containers) send a namespace with no TCP connection to net/snmp no more: nothing there
    /// can take a segment without answering it. With a connection, they do (a peer's ACK or RST
    /// changes its counters); and a packet sent always does.
    @Test func receivedPacketsAloneAreNoTCPActivityWithoutConnections() throws {
        let c = try Client(id: String(repeating: "d7", count: 32), pid: 963, netns: 4026534004)
        let sockets = c.sockets
        var rx = 5, tx = 5
        func pass(opens: Int, established: Int) throws {
            try Self.counters(c.proc, pid: 963, rx: rx, tx: tx, opens: opens, established: established)
            c.clock.date += 2
            _ = c.watcher.poll()
        }
        var counters = NetCounters()
        counters.rxPackets = 9
        counters.txPackets = 4
        #expect(HostSampler.noTCPActivity(counters, since: (all: 10, sent: 4), connectionsKnown: false))
        #expect(!HostSampler.noTCPActivity(counters, since: (all: 10, sent: 4), connectionsKnown: true))
        try pass(opens: 0, established: 0)
        #expect(sockets.dumps == 1)
        // Broadcasts received: net/snmp is not read, so the (here made up) opening is not seen.
        rx += 7
        try pass(opens: 1, established: 1)
        #expect(sockets.dumps == 1, "received packets alone, no connection: no TCP activity")
        // A packet sent: read, the connection seen, the namespace dumped.
        tx += 1
        sockets.sockets = [Self.socket(1, port: 40001)]
        try pass(opens: 1, established: 1)
        #expect(sockets.dumps == 2)
        #expect(c.outbound == 1)
        // Now with a connection, packets received alone are read: the peer reset it.
        rx += 1
        sockets.sockets = []
        try pass(opens: 1, established: 0)
        #expect(c.outbound == 0, "a received RST is TCP activity where there are connections")
    }
}
