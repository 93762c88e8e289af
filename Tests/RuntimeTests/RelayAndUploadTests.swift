import Foundation
import MinewatchCore
import MinewatchPackets
import MinewatchModel
import MinewatchSignatures
import Testing
import TestSupport
@testable import MinewatchHost
@testable import MinewatchRuntime
@testable import MinewatchNetwork

/// Feeds `passes` observations through a traffic meter into the relay model; returns the first
/// pass with a verdict and the verdict.
private func relay(_ passes: Int, model: RelayThresholds = RelayThresholds(), names: [String: String] = [:],
                   _ each: (Int, inout Recorder) -> Void) -> (Int, RelayVerdict)? {
    var r = Recorder()
    var meter = TrafficMeter()
    var d = RelayJudge(model: model)
    for i in 0..<passes {
        each(i, &r)
        if let iv = meter.observe(r.observation(i)) {
            d.add(iv)
            if let v = d.verdict(names: names) { return (i, v) }
        }
    }
    return nil
}

@Suite struct RelayModelTests {
    /// A residential-proxy node: a TLS control tunnel to the vendor, streams to targets the
    /// customers ask for (several at once, opened and closed as they go), the tunnel carrying
    /// both directions plus a little framing.
    @Test func proxyNodeRelayingThroughATunnelIsFound() throws {
        let hit = relay(40) { i, r in
            if i == 0 { r.open(1, local: 40001, remote: "198.18.1.5", port: 443) }
            // Four targets at a time, each stream lives three passes.
            for k in 0..<4 {
                let id = UInt64(100 + (i / 3) * 4 + k)
                if i % 3 == 0 {
                    r.close(id - 4)
                    r.open(id, local: UInt16(41000 + Int(id % 20000)), remote: "198.18.1.\(20 + (i / 3 + k) % 9)", port: k % 2 == 0 ? 80 : 443)
                }
                r.traffic(id, tx: 6_000, rx: 90_000, replies: 40)
            }
            // What the targets sent goes back up the tunnel (+2% framing), what the customers sent arrives on it.
            r.traffic(1, tx: 4 * 90_000 * 102 / 100, rx: 4 * 6_000 + 600, replies: 60)
        }
        let (pass, v) = try #require(hit)
        #expect(Double(pass) * 2.05 <= 26, "fired at \(Double(pass) * 2.05) s")
        #expect(v.vendor == "198.18.1.5:443" && v.vendorConnections == 1 && v.longLived)
        #expect(v.targetCount >= 4)
        #expect(v.balanceBack < 1.1 && v.balanceTowardsTargets < 1.2, "\(v)")
        #expect(v.rate > 100_000)
        let text = RelayEvidence.summary(v)
        #expect(text.contains("vendor side 198.18.1.5:443") && text.contains("other destinations"))
    }

    /// A proxy node with no tunnel: it polls its vendor for jobs over a fresh connection each
    /// time, fetches each job's target over a fresh connection, and returns the result over
    /// another; the vendor has three addresses behind one name, the node uses them in turn.
    static func pollingNode(_ i: Int, _ r: inout Recorder, vendors: [String], targets: Int = 6) {
        // Last pass's connections are closed: every connection lives one pass.
        for id in r.sockets.keys { r.close(id) }
        for job in 0..<4 {
            let base = UInt64(1000 + i * 10 + job * 2)
            let vendor = vendors[(i + job) % vendors.count]
            // The poll and the result upload (one connection each, seen as one here), the fetch.
            r.open(base, local: UInt16(30000 + Int(base % 30000)), remote: vendor, port: 443)
            r.traffic(base, tx: 60_000 * 103 / 100 + 900, rx: 1_500 + 700, replies: 3)
            r.open(base + 1, local: UInt16(30000 + Int((base + 1) % 30000)), remote: "198.18.1.\(20 + (i + job) % targets)", port: 80)
            r.traffic(base + 1, tx: 700, rx: 60_000, replies: 40)
        }
    }

    @Test func pollingNodeOverFreshConnectionsIsFound() throws {
        let vendors = ["198.18.1.5", "198.18.1.6", "198.18.1.7"]
        let names = Dictionary(uniqueKeysWithValues: vendors.map { ($0, "edge.vendor.example") })
        let (pass, v) = try #require(relay(40, names: names) { i, r in Self.pollingNode(i, &r, vendors: vendors) })
        #expect(Double(pass) * 2.05 <= 26, "fired at \(Double(pass) * 2.05) s")
        #expect(v.vendor == "edge.vendor.example (198.18.1.5, 198.18.1.6, 198.18.1.7)" && !v.longLived && v.vendorAddresses.count == 3, "\(v)")
        #expect(v.targetCount == 6 && v.inStep > 0.9, "\(v)")
        #expect(RelayEvidence.summary(v).contains("polling over fresh connections"))
        #expect(RelayEvidence.evidence(v).filter { $0.name == "vendor" }.map(\.value) == vendors)
        // One vendor address: found by address alone.
        let one = try #require(relay(40) { i, r in Self.pollingNode(i, &r, vendors: ["198.18.1.5"]) })
        #expect(one.1.vendor == "198.18.1.5:443")
        // Three addresses and no name to group them (no capture saw SNI or Host): none is a
        // vendor side on its own.
        #expect(relay(40) { i, r in Self.pollingNode(i, &r, vendors: vendors) } == nil)
    }

    /// A copy from one origin to an object store whose three addresses share one name (rclone to
    /// S3 with four transfers): by bytes the origin's downloads balance the store's uploads, but
    /// the store is one destination, not three targets.
    @Test func copyToAnObjectStoreBehindOneNameIsQuiet() {
        let store = ["198.18.1.40", "198.18.1.41", "198.18.1.42"]
        let names = Dictionary(uniqueKeysWithValues: store.map { ($0, "bucket.s3.example") })
        let hit = relay(40, names: names) { i, r in
            for id in r.sockets.keys { r.close(id) }
            for k in 0..<3 {
                let base = UInt64(1000 + i * 10 + k * 2)
                r.open(base, local: UInt16(30000 + Int(base % 30000)), remote: "198.18.1.5", port: 443)
                r.traffic(base, tx: 600, rx: 80_000, replies: 50)
                r.open(base + 1, local: UInt16(30000 + Int((base + 1) % 30000)), remote: store[(i + k) % 3], port: 443)
                r.traffic(base + 1, tx: 80_000, rx: 500, replies: 3)
            }
        }
        #expect(hit == nil, "\(String(describing: hit?.1))")
    }

    /// An ETL job: fetches from many sites over fresh connections, and uploads what it fetched
    /// in batches to one store (every five passes, over a keep-alive connection or a fresh one).
    @Test func etlJobUploadingBatchesIsQuiet() {
        for keepAlive in [true, false] {
            let hit = relay(40) { i, r in
                for id in r.sockets.keys where id >= 100 { r.close(id) }
                for k in 0..<4 {
                    let id = UInt64(100 + i * 4 + k)
                    r.open(id, local: UInt16(41000 + Int(id % 20000)), remote: "198.18.1.\(20 + (i + k) % 8)", port: 443)
                    r.traffic(id, tx: 600, rx: 60_000, replies: 40)
                }
                let store: UInt64 = keepAlive ? 1 : UInt64(5000 + i)
                if keepAlive && i == 0 { r.open(1, local: 40001, remote: "198.18.1.70", port: 9000) }
                if i % 5 == 4 {
                    if !keepAlive { r.open(store, local: UInt16(50000 + i), remote: "198.18.1.70", port: 9000) }
                    r.traffic(store, tx: 5 * 4 * 60_000, rx: 300, replies: 1)
                }
            }
            #expect(hit == nil, "keep-alive \(keepAlive): \(String(describing: hit?.1))")
        }
    }

    @Test func forwardProxyServingItsOwnClientsIsQuiet() {
        // Clients connect in (inbound), the proxy fetches from many sites: no outbound tunnel.
        let hit = relay(40) { i, r in
            r.listen = [3128]
            if i == 0 { for c in 0..<3 { r.open(UInt64(10 + c), local: 3128, remote: "198.18.1.\(60 + c)", port: UInt16(50000 + c)) } }
            for k in 0..<4 {
                let id = UInt64(100 + (i / 3) * 4 + k)
                if i % 3 == 0 { r.close(id - 4); r.open(id, local: UInt16(42000 + Int(id % 20000)), remote: "198.18.1.\(20 + (i + k) % 9)", port: 443) }
                r.traffic(id, tx: 6_000, rx: 90_000, replies: 40)
            }
            for c in 0..<3 { r.traffic(UInt64(10 + c), tx: 120_000, rx: 8_000, replies: 20) }
        }
        #expect(hit == nil)
    }

    @Test func reverseProxyCallingItsBackendsIsQuiet() {
        // Inbound requests, keep-alive connections to four backends (long-lived, outbound).
        let hit = relay(40) { i, r in
            r.listen = [443]
            if i == 0 {
                r.open(10, local: 443, remote: "198.18.1.60", port: 50000)
                for b in 0..<4 { r.open(UInt64(20 + b), local: UInt16(43000 + b), remote: "198.18.1.\(30 + b)", port: 8080) }
            }
            r.traffic(10, tx: 400_000, rx: 40_000, replies: 100)
            for b in 0..<4 { r.traffic(UInt64(20 + b), tx: 10_000, rx: 100_000, replies: 25) }
        }
        #expect(hit == nil)
    }

    @Test func sidecarWithALoopbackApplicationLegIsQuiet() {
        // The mesh sidecar: its application on loopback, the upstream over one long connection,
        // and a few control-plane calls.
        let hit = relay(40) { i, r in
            if i == 0 {
                r.open(1, local: 40001, remote: "127.0.0.1", port: 8080)
                r.open(2, local: 40002, remote: "198.18.1.40", port: 15012)
                for b in 0..<3 { r.open(UInt64(20 + b), local: UInt16(43000 + b), remote: "198.18.1.\(30 + b)", port: 9080) }
            }
            r.traffic(1, tx: 200_000, rx: 20_000, replies: 50)
            for b in 0..<3 { r.traffic(UInt64(20 + b), tx: 7_000, rx: 66_000, replies: 20) }
            r.traffic(2, tx: 500, rx: 900, replies: 1)
        }
        #expect(hit == nil)
    }

    @Test func crawlerDownloadingFromManyHostsIsQuiet() {
        let hit = relay(40) { i, r in
            if i == 0 { r.open(1, local: 40001, remote: "198.18.1.5", port: 6379) }  // its work queue
            for k in 0..<6 {
                let id = UInt64(100 + i * 6 + k)
                r.close(id - 6)
                r.open(id, local: UInt16(41000 + Int(id % 20000)), remote: "198.18.1.\(20 + (i + k) % 30)", port: 443)
                r.traffic(id, tx: 900, rx: 150_000, replies: 100)
            }
            r.traffic(1, tx: 3_000, rx: 2_000, replies: 6)  // URLs in, results' ids out
        }
        #expect(hit == nil)
    }

    @Test func tunnelAgentExposingOneLocalServiceIsQuiet() {
        // cloudflared-style: a tunnel to the edge, the one service it exposes behind it.
        let hit = relay(40) { i, r in
            if i == 0 { r.open(1, local: 40001, remote: "198.18.1.5", port: 7844); r.open(2, local: 40002, remote: "198.18.1.50", port: 8080) }
            r.traffic(2, tx: 20_000, rx: 300_000, replies: 50)
            r.traffic(1, tx: 306_000, rx: 20_400, replies: 50)
        }
        #expect(hit == nil)
    }

    @Test func uploadersAreNotRelays() {
        let hit = relay(40) { i, r in
            if i == 0 { r.open(1, local: 40001, remote: "198.18.1.70", port: 9200) }
            r.traffic(1, tx: 250_000, rx: 2_000, replies: 4)
        }
        #expect(hit == nil)
    }

    @Test func thresholdsAreOptionsAndRuleData() throws {
        var m = RelayThresholds()
        m.minTargets = 10
        let none = relay(40, model: m) { i, r in
            if i == 0 { r.open(1, local: 40001, remote: "198.18.1.5", port: 443) }
            for k in 0..<4 {
                let id = UInt64(100 + k)
                if i == 0 { r.open(id, local: UInt16(41000 + k), remote: "198.18.1.\(20 + k)", port: 80) }
                r.traffic(id, tx: 6_000, rx: 90_000, replies: 40)
            }
            r.traffic(1, tx: 360_000, rx: 24_000, replies: 60)
        }
        #expect(none == nil, "four targets are fewer than ten")
        let yaml = "version: 1\nmodels:\n  relay:\n    window: 30s\n    minTargets: 5\n    minRate: 1MiB\n"
        let out = RuleLoader().load(yaml: yaml, file: "models.yaml")
        #expect(out.diagnostics.isEmpty, "\(out.diagnostics)")
        let model = RelayThresholds(settings: out.ruleSet.models)
        #expect(model.window == 30 && model.minTargets == 5 && model.minRate == 1_048_576)
        let bad = RuleLoader().load(yaml: "version: 1\nmodels:\n  relay:\n    window: soon\n    targets: 3\n", file: "bad.yaml")
        #expect(bad.diagnostics.map(\.description).contains { $0.hasPrefix("bad.yaml:4:") && $0.contains("expected a duration") }, "\(bad.diagnostics)")
        #expect(bad.diagnostics.map(\.description).contains { $0.hasPrefix("bad.yaml:5:") && $0.contains("unknown key 'targets'") })
    }
}

@Suite struct UploadCorroborationTests {
    static func facts(_ sizes: [Int], random: Bool, encoding: String? = nil, type: String? = nil) -> SessionFacts {
        var f = SessionFacts()
        f.protocolName = .http
        for s in sizes {
            let head: [UInt8] = random ? (0..<min(s, 1000)).map { _ in UInt8.random(in: 0...255) }
                : Array(String(repeating: "{\"ts\":\"2026-12-01T10:00:00Z\",\"level\":\"info\",\"msg\":\"GET /index 200\"}\n", count: 20).utf8.prefix(min(s, 1000)))
            var h = HTTPFields()
            if let encoding { h["content-encoding"] = encoding }
            if let type { h["content-type"] = type }
            BodyShape.record(size: s, head: head, estimated: false, headers: h, into: &f)
        }
        return f
    }

    @Test func kibFramedRandomBodiesAreOnlyGeneric() {
        // What announcement batches and chunked media uploads share: round sizes, random bytes.
        let why = BodyShape.corroboration([Self.facts([1024 * 300, 1024 * 1024, 1024 * 512, 1024 * 77], random: true)])
        #expect(why.count == 2, "\(why)")
        #expect(why.contains { $0.contains("whole KiB") } && why.contains { $0.contains("incompressible") })
    }

    /// A batch of `n` announcements laid out as PacketCrypt_AnnounceHdr_t (then hash output).
    static func announcements(_ n: Int, height: UInt32 = 1_234_567, bits: UInt32 = 0x2000_ffff) -> [UInt8] {
        var out: [UInt8] = []
        for _ in 0..<n {
            var a = (0..<1024).map { _ in UInt8.random(in: 0...255) }
            a[0] = 1
            for i in 0..<4 { a[8 + i] = UInt8(truncatingIfNeeded: bits >> (8 * UInt32(i))); a[12 + i] = UInt8(truncatingIfNeeded: height >> (8 * UInt32(i))) }
            for i in 16..<24 { a[i] = 0 }
            out += a
        }
        return out
    }

    @Test func announcementHeadersAreRecognisedAndNothingElse() {
        #expect(BodyShape.announcementRecords(Self.announcements(4)) == 4)
        #expect(BodyShape.announcementRecords(Array(Self.announcements(4).prefix(3000))) == 3, "only records whose header is in the head")
        // Random bytes, text, zeros, a damaged second record, heights far apart: none.
        for _ in 0..<200 { #expect(BodyShape.announcementRecords((0..<4096).map { _ in UInt8.random(in: 0...255) }) == 0) }
        #expect(BodyShape.announcementRecords(Array(String(repeating: "{\"level\":\"info\"}\n", count: 300).utf8)) == 0)
        #expect(BodyShape.announcementRecords([UInt8](repeating: 0, count: 4096)) == 0)
        var damaged = Self.announcements(2)
        damaged[1024] = 7
        #expect(BodyShape.announcementRecords(damaged) == 0)
        #expect(BodyShape.announcementRecords(Self.announcements(1, height: 100) + Self.announcements(1, height: 5000)) == 0)
        var f = SessionFacts()
        BodyShape.record(size: 4096, head: Self.announcements(4), estimated: false, headers: [:], into: &f)
        #expect(f.announcementBodies == 1)
    }

    static func verdict(destinations: [String], mirrored: Bool = false, polls: Bool = false) -> BandwidthVerdict {
        BandwidthVerdict(since: Date(), uploadRate: 300_000, downloadRate: 1000, ratio: 300, destinations: destinations.map { ($0, 150_000) },
                         exchanges: 10, connections: 2, mirrored: mirrored, polls: polls, perConnection: true, uploader: nil)
    }

    @Test func evidenceTiers() {
        let v = Self.verdict(destinations: ["198.18.1.10", "198.18.1.11"], mirrored: true, polls: true)
        // Random bodies, different at each destination (a load-balanced media upload), polls,
        // similar volume: all generic.
        let lb = [("198.18.1.10", Self.facts([40_000, 41_000, 39_000], random: true)), ("198.18.1.11", Self.facts([40_500, 38_000, 42_000], random: true))]
        let generic = BandwidthEvidence.reasons(v, toUpload: lb.map { (server: $0.0, facts: $0.1) })
        #expect(generic.specific.isEmpty, "\(generic)")
        #expect(generic.generic.count == 3, "\(generic.generic)")
        #expect(BandwidthEvidence.trait(shape: "uploads", generic).hasSuffix(BandwidthEvidence.traitSuffix))
        // The same random bodies to both: mirrored bytes, specific.
        var same = SessionFacts()
        for body in [(0..<2000).map { _ in UInt8.random(in: 0...255) }, (0..<2000).map { _ in UInt8.random(in: 0...255) }] {
            BodyShape.record(size: 2000, head: body, estimated: false, headers: [:], into: &same)
        }
        let mirrored = BandwidthEvidence.reasons(v, toUpload: [(server: "198.18.1.10", facts: same), (server: "198.18.1.11", facts: same)])
        #expect(mirrored.specific.contains { $0.contains("same request bodies sent to 2 destinations") }, "\(mirrored)")
        // Announcement records, a mining protocol, another detector's alert: specific.
        var anns = SessionFacts()
        for _ in 0..<3 { BodyShape.record(size: 4096, head: Self.announcements(4), estimated: false, headers: [:], into: &anns) }
        let byAnns = BandwidthEvidence.reasons(Self.verdict(destinations: ["a"]), toUpload: [(server: "a", facts: anns)])
        #expect(byAnns.specific.count == 1 && byAnns.family == "packetcrypt")
        #expect(mirrored.family == nil && generic.family == nil)
        var pkt = SessionFacts()
        pkt.protocolName = .packetcrypt
        #expect(BandwidthEvidence.reasons(Self.verdict(destinations: ["a"]), toUpload: [(server: "a", facts: pkt)]).specific.first?.contains("protocol") == true)
        #expect(BandwidthEvidence.reasons(Self.verdict(destinations: ["a"]), toUpload: [], others: ["cpu-miner alert"]).specific == ["cpu-miner alert"])
    }

    @Test func logsMetricsAndBackupsAreNot() {
        #expect(BodyShape.corroboration([Self.facts([20_345, 150_001, 99_999, 64_000], random: false)]).isEmpty, "JSON log batches")
        #expect(BodyShape.corroboration([Self.facts([30_011, 29_870, 31_200], random: true, encoding: "snappy", type: "application/x-protobuf")]).isEmpty,
                "remote-write: compressed with a Content-Encoding")
        #expect(BodyShape.corroboration([Self.facts([4 << 20, 8 << 20, 4 << 20, 5 << 20], random: true)]).isEmpty, "backup packs: multi-MiB")
        #expect(BodyShape.corroboration([Self.facts([81_920, 40_960, 102_400], random: true, type: "image/jpeg")]).first?.contains("whole KiB") ?? true)
        #expect(BodyShape.entropy(Array(repeating: 65, count: 1000)) == 0)
    }
}

@Suite struct HeartbeatTests {
    func timer(_ times: [Double], size: Int = 120) -> MessageTimer {
        var t = MessageTimer()
        for x in times { t.add(time: x, bytes: size) }
        return t
    }

    @Test func strictlyPeriodicSmallMessagesAreAHeartbeat() throws {
        // Handshake first, then a ping every 5 s with a little jitter.
        var times: [Double] = [0, 0.05, 0.12]
        for k in 1...12 {
            let jitter = (Double(k % 3) - 1) * 0.08
            times.append(1 + Double(k) * 5 + jitter)
        }
        let h = try #require(HeartbeatJudge.judge(timer(times)))
        #expect(abs(h.periodSeconds - 5) < 0.2 && h.jitter < 0.05 && h.meanMessageBytes == 120)
    }

    @Test func irregularOrBulkyTrafficIsNot() {
        var x = 0.0
        let irregular = (0..<15).map { i -> Double in x += [1.0, 7.5, 2.2, 13.0, 4.1][i % 5]; return x }
        #expect(HeartbeatJudge.judge(timer(irregular)) == nil)
        #expect(HeartbeatJudge.judge(timer((0..<15).map { Double($0) * 5 }, size: 60_000)) == nil, "bulk data on a schedule is not a heartbeat")
        #expect(HeartbeatJudge.judge(timer((0..<15).map { Double($0) * 0.5 })) == nil, "faster than the shortest period")
        #expect(HeartbeatJudge.judge(timer([0, 5, 10])) == nil, "too few")
    }
}
