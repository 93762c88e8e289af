import Foundation
import MinewatchCore
import MinewatchModel
import MinewatchSignatures
import Testing
import TestSupport
@testable import MinewatchHost
@testable import MinewatchRuntime
@testable import MinewatchNetwork

/// Builds observation sequences the way the watcher records them: cumulative tcp_info counters
/// per socket and interface counters, every `step` seconds.
struct Recorder {
    var t0 = Date(timeIntervalSince1970: 1_800_000_000)
    /// Passes are never exactly the interval apart.
    var step = 2.05
    var sockets: [UInt64: SocketEntry] = [:]
    var iface = NetCounters()
    var listen: Set<UInt16> = []
    var hostNetwork = false

    mutating func open(_ inode: UInt64, local: UInt16, remote: String, port: UInt16) {
        sockets[inode] = SocketEntry(proto: .tcp, localAddress: "10.0.0.2", localPort: local, remoteAddress: remote, remotePort: port,
                                     state: 1, inode: inode, counters: TCPCounters(bytesSent: 0, bytesReceived: 0))
    }
    mutating func close(_ inode: UInt64) { sockets[inode] = nil }
    /// Traffic on one socket; replies = data segments received.
    mutating func traffic(_ inode: UInt64, tx: UInt64, rx: UInt64, replies: UInt32 = 0) {
        guard var s = sockets[inode], var c = s.counters else { return }
        c.bytesSent += tx; c.bytesReceived += rx; c.dataSegsIn += replies
        s.counters = c
        sockets[inode] = s
        iface.txBytes += tx + tx / 20; iface.rxBytes += rx + tx / 40  // headers and ACKs
        iface.txPackets += tx / 1448 + 1; iface.rxPackets += tx / 2896 + 1
    }
    func observation(_ i: Int) -> NetObservation {
        NetObservation(time: t0.addingTimeInterval(Double(i) * step), sockets: Array(sockets.values), listenPorts: listen,
                       interfaces: hostNetwork ? nil : iface, hostNetwork: hostNetwork, owners: Dictionary(uniqueKeysWithValues: sockets.keys.map { ($0, Int32(100)) }))
    }
}

/// Runs `passes` passes; `each` changes the recorder before pass i. Returns the first pass with a
/// verdict, and the verdict.
func drive(_ passes: Int, model: BandwidthThresholds = BandwidthThresholds(), _ each: (Int, inout Recorder) -> Void) -> (Int, BandwidthVerdict)? {
    var r = Recorder()
    var d = BandwidthJudge(model: model)
    for i in 0..<passes {
        each(i, &r)
        d.observe(r.observation(i))
        if let v = d.verdict() { return (i, v) }
    }
    return nil
}

@Suite struct BandwidthDetectorTests {
    /// PacketCrypt shape: a poll connection per pool (config.json every 5 s) and an upload
    /// connection per handler; every batch goes to every handler and gets a small JSON reply.
    @Test func packetCryptShapeFiresWithinTheWindowAndIsCorroborated() throws {
        let hit = drive(60) { i, r in
            if i == 0 {
                r.open(1, local: 40001, remote: "198.18.1.10", port: 80)
                r.open(2, local: 40002, remote: "198.18.1.10", port: 80)
                r.open(3, local: 40003, remote: "198.18.1.11", port: 80)
                r.open(4, local: 40004, remote: "198.18.1.11", port: 80)
            }
            if i % 3 == 0 { r.traffic(1, tx: 180, rx: 620, replies: 1); r.traffic(3, tx: 180, rx: 620, replies: 1) }
            // ~150 KiB/s per handler, a 300-byte reply per batch.
            r.traffic(2, tx: 300_000, rx: 300, replies: 1)
            r.traffic(4, tx: 300_000, rx: 300, replies: 1)
        }
        let (pass, v) = try #require(hit)
        #expect(Double(pass) * 2.05 <= 30, "fired at \(pass * 2) s")
        #expect(v.destinations.count == 2)
        #expect(v.mirrored && v.polls && v.perConnection)
        #expect(v.ratio > 20)  // interface-level ACK headers count as download too
        #expect(v.uploadRate > 250_000)
        #expect(v.uploader == 100)
    }

    @Test func lowRateBatchesEveryTenSecondsStillFire() throws {
        // 100 announcements/s: one 1 MB batch every 10 s on a keep-alive connection.
        let hit = drive(60) { i, r in
            if i == 0 { r.open(1, local: 40001, remote: "203.0.113.5", port: 80) }
            if i % 5 == 4 { r.traffic(1, tx: 1_000_000, rx: 280, replies: 1) }
            if i % 3 == 0 { r.traffic(1, tx: 170, rx: 600, replies: 1) }
        }
        let (pass, v) = try #require(hit, "no verdict")
        #expect(Double(pass) * 2 <= 40)
        #expect(!v.mirrored)
        #expect(v.destinations.map(\.address) == ["203.0.113.5"])
    }

    @Test func aWebServerServingDownloadsIsQuiet() {
        let hit = drive(60) { i, r in
            r.listen = [8080]
            if i % 2 == 0 { r.close(UInt64(100 + i - 2)); r.open(UInt64(100 + i), local: 8080, remote: "198.18.1.20", port: UInt16(50000 + i)) }
            r.traffic(UInt64(100 + i - i % 2), tx: 2_000_000, rx: 200, replies: 1)
        }
        #expect(hit == nil)
    }

    @Test func aBulkDownloaderIsQuiet() {
        let hit = drive(60) { i, r in
            if i == 0 { r.open(1, local: 40001, remote: "198.18.1.20", port: 8080) }
            r.traffic(1, tx: 20_000, rx: 4_000_000, replies: 2000)
        }
        #expect(hit == nil)
    }

    @Test func aLongSingleUploadIsQuietUntilItEnds() {
        // One request body streamed for 100 s, one reply at the end: a backup.
        let hit = drive(60) { i, r in
            if i == 0 { r.open(1, local: 40001, remote: "198.18.1.30", port: 443) }
            if i < 50 { r.traffic(1, tx: 2_000_000, rx: 0) }
            if i == 50 { r.traffic(1, tx: 0, rx: 300, replies: 1) }
            if i == 51 { r.close(1) }
        }
        #expect(hit == nil)
    }

    @Test func aChattyAPIClientIsQuiet() {
        // 20 requests/s of 2 KiB JSON with 3 KiB replies, a new connection every pass.
        let hit = drive(60) { i, r in
            r.close(UInt64(i)); r.open(UInt64(i + 1), local: UInt16(41000 + i), remote: "198.18.1.40", port: 8443)
            r.traffic(UInt64(i + 1), tx: 80_000, rx: 120_000, replies: 40)
        }
        #expect(hit == nil)
    }

    @Test func oneBurstThenSilenceIsQuiet() {
        let hit = drive(60) { i, r in
            if i == 0 { r.open(1, local: 40001, remote: "198.18.1.30", port: 80) }
            if i == 1 { r.traffic(1, tx: 20_000_000, rx: 300, replies: 1) }
            if i > 1 && i % 3 == 0 { r.traffic(1, tx: 150, rx: 600, replies: 1) }
        }
        #expect(hit == nil)
    }

    @Test func uploadSpreadOverManyDestinationsIsNotAMiner() {
        // A peer-to-peer seeder uploading to 40 peers over connections it opened.
        let hit = drive(60) { i, r in
            if i == 0 { for p in 0..<40 { r.open(UInt64(p + 1), local: UInt16(42000 + p), remote: "198.18.1.\(p + 50)", port: 6881) } }
            for p in 0..<40 { r.traffic(UInt64(p + 1), tx: 50_000, rx: 500, replies: 3) }
        }
        #expect(hit == nil)
    }

    @Test func thresholdsAreConfigurable() {
        var model = BandwidthThresholds()
        model.minUploadRate = 10_000_000  // 10 MB/s: the PacketCrypt shape above is below it
        let hit = drive(60, model: model) { i, r in
            if i == 0 { r.open(2, local: 40002, remote: "198.18.1.10", port: 80) }
            r.traffic(2, tx: 300_000, rx: 300, replies: 1)
        }
        #expect(hit == nil)
        model = BandwidthThresholds()
        model.window = 10
        let fast = drive(60, model: model) { i, r in
            if i == 0 { r.open(2, local: 40002, remote: "198.18.1.10", port: 80) }
            r.traffic(2, tx: 300_000, rx: 300, replies: 1)
        }
        #expect(fast.map { Double($0.0) * 2.05 }.map { $0 >= 10 && $0 <= 12.5 } == true, "\(String(describing: fast?.0))")
    }

    @Test func withoutPerConnectionCountersInterfaceTotalsAreUsed() throws {
        // Not root: /proc/net/tcp lists the connections but has no byte counts.
        var r = Recorder()
        var d = BandwidthJudge()
        var verdict: BandwidthVerdict?
        r.open(1, local: 40001, remote: "198.18.1.10", port: 80)
        for i in 0..<30 {
            r.traffic(1, tx: 300_000, rx: 300, replies: 1)
            var o = r.observation(i)
            o.connections = o.connections.map { var c = $0; c.counters = nil; return c }
            d.observe(o)
            if let v = d.verdict() { verdict = v; break }
        }
        let v = try #require(verdict)
        #expect(!v.perConnection)
        #expect(v.destinations.map(\.address) == ["198.18.1.10"])
    }
}

/// The test double of the sock_diag reader: sockets per namespace, changed by the test between passes.
final class RecordedSockets: SocketStatsSource {
    var byNetns: [UInt64: [SocketEntry]] = [:]
    func tcpSockets(pid: Int32, netns: UInt64) -> [SocketEntry]? { byNetns[netns] }
    func retain(namespaces: Set<UInt64>) {}
}

@Suite struct WatcherBandwidthTests {
    @Test func watcherRaisesOneBandwidthAlertWithEvidence() throws {
        let proc = try FakeProc()
        let miner = String(repeating: "a7", count: 32), web = String(repeating: "b8", count: 32)
        try proc.add(pid: 900, comm: "svc", cgroup: "/libpod_parent/libpod-\(miner)", cmdline: ["/svc"], exe: Samples.elf(["plain"]), netns: 4026533001)
        try proc.add(pid: 901, comm: "httpd", cgroup: "/libpod_parent/libpod-\(web)", cmdline: ["/httpd"], exe: Samples.elf(["plain"]), netns: 4026533002)
        let clock = StepClock(Date(timeIntervalSince1970: 1_900_000_000))
        let sockets = RecordedSockets()
        let w = Watcher(rules: CompiledRules(BundledRules.load().0), proc: ProcfsReader(root: proc.root), clock: clock, sockets: sockets)
        w.settings.scratchPrefixes = []
        var minerRec = Recorder(), webRec = Recorder()
        minerRec.open(1, local: 40001, remote: "198.18.1.10", port: 80)
        minerRec.open(2, local: 40002, remote: "198.18.1.11", port: 80)
        webRec.listen = [8080]
        webRec.open(3, local: 8080, remote: "198.18.1.30", port: 50000)
        var alerts: [Alert] = []
        for i in 0..<30 {
            minerRec.traffic(1, tx: 400_000, rx: 300, replies: 1)
            minerRec.traffic(2, tx: 400_000, rx: 300, replies: 1)
            webRec.traffic(3, tx: 5_000_000, rx: 400, replies: 2)
            sockets.byNetns[4026533001] = Array(minerRec.sockets.values)
            sockets.byNetns[4026533002] = Array(webRec.sockets.values) + [SocketEntry(proto: .tcp, localAddress: "0.0.0.0", localPort: 8080, remoteAddress: "0.0.0.0", remotePort: 0, state: 10, inode: 99)]
            alerts += w.poll()
            if i == 5 {
                let t = try #require(w.telemetry[web])
                #expect(t.inboundConnections == 1 && t.outboundConnections == 0 && t.listeningPorts == [8080])
                #expect((t.inboundTxBytesPerSecond ?? 0) > 2_000_000)
                #expect(w.telemetry[miner]?.outboundConnections == 2)
            }
            clock.date += 2
        }
        // Without capture, the same volume to two destinations is what a load-balanced upload
        // looks like too: a trait with its reasons, no alert.
        #expect(alerts.isEmpty, "\(alerts.map(\.summary))")
        let trait = try #require(w.telemetry[miner]?.traits?.first)
        #expect(trait.name == "upload-heavy" && trait.detector == .bandwidthMiner)
        #expect(trait.summary.contains("198.18.1.10") && trait.summary.contains("similar volume to 2 destinations"), "\(trait.summary)")
        #expect(trait.summary.hasSuffix(BandwidthEvidence.traitSuffix))
        #expect(w.telemetry[web]?.traits == nil)
    }
}

@Suite struct LowAlertsDoNotCorroborateTests {
    /// restic backing up to a REST server on port 8000 (one of Falco's miner ports): the port
    /// gives a low pool-contact alert, which is no evidence that a miner is behind the upload.
    @Test func aPoolPortAloneLeavesTheUploadATrait() throws {
        let proc = try FakeProc()
        let cid = String(repeating: "c9", count: 32)
        try proc.add(pid: 910, comm: "restic", cgroup: "/libpod_parent/libpod-\(cid)", cmdline: ["restic", "backup", "/data"], exe: Samples.elf(["plain"]), netns: 4026533011)
        let clock = StepClock(Date(timeIntervalSince1970: 1_900_000_000))
        let sockets = RecordedSockets()
        let w = Watcher(rules: CompiledRules(BundledRules.load().0), proc: ProcfsReader(root: proc.root), clock: clock, sockets: sockets)
        w.settings.scratchPrefixes = []
        var r = Recorder()
        r.open(1, local: 40001, remote: "198.18.1.12", port: 8000)
        var alerts: [Alert] = []
        for _ in 0..<20 {
            r.traffic(1, tx: 600_000, rx: 700, replies: 3)
            sockets.byNetns[4026533011] = Array(r.sockets.values)
            alerts += w.poll()
            clock.date += 2.05
        }
        #expect(alerts.map(\.detector) == [.poolContact] && alerts.first?.severity == .low, "\(alerts.map { "\($0.detector) \($0.severity)" })")
        #expect(w.telemetry[cid]?.traits?.first?.name == "upload-heavy")
    }
}

@Suite struct HostNetworkTests {
    /// A container sharing the host's network namespace: no interface counters of its own, so
    /// only the sockets its processes hold (by inode, from /proc/<pid>/fd) are its traffic; the
    /// host's other connections are not attributed to it.
    @Test func hostNetworkContainerUsesItsOwnSocketsOnly() throws {
        let proc = try FakeProc()
        let hostNS = 4026531840
        let cid = String(repeating: "9d", count: 32)
        try proc.add(pid: 1, comm: "systemd", cgroup: "/init.scope", cmdline: ["/sbin/init"], exe: Samples.elf(["plain"]), netns: hostNS)
        // Its command line names a PacketCrypt pool: the process detector's alert is the specific
        // evidence that makes the upload shape an alert.
        try proc.add(pid: 950, comm: "svc", cgroup: "/docker/\(cid)", cmdline: ["/svc", "ann", "-p", "pkt1qquyqjzstpsxsurcszyfpx9q4zct3sxg6z52rdt", "http://pool.pkt.world"],
                     exe: Samples.elf(["plain"]), netns: hostNS)
        // The container's process holds sockets 11 and 12; the host holds 13 (a big backup).
        try FileManager.default.createDirectory(atPath: "\(proc.root)/950/fd", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: "\(proc.root)/950/fd/5", withDestinationPath: "socket:[11]")
        try FileManager.default.createSymbolicLink(atPath: "\(proc.root)/950/fd/6", withDestinationPath: "socket:[12]")
        try FileManager.default.createSymbolicLink(atPath: "\(proc.root)/950/fd/7", withDestinationPath: "/dev/null")
        let clock = StepClock(Date(timeIntervalSince1970: 1_950_000_000))
        let sockets = RecordedSockets()
        let w = Watcher(rules: CompiledRules(BundledRules.load().0), proc: ProcfsReader(root: proc.root), clock: clock, sockets: sockets)
        w.settings.scratchPrefixes = []
        var r = Recorder()
        r.hostNetwork = true
        r.open(11, local: 40011, remote: "198.18.1.10", port: 80)
        r.open(12, local: 40012, remote: "198.18.1.11", port: 80)
        r.open(13, local: 40013, remote: "198.18.1.50", port: 22)
        var alerts: [Alert] = []
        for _ in 0..<20 {
            r.traffic(11, tx: 300_000, rx: 300, replies: 1)
            r.traffic(12, tx: 300_000, rx: 300, replies: 1)
            r.traffic(13, tx: 9_000_000, rx: 100, replies: 0)
            sockets.byNetns[UInt64(hostNS)] = Array(r.sockets.values)
            alerts += w.poll()
            clock.date += 2.05
        }
        let t = try #require(w.telemetry[cid])
        #expect(t.hostNetwork && t.rxBytesPerSecond == nil && t.outboundConnections == 2)
        #expect((t.outboundTxBytesPerSecond ?? 0) < 400_000, "the host's backup is not the container's: \(t)")
        let a = try #require(alerts.first { $0.detector == .bandwidthMiner })
        #expect(a.container.id == cid && a.severity == .high)
        #expect(a.evidence.contains { $0.value.hasPrefix("host network") })
        #expect(a.evidence.contains { $0.value == "miner-process alert" }, "\(a.evidence)")
        #expect(!a.evidence.contains { $0.value.hasPrefix("198.18.1.50") })
    }
}
