import Foundation
import MinewatchCore
import MinewatchHost
import MinewatchRuntime
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
    func refresh(_ asked: [SocketEntry], pid: Int32, netns: UInt64) -> [SocketEntry]? {
        let ids = Set(asked.map(\.inode))
        return sockets.filter { ids.contains($0.inode) }
    }
    func retain(namespaces: Set<UInt64>) {}
}

/// When a namespace's sockets are dumped (each dump walks the host's whole TCP table): short
/// connections that came and went between passes, with every listed socket still there, are
/// refreshed by id for up to 10 s; a connection that replaced a listed one, or one more
/// established, is dumped at once (a socket listed late loses what it moved before).
@Suite struct SocketDumpTests {
    static func counters(_ proc: FakeProc, pid: Int32, packets: Int, opens: Int, established: Int) throws {
        let dev = """
            Inter-|   Receive                                                |  Transmit
             face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
              eth0: \(packets * 100) \(packets) 0 0 0 0 0 0 \(packets * 100) \(packets) 0 0 0 0 0 0

            """
        _ = try proc.dir.file("proc/\(pid)/net/dev", Array(dev.utf8))
        let snmp = """
            Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets CurrEstab InSegs OutSegs RetransSegs InErrs OutRsts InCsumErrors
            Tcp: 1 200 120000 -1 \(opens) 0 0 0 \(established) \(packets) \(packets) 0 0 0 0

            """
        _ = try proc.dir.file("proc/\(pid)/net/snmp", Array(snmp.utf8))
    }

    static func socket(_ inode: UInt64, port: UInt16) -> SocketEntry {
        SocketEntry(proto: .tcp, localAddress: "198.18.1.5", localPort: port, remoteAddress: "198.18.1.10", remotePort: 80, state: 1, inode: inode)
    }

    @Test func shortConnectionsAreRefreshedReplacedOnesDumped() throws {
        let proc = try FakeProc()
        let id = String(repeating: "d4", count: 32)
        try proc.add(pid: 960, comm: "client", cgroup: "/libpod_parent/libpod-\(id)", cmdline: ["/client"], exe: Samples.elf(["plain"]), netns: 4026534001)
        let clock = StepClock(Date(timeIntervalSince1970: 1_900_000_000))
        let sockets = CountingSockets()
        let w = Watcher(rules: CompiledRules(BundledRules.load().0), proc: ProcfsReader(root: proc.root), clock: clock, sockets: sockets)
        w.settings.scratchPrefixes = []
        // One pass `after` seconds: the namespace's sockets and TCP counters (packets move every pass).
        var packets = 0
        func pass(after: Double, _ listed: [SocketEntry]? = nil, opens: Int, established: Int) throws {
            clock.date += after
            if let listed { sockets.sockets = listed }
            packets += 10
            try Self.counters(proc, pid: 960, packets: packets, opens: opens, established: established)
            _ = w.poll()
        }
        try pass(after: 0, [Self.socket(1, port: 40001)], opens: 1, established: 1)
        #expect(sockets.dumps == 1)
        // A short connection came and went: the listed socket is still there, as many established.
        try pass(after: 2, opens: 2, established: 1)
        #expect(sockets.dumps == 1, "short connections are no reason to walk the TCP table")
        // The connection was replaced by another: dumped, so the new one is counted from its start.
        try pass(after: 2, [Self.socket(2, port: 40002)], opens: 3, established: 1)
        #expect(sockets.dumps == 2)
        #expect(w.telemetry[id]?.outboundConnections == 1)
        // One more established than the dump saw: dumped at once.
        try pass(after: 2, [Self.socket(2, port: 40002), Self.socket(3, port: 40003)], opens: 4, established: 2)
        #expect(sockets.dumps == 3)
        #expect(w.telemetry[id]?.outboundConnections == 2)
        // Short connections again: refreshed within 10 s of that dump, dumped 11 s later.
        try pass(after: 2, opens: 5, established: 2)
        #expect(sockets.dumps == 3)
        try pass(after: 11, opens: 6, established: 2)
        #expect(sockets.dumps == 4)
    }
}
