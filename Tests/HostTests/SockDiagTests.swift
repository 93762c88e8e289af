import Foundation
import MinewatchCore
import Testing
import TestSupport
@testable import MinewatchHost
#if canImport(Glibc)
import Glibc
#endif

/// A connected loopback pair made in this process.
private func loopbackPair() throws -> (client: Int32, server: Int32, clientPort: UInt16, serverPort: UInt16) {
    let l = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(l, $0, len) } }
    listen(l, 1)
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(l, $0, &len) } }
    let serverPort = UInt16(bigEndian: addr.sin_port)
    let c = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(c, $0, len) } }
    #expect(rc == 0)
    let s = accept(l, nil, nil)
    close(l)
    var local = sockaddr_in()
    _ = withUnsafeMutablePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(c, $0, &len) } }
    return (c, s, UInt16(bigEndian: local.sin_port), serverPort)
}

private func ownNetns() -> UInt64 {
    var buf = [CChar](repeating: 0, count: 256)
    let n = readlink("/proc/self/ns/net", &buf, 255)
    let s = String(decoding: buf[0..<max(0, n)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    return UInt64(s.drop { $0 != "[" }.dropFirst().prefix { $0 != "]" }) ?? 0
}

@Suite struct SockDiagTests {
    @Test func countsBytesOfARealLoopbackConnection() throws {
        let p = try loopbackPair()
        defer { close(p.client); close(p.server) }
        let payload = [UInt8](repeating: 0x41, count: 300_000)
        var sent = 0
        var got = 0
        var buf = [UInt8](repeating: 0, count: 65536)
        while got < payload.count {
            if sent < payload.count {
                let n = payload.withUnsafeBytes { send(p.client, $0.baseAddress! + sent, min(65536, payload.count - sent), 0) }
                sent += max(0, n)
            }
            let r = buf.withUnsafeMutableBytes { recv(p.server, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if r > 0 { got += r }
        }
        _ = "ok".withCString { send(p.server, $0, 2, 0) }
        usleep(50_000)
        let reader = SockDiagReader()
        guard let sockets = reader.tcpSockets(pid: getpid(), netns: ownNetns()) else {
            // Our own namespace needs CAP_SYS_ADMIN only to setns into itself; CI runs as root.
            let ci = ProcessInfo.processInfo.environment["CI"] == "true"
            #expect(!ci && getuid() != 0, "sock_diag unavailable: \(reader.firstError?.description ?? "?")")
            return
        }
        let client = try #require(sockets.first { $0.localPort == p.clientPort && $0.remotePort == p.serverPort })
        let counters = try #require(client.counters)
        #expect(counters.bytesSent == 300_000)
        #expect(counters.bytesReceived == 2)
        #expect(client.isEstablished)
        #expect(client.remoteAddress == "127.0.0.1")
        // The inode matches the one the process holds.
        #expect(ProcfsReader().socketInodes(getpid()).contains(client.inode))
        let server = try #require(sockets.first { $0.localPort == p.serverPort && $0.remotePort == p.clientPort })
        #expect(server.counters?.bytesReceived == 300_000)
        #expect(server.counters?.bytesSent == 2)
    }

    /// A pid no longer in the namespace asked about (reused, or a pid of a fake /proc) is not
    /// asked: no socket is made in whatever namespace it is in now, and it is not a failure of
    /// sock_diag.
    @Test func aPidInAnotherNamespaceIsNotAsked() throws {
        try prerequisite(getuid() == 0, "sock_diag in a namespace needs root")
        let reader = SockDiagReader()
        #expect(reader.tcpSockets(pid: getpid(), netns: ownNetns() &+ 1) == nil)
        #expect(reader.refresh([], pid: getpid(), netns: ownNetns() &+ 1) == nil)
        #expect(reader.firstError == nil)
        #expect(reader.tcpSockets(pid: getpid(), netns: ownNetns()) != nil)
    }

    @Test func requestHasTheKernelLayout() {
        let r = SockDiagParser.request(family: 2, sequence: 7)
        #expect(r.count == 72)
        #expect(r[0] == 72 && r[4] == 20 && r[6] == 0x01 && r[7] == 0x03)
        #expect(r[16] == 2 && r[17] == 6 && r[18] == 2)
    }

    @Test func hostileRepliesAreErrorsWithOffsets() {
        var out: [SocketEntry] = []
        // A message whose length runs past the datagram.
        var bad = [UInt8](repeating: 0, count: 32)
        bad[0] = 200; bad[4] = 20
        #expect(throws: MinewatchError.self) { try SockDiagParser.parse(bad, into: &out) }
        // An inet_diag_msg that is too short.
        var short = [UInt8](repeating: 0, count: 40)
        short[0] = 40; short[4] = 20
        do {
            _ = try SockDiagParser.parse(short, into: &out)
            Issue.record("short message accepted")
        } catch {
            #expect(error.description.contains("offset 0"))
        }
        // An attribute that runs past its message.
        var attr = [UInt8](repeating: 0, count: 16 + 72 + 8)
        attr[0] = UInt8(attr.count); attr[4] = 20; attr[16] = 2
        attr[88] = 200; attr[90] = 2
        #expect(throws: MinewatchError.self) { try SockDiagParser.parse(attr, into: &out) }
        // An error message carries errno.
        var err = [UInt8](repeating: 0, count: 36)
        err[0] = 36; err[4] = 2
        let eperm = UInt32(bitPattern: -1)
        withUnsafeBytes(of: eperm.littleEndian) { for (i, b) in $0.enumerated() { err[16 + i] = b } }
        #expect(throws: MinewatchError.self) { try SockDiagParser.parse(err, into: &out) }
        // An error code with no negation (Int32.min; found by scripts/fuzz) is malformed, not a trap.
        withUnsafeBytes(of: UInt32(0x8000_0000).littleEndian) { for (i, b) in $0.enumerated() { err[16 + i] = b } }
        do {
            _ = try SockDiagParser.parse(err, into: &out)
            Issue.record("Int32.min error code accepted")
        } catch {
            #expect(error.description.contains("not a negated errno"))
        }
        // DONE ends the dump; truncated trailing bytes are ignored.
        var done = [UInt8](repeating: 0, count: 20)
        done[0] = 16; done[4] = 3
        #expect((try? SockDiagParser.parse(done, into: &out)) == .done)
        #expect(out.isEmpty)
    }
}

@Suite struct CheapRereadTests {
    @Test func tcpActivityFromSnmp() {
        let snmp = """
        Ip: Forwarding DefaultTTL
        Ip: 1 64
        Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets CurrEstab InSegs OutSegs RetransSegs InErrs OutRsts InCsumErrors
        Tcp: 1 200 120000 -1 10 20 1 2 3 1000 2000 5 0 7 0
        Udp: InDatagrams
        Udp: 4
        """
        let c = NetParsers.tcpCounters(Array(snmp.utf8))
        #expect(c?.connections == 10 + 20 + 1 + 2 && c?.segments == 1000 + 2000 && c?.established == 3)
        #expect(NetParsers.tcpCounters(Array("Tcp: a b\n".utf8)) == nil)
        // The real file of this process's namespace parses.
        #expect(ProcfsReader().tcpCounters(getpid()) != nil)
    }

    @Test func heldStatFilesNoticeAnExitedProcess() throws {
        let files = ProcStatFiles(capacity: 8)
        let reader = ProcfsReader()
        let me = try #require(reader.process(getpid()))
        #expect(reader.process(getpid(), known: me, files: files)?.startTicks == me.startTicks)
        // A child that exits: its held stat file stops reading, so it is reported gone even if
        // the pid were reused.
        let child = try BackgroundProcess(["/bin/sleep", "30"], label: "sleep")
        let pid = child.process.processIdentifier
        #expect(files.read(pid, root: "/proc") != nil)
        child.stop()
        #expect(files.read(pid, root: "/proc") == nil)
        #expect(ProcParsers.stat(Array("12 (a b) c) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 42 1".utf8))?.start == 42)
        #expect(ProcParsers.stat(Array("12 (x) S -1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 42".utf8))?.ppid == -1)
        #expect(ProcParsers.stat(Array("12 (x) S 1 2 3".utf8)) == nil)
    }
}

@Suite struct SockDiagRefreshTests {
    @Test func socketsAreAskedForAgainByID() throws {
        try prerequisite(getuid() == 0, "root is required to ask sock_diag for sockets by id")
        let pair = try loopbackPair()
        let (c, s, port) = (pair.client, pair.server, pair.clientPort)
        defer { close(s) }
        let reader = SockDiagReader()
        let ns = ownNetns()
        let all = try #require(reader.tcpSockets(pid: getpid(), netns: ns))
        let mine = all.filter { $0.localPort == port }
        #expect(mine.count == 1 && mine.first?.diagID?.count == 49)
        _ = [UInt8](repeating: 7, count: 5000).withUnsafeBytes { send(c, $0.baseAddress, $0.count, 0) }
        // Poll rather than sleep a fixed time: on a busy machine the kernel may take a while.
        var again = try #require(reader.refresh(mine, pid: getpid(), netns: ns))
        for _ in 0..<100 where again.first?.counters?.bytesSent != 5000 {
            usleep(50_000)
            again = try #require(reader.refresh(mine, pid: getpid(), netns: ns))
        }
        #expect(again.first?.counters?.bytesSent == 5000, "\(again)")
        close(c)
        var gone = false
        for _ in 0..<100 where !gone {
            usleep(50_000)
            gone = reader.refresh(mine, pid: getpid(), netns: ns)?.isEmpty == true
        }
        #expect(gone, "a closed connection is dropped")
    }

    /// A connection known only by its addresses (as the capture sees it opening) is found by an
    /// exact request without a cookie, with the same id the dump gives; the wrong way round it
    /// is not found.
    @Test func connectionsAreFoundByTheirAddresses() throws {
        try prerequisite(getuid() == 0, "root is required to ask sock_diag for sockets")
        let pair = try loopbackPair()
        defer { close(pair.client); close(pair.server) }
        let reader = SockDiagReader()
        let ns = ownNetns()
        let dumped = try #require(reader.tcpSockets(pid: getpid(), netns: ns)?.first { $0.localPort == pair.clientPort })
        let lookup = try #require(SocketEntry.lookup(localAddress: dumped.localAddress, localPort: dumped.localPort,
                                                     remoteAddress: dumped.remoteAddress, remotePort: dumped.remotePort))
        #expect(lookup.diagID?.count == 49)
        #expect(Array(lookup.diagID?.prefix(37) ?? []) == Array(dumped.diagID?.prefix(37) ?? []), "family, ports and addresses as the kernel writes them")
        let found = try #require(reader.refresh([lookup], pid: getpid(), netns: ns))
        #expect(found.count == 1 && found.first?.inode == dumped.inode && found.first?.counters != nil, "\(found)")
        let reversed = try #require(SocketEntry.lookup(localAddress: dumped.remoteAddress, localPort: dumped.remotePort,
                                                       remoteAddress: dumped.localAddress, remotePort: dumped.localPort))
        let other = try #require(reader.refresh([reversed], pid: getpid(), netns: ns))
        #expect(other.allSatisfy { $0.inode != dumped.inode }, "the reversed tuple is the other end (the server's socket), if any")
        #expect(SocketEntry.lookup(localAddress: "10.0.0.1", localPort: 1, remoteAddress: "::1", remotePort: 2) == nil)
    }
}
