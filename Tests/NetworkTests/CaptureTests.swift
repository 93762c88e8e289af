import CShims
import Foundation
import MinewatchModel
import MinewatchCore
import MinewatchPackets
import MinewatchSignatures
import Testing
import TestSupport
@testable import MinewatchNetwork

/// The real captures (copied into the repository from shared/data/pcaps).
let sharedPcaps = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/pcaps").path
let bundled = BundledRules.load().0

func analyze(_ path: String, rules: RuleSet = bundled) -> CaptureReport {
    var src = CaptureFile(path: path)
    return CaptureAnalyzer(rules: rules).analyze(&src)
}

/// Captures recorded against real pools (nesfit/DI-cryptominingdetection).
@Suite struct RealCaptureTests {
    /// A finding's title, severity and technique come from the rule data: a site's rule file
    /// changes them.
    @Test func verdictsAreRuleData() throws {
        let user = RuleLoader().load(yaml: """
        version: 1
        verdicts:
          - id: MW-NET-STRATUM
            technique: T1496
            title: "{protocol}: pool work accepted"
            cases:
              proven: {severity: high}
        """, file: "site.yaml")
        #expect(user.diagnostics.isEmpty, "\(user.diagnostics)")
        let r = analyze(sharedPcaps + "/cgminer.s0.pcapng", rules: bundled.merged(with: user.ruleSet))
        let stratum = r.findings.filter { $0.ruleId == "MW-NET-STRATUM" }
        #expect(!stratum.isEmpty)
        #expect(stratum.allSatisfy { $0.severity == .high && $0.technique == "T1496" && $0.title == "Stratum: pool work accepted" },
                "\(stratum.map { "\($0.severity) \($0.title)" })")
    }

    @Test func cgminerBitcoinStratum() throws {
        let r = analyze(sharedPcaps + "/cgminer.s0.pcapng")
        #expect(r.error == nil)
        #expect(r.packets == 855)
        let stratum = r.sessions.filter { $0.protocolName == .stratum }
        #expect(stratum.count >= 15)
        #expect(stratum.allSatisfy { $0.facts.agent == "cgminer/3.7.2" })
        #expect(stratum.reduce(0) { $0 + $1.facts.jobs } >= 10)
        let crit = r.findings.filter { $0.ruleId == "MW-NET-STRATUM" && $0.severity == .critical }
        #expect(crit.count >= 5)
        #expect(crit.allSatisfy { $0.family == "cgminer" })
        // The TLS session to Microsoft is named but is not a finding.
        #expect(r.sessions.contains { $0.facts.sni == "array609-prod.do.dsp.mp.microsoft.com" })
        #expect(!r.findings.contains { $0.ruleId == "MW-NET-POOL-DOMAIN" })
    }

    @Test func moneroStratumWithAValidatedWallet() throws {
        let r = analyze(sharedPcaps + "/xmr-eu1.nanopool.org.pcapng")
        let s = try #require(r.sessions.first)
        #expect(s.protocolName == .stratumMonero && s.server == "185.71.66.20:14444")
        #expect(s.facts.agent == "xmr/1.0" && s.facts.jobs == 4)
        let f = try #require(r.findings.first)
        #expect(f.severity == .critical)
        #expect(f.evidence.contains { $0.kind == .wallet && $0.name == "wallet XMR" && $0.value.hasPrefix("47mr7jYT") })
    }
}

/// Hand-made hostile captures: a one-line error with the file and offset, never a crash, and
/// the packets before the damage still analysed.
@Suite struct HostileCaptureTests {
    let dir: TempDir
    init() throws { dir = try TempDir("pcap") }

    static func pcapHeader(link: UInt32 = 1, snap: UInt32 = 65535) -> [UInt8] { PacketBytes.pcapHeader(link: link, snap: snap) }
    static func record(_ data: [UInt8], caplen: UInt32? = nil, time: UInt32 = 1_700_000_000) -> [UInt8] { PacketBytes.record(data, caplen: caplen, time: time) }

    @Test func errorsNameFileAndOffset() throws {
        let good = Self.record(PacketBytes.tcp(seq: 1, payload: Array("{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[\"cpuminer/2.5.1\"]}\n".utf8)))
        let cases: [(String, [UInt8], String)] = [
            ("badmagic.pcap", Array("GIF89a not a capture".utf8), "offset 0"),
            ("short.pcap", [0xD4, 0xC3, 0xB2, 0xA1, 2, 0], "offset 0"),
            ("trunc-record.pcap", Self.pcapHeader() + good + [1, 2, 3], "offset \(24 + good.count)"),
            ("trunc-data.pcap", Self.pcapHeader() + good + Array(Self.record([1, 2, 3, 4, 5, 6, 7, 8]).prefix(20)), "offset \(24 + good.count)"),
            ("absurd.pcap", Self.pcapHeader() + good + Self.record([1, 2, 3], caplen: 0x7FFF_FFFF), "offset \(24 + good.count)"),
            ("pcapng-badlen.pcapng", [0x0A, 0x0D, 0x0D, 0x0A, 7, 0, 0, 0, 0x4D, 0x3C, 0x2B, 0x1A, 0, 0, 0, 0], "offset 4"),
        ]
        for (name, bytes, offset) in cases {
            let path = try dir.file(name, bytes)
            let r = analyze(path)
            let e = try #require(r.error, "\(name) read without error")
            #expect(e.contains(path) && e.contains(offset), "\(name): \(e)")
            #expect(!e.contains("\n"))
        }
        // What was read before the damage is still analysed.
        let r = analyze(try dir.file("partial.pcap", Self.pcapHeader() + good + [9, 9]))
        #expect(r.packets == 1 && r.sessions.first?.facts.agent == "cpuminer/2.5.1")
        #expect(r.findings.first?.family == "cpuminer")
    }

    @Test func mutatedRealCapturesNeverCrash() throws {
        let original = Array(try Data(contentsOf: URL(fileURLWithPath: sharedPcaps + "/cgminer.s0.pcapng")))
        var rng = Samples.Rand(seed: 42)
        for i in 0..<150 {
            var b = original
            for _ in 0..<(1 + Int(rng.next() % 16)) {
                let at = Int(rng.next() % UInt64(b.count))
                b[at] = UInt8(truncatingIfNeeded: rng.next())
            }
            if i % 10 == 0 { b = Array(b.prefix(Int(rng.next() % UInt64(b.count)))) }
            let path = try dir.file("m\(i).pcapng", b)
            // Any result or error, never a crash or a hang; an error is one line naming the file
            // and an offset inside it, and no more packets than the original had are reported.
            let r = analyze(path)
            #expect(r.packets <= 855 + 16, "the original has 855 packets")
            if let e = r.error {
                #expect(e.contains(path) && !e.contains("\n"), "\(e)")
                let offset = e.components(separatedBy: " at offset ").dropFirst().first.flatMap { Int($0.prefix { $0.isNumber }) }
                #expect(offset.map { $0 <= b.count } ?? e.contains("read capture"), "\(e)")
            }
        }
    }

    @Test func outOfOrderRetransmittedAndVLANTaggedSegmentsReassemble() throws {
        let login = Array("{\"id\":1,\"jsonrpc\":\"2.0\",\"method\":\"login\",\"params\":{\"login\":\"WALLETX\",\"pass\":\"x\",\"agent\":\"XMRig/6.21.0\"}}\n".utf8)
        let a = Array(login[0..<30]), b = Array(login[30..<70]), c = Array(login[70...])
        let syn = PacketBytes.tcp(seq: 999, flags: 0x02, payload: [], vlan: 42)
        let job = Array("{\"jsonrpc\":\"2.0\",\"method\":\"job\",\"params\":{\"blob\":\"00\",\"job_id\":\"1\",\"target\":\"ffff\"}}\n".utf8)
        let jobPkt = PacketBytes.tcp(src: [10, 0, 0, 9], dst: [10, 0, 0, 2], sport: 3333, dport: 40000, seq: 5000, payload: job, vlan: 42)
        // Order on the wire: SYN, third, first, first again (retransmitted), second, a pool job.
        var file = Self.pcapHeader()
        for p in [syn, PacketBytes.tcp(seq: 1070, payload: c, vlan: 42), PacketBytes.tcp(seq: 1000, payload: a, vlan: 42),
                  PacketBytes.tcp(seq: 1000, payload: a, vlan: 42), PacketBytes.tcp(seq: 1030, payload: b, vlan: 42), jobPkt] {
            file += Self.record(p)
        }
        let r = analyze(try dir.file("ooo.pcap", file))
        #expect(r.error == nil)
        let s = try #require(r.sessions.first)
        #expect(s.facts.login == "WALLETX" && s.facts.agent == "XMRig/6.21.0" && s.facts.jobs == 1)
        #expect(r.findings.first?.family == "xmrig" && r.findings.first?.severity == .critical)
    }

    @Test func flowTableIsBoundedAndCountsEvictions() throws {
        var file = Self.pcapHeader()
        for i in 0..<300 {
            file += Self.record(PacketBytes.tcp(sport: UInt16(20000 + i), dport: 80, seq: 1, flags: 0x02, payload: []))
        }
        var src = CaptureFile(path: try dir.file("many.pcap", file))
        let a = CaptureAnalyzer(rules: bundled)
        a.maxFlows = 100
        let r = a.analyze(&src)
        #expect(r.evictedFlows >= 200 && r.flows == 300)
    }
}

@Suite struct DissectorTests {
    @Test func tlsServerName() throws {
        // A ClientHello built by hand: record, handshake, version, random, session, suites, compression, SNI.
        let name = Array("pool.supportxmr.com".utf8)
        var sniExt: [UInt8] = [0, 0]
        let list: [UInt8] = [0] + [UInt8(name.count >> 8), UInt8(name.count & 0xFF)] + name
        let ext = [UInt8(list.count >> 8), UInt8(list.count & 0xFF)] + list
        sniExt += [UInt8(ext.count >> 8), UInt8(ext.count & 0xFF)] + ext
        let exts = [UInt8(sniExt.count >> 8), UInt8(sniExt.count & 0xFF)] + sniExt
        let body: [UInt8] = [3, 3] + [UInt8](repeating: 7, count: 32) + [0] + [0, 2, 0x13, 0x01] + [1, 0] + exts
        let hs: [UInt8] = [1, 0, UInt8(body.count >> 8), UInt8(body.count & 0xFF)] + body
        let rec: [UInt8] = [0x16, 3, 1, UInt8(hs.count >> 8), UInt8(hs.count & 0xFF)] + hs
        #expect(TLSClientHello.serverName(rec) == .name("pool.supportxmr.com"))
        #expect(TLSClientHello.serverName(Array(rec.prefix(20))) == .needMore)
        var broken = rec
        broken[rec.count - name.count - 2] = 0xFF  // name length past the extension
        #expect(TLSClientHello.serverName(broken) == .none)
        #expect(bundled.poolDomain(for: "pool.supportxmr.com") == "supportxmr.com")
        #expect(bundled.poolDomain(for: "xmr-eu1.nanopool.org.") == "nanopool.org")
        #expect(bundled.poolDomain(for: "notnanopool.org") == nil)
        #expect(bundled.poolDomain(for: "XMR-EU1.NanoPool.ORG") == "nanopool.org")
        // An address literal is only itself: its parts are no domains.
        let listed = RuleSet(rules: [], correlations: [], poolDomains: ["4.2", "10.0.0.7", "2001:db8::7", "beef.cafe"])
        #expect(listed.poolDomain(for: "198.18.4.2") == nil)
        #expect(listed.poolDomain(for: "10.0.0.7") == "10.0.0.7")
        #expect(listed.poolDomain(for: "2001:DB8::7") == "2001:db8::7")
        #expect(listed.poolDomain(for: "dead.beef.cafe") == "beef.cafe", "hex letters and dots, but a name")
    }

    /// What a parser's events say, as text (events are not Equatable).
    static func describe(_ events: [HTTPParser.Event]) -> [String] {
        events.map { e in
            switch e {
            case .request(let method, let path, let headers):
                return "request \(method) \(path) " + headers.pairs.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ";")
            case .requestBody(let size, let head, let estimated): return "body \(size) \(head.count) \(estimated)"
            case .response(let status): return "response \(status)"
            }
        }
    }

    @Test func httpHeadsSplitAnywhereParseTheSame() throws {
        // Two requests on one connection: fields in any case, padded, one the recognisers do not
        // read, a chunked body; then a response head.
        let requests = Array(("POST  /ann/7 HTTP/1.1\r\nHoSt: pc.example\r\nX-Unread: a\r\nx-pc-payto:  pkt1qaddr \r\n"
            + "Content-Length: 5\r\nUser-Agent: packetcrypt_rs 0.6.0\r\n\r\nhello"
            + "PUT /up HTTP/1.1\r\nTransfer-Encoding: chunked\r\nCONTENT-TYPE: image/png\r\n\r\n3\r\nabc\r\n0\r\n\r\n").utf8)
        let response = Array("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Other: b\r\n\r\nok".utf8)
        func parse(_ bytes: [UInt8], isRequest: Bool, at cuts: [Int]) -> [String] {
            var p = HTTPParser(isRequest: isRequest)
            var events: [HTTPParser.Event] = []
            var from = 0
            for cut in cuts + [bytes.count] where cut >= from {
                bytes[from..<cut].withUnsafeBytes { _ = p.feed($0, events: &events) }
                from = cut
            }
            return Self.describe(events)
        }
        let whole = parse(requests, isRequest: true, at: [])
        #expect(whole == ["request POST /ann/7 content-length=5;host=pc.example;user-agent=packetcrypt_rs 0.6.0;x-pc-payto=pkt1qaddr",
                          "body 5 5 false",
                          "request PUT /up content-type=image/png;transfer-encoding=chunked",
                          "body 3 3 false"])
        for cut in 1..<requests.count {
            #expect(parse(requests, isRequest: true, at: [cut]) == whole, "split at \(cut)")
        }
        // Byte by byte: the end of a head found across four feeds.
        #expect(parse(requests, isRequest: true, at: Array(1..<requests.count)) == whole)
        #expect(parse(response, isRequest: false, at: []) == ["response 200"])
        for cut in 1..<response.count { #expect(parse(response, isRequest: false, at: [cut]) == ["response 200"]) }
        // Not a request line: lowercase method, one word; not a status line.
        #expect(parse(Array("get / HTTP/1.1\r\n\r\n".utf8), isRequest: true, at: []) == [])
        #expect(parse(Array("GET\r\n\r\n".utf8), isRequest: true, at: []) == [])
        #expect(parse(Array("HTTP/1.1 abc\r\n\r\n".utf8), isRequest: false, at: []) == [])
    }

    @Test func dnsQuestionsAndAnswersWithCompression() throws {
        // Response for pool.pkt.world A 198.18.1.7, the answer name a pointer to the question.
        var m: [UInt8] = [0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]
        for l in ["pool", "pkt", "world"] { m += [UInt8(l.count)] + Array(l.utf8) }
        m += [0, 0, 1, 0, 1]
        m += [0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 198, 18, 1, 7]
        let d = try #require(m.withUnsafeBytes { DNSMessage.parse($0) })
        #expect(d.isResponse && d.questions == ["pool.pkt.world"])
        #expect(d.answers.first?.name == "pool.pkt.world" && d.answers.first?.address.description == "198.18.1.7")
        // A pointer loop is refused, not followed forever.
        var loop: [UInt8] = [0, 0, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 12]
        loop += [0, 1, 0, 1]
        #expect(loop.withUnsafeBytes { DNSMessage.parse($0) } == nil)
    }

}

@Suite struct MoreRecogniserTests {
    @Test func getworkAndPoolNamesAndPolling() throws {
        let dir = try TempDir("rec")
        defer { dir.cleanup() }
        typealias H = HostileCaptureTests
        let body = "{\"method\":\"getblocktemplate\",\"params\":[{\"capabilities\":[\"coinbasetxn\"]}],\"id\":1}"
        let req = "POST / HTTP/1.1\r\nHost: 198.18.1.9:8332\r\nX-Mining-Extensions: longpoll midstate\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
        // A TLS ClientHello naming a pool (SNI), on port 443 from another client port.
        let name = Array("gulf.moneroocean.stream".utf8)
        let list: [UInt8] = [0, UInt8(name.count >> 8), UInt8(name.count & 0xFF)] + name
        let ext: [UInt8] = [0, 0] + [UInt8((list.count + 2) >> 8), UInt8((list.count + 2) & 0xFF), UInt8(list.count >> 8), UInt8(list.count & 0xFF)] + list
        let hsBody: [UInt8] = [3, 3] + [UInt8](repeating: 1, count: 32) + [0, 0, 2, 0x13, 0x01, 1, 0] + [UInt8(ext.count >> 8), UInt8(ext.count & 0xFF)] + ext
        let hs: [UInt8] = [1, 0, UInt8(hsBody.count >> 8), UInt8(hsBody.count & 0xFF)] + hsBody
        let hello: [UInt8] = [0x16, 3, 1, UInt8(hs.count >> 8), UInt8(hs.count & 0xFF)] + hs
        var file = H.pcapHeader()
        file += H.record(PacketBytes.tcp(sport: 41000, dport: 8332, seq: 1, payload: Array(req.utf8)))
        file += H.record(PacketBytes.tcp(sport: 41001, dport: 443, seq: 1, payload: hello))
        // config.json polls every 5 s on one keep-alive connection.
        var seq: UInt32 = 1
        for i in 0..<4 {
            let poll = Array("GET /config.json HTTP/1.1\r\nHost: 198.18.1.10\r\nUser-Agent: packetcrypt_rs 0.6.0\r\nx-pc-sid: 0123456789abcdef0123456789abcdef\r\n\r\n".utf8)
            file += H.record(PacketBytes.tcp(sport: 41002, dport: 80, seq: seq, payload: poll), time: 1_700_000_000 + UInt32(i * 5))
            seq &+= UInt32(poll.count)
        }
        let r = analyze(try dir.file("rec.pcap", file))
        #expect(r.error == nil)
        let gw = try #require(r.findings.first { $0.ruleId == "MW-NET-GETWORK" })
        #expect(gw.severity == .high && gw.evidence.contains { $0.value == "longpoll midstate" })
        let pool = try #require(r.findings.first { $0.ruleId == "MW-NET-POOL-DOMAIN" })
        #expect(pool.evidence.first?.name == "moneroocean.stream" && pool.evidence.first?.value.contains("TLS server name gulf.moneroocean.stream") == true)
        let pkt = try #require(r.sessions.first { $0.protocolName == .packetcrypt })
        #expect(pkt.facts.configPolls == 4 && pkt.requestPeriodSeconds == 5)
        #expect(r.findings.first { $0.ruleId == "MW-NET-PACKETCRYPT" }?.severity == .high)
    }
}

@Suite struct CaptureFormatTests {
    typealias H = HostileCaptureTests


    static func be32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.bigEndian) { Array($0) } }
    static func le32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
    static func le16(_ v: UInt16) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
    static func be16(_ v: UInt16) -> [UInt8] { withUnsafeBytes(of: v.bigEndian) { Array($0) } }

    @Test func bigEndianNanosecondPcap() throws {
        let dir = try TempDir("be")
        defer { dir.cleanup() }
        let pkt = PacketBytes.tcp(seq: 1, payload: Array("{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[\"ccminer/2.3\"]}\n".utf8))
        var b: [UInt8] = [0xA1, 0xB2, 0x3C, 0x4D] + Self.be16(2) + Self.be16(4) + Self.be32(0) + Self.be32(0) + Self.be32(65535) + Self.be32(1)
        b += Self.be32(1_700_000_000) + Self.be32(500_000_000) + Self.be32(UInt32(pkt.count)) + Self.be32(UInt32(pkt.count)) + pkt
        let r = analyze(try dir.file("be.pcap", b))
        #expect(r.error == nil && r.packets == 1)
        #expect(r.firstSeen?.timeIntervalSince1970 == 1_700_000_000.5)
        #expect(r.findings.first?.family == "ccminer")
    }

    /// pcapng with two interfaces (Ethernet with microseconds, raw IP with if_tsresol 9 =
    /// nanoseconds), enhanced and simple packet blocks, a block of an unknown type, then a second
    /// section in the other byte order. A DNS answer names the address a TLS-less pool flow goes to.
    @Test func pcapngInterfacesSectionsAndDNSNames() throws {
        let dir = try TempDir("ng")
        defer { dir.cleanup() }
        func block(_ type: UInt32, _ body: [UInt8], be: Bool = false) -> [UInt8] {
            var body = body
            while body.count % 4 != 0 { body.append(0) }
            let len = UInt32(12 + body.count)
            let f = be ? Self.be32 : Self.le32
            return f(type) + f(len) + body + f(len)
        }
        func shb(be: Bool) -> [UInt8] {
            block(0x0A0D_0D0A, (be ? [0x1A, 0x2B, 0x3C, 0x4D] : [0x4D, 0x3C, 0x2B, 0x1A]) + (be ? Self.be16(1) + Self.be16(0) : Self.le16(1) + Self.le16(0)) + [UInt8](repeating: 0xFF, count: 8), be: be)
        }
        // DNS response: pool.pkt.world A 198.18.1.7.
        var dns: [UInt8] = [0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]
        for l in ["pool", "pkt", "world"] { dns += [UInt8(l.count)] + Array(l.utf8) }
        dns += [0, 0, 1, 0, 1, 0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 198, 18, 1, 7]
        let dnsPkt = PacketBytes.udp(src: [198, 18, 1, 53], dst: [10, 0, 0, 2], sport: 53, dport: 5353, payload: dns)
        let poll = Array("GET /config.json HTTP/1.1\r\nHost: 198.18.1.7\r\nUser-Agent: packetcrypt_rs 0.6.0\r\nx-pc-sid: 00112233445566778899aabbccddeeff\r\n\r\n".utf8)
        let httpPkt = PacketBytes.tcp(dst: [198, 18, 1, 7], sport: 42000, dport: 80, seq: 7, payload: poll)
        let rawIP = Array(httpPkt.dropFirst(14))  // the same packet without its Ethernet header
        var f = shb(be: false)
        f += block(1, Self.le16(1) + Self.le16(0) + Self.le32(0))                               // if 0: Ethernet
        f += block(1, Self.le16(101) + Self.le16(0) + Self.le32(0) + Self.le16(9) + Self.le16(1) + [9, 0, 0, 0] + Self.le32(0))  // if 1: raw, ns
        let ts: UInt64 = 1_700_000_000_000_000
        f += block(6, Self.le32(0) + Self.le32(UInt32(ts >> 32)) + Self.le32(UInt32(ts & 0xFFFF_FFFF)) + Self.le32(UInt32(dnsPkt.count)) + Self.le32(UInt32(dnsPkt.count)) + dnsPkt)
        f += block(0x0BAD, [1, 2, 3, 4])                                                          // unknown: skipped
        f += block(3, Self.le32(UInt32(httpPkt.count)) + httpPkt)                                 // simple packet, interface 0
        var s2 = shb(be: true)
        s2 += block(1, Self.be16(101) + Self.be16(0) + Self.be32(0), be: true)
        let ts2: UInt64 = 1_700_000_005_000_000
        s2 += block(6, Self.be32(0) + Self.be32(UInt32(ts2 >> 32)) + Self.be32(UInt32(ts2 & 0xFFFF_FFFF)) + Self.be32(UInt32(rawIP.count)) + Self.be32(UInt32(rawIP.count)) + rawIP, be: true)
        // Section 2 (big-endian) has one raw-IP interface, carrying a repeat of the poll.
        let r = analyze(try dir.file("x.pcapng", f + s2))
        #expect(r.error == nil, "\(r.error ?? "")")
        #expect(r.packets == 3)
        let s = try #require(r.sessions.first { $0.protocolName == .packetcrypt })
        #expect(s.serverName == "pool.pkt.world")
        let domain = try #require(r.findings.first { $0.ruleId == "MW-NET-POOL-DOMAIN" })
        #expect(domain.evidence.first?.name == "pool.pkt.world" && domain.evidence.first?.value.contains("DNS answer") == true)
        // A packet naming an interface that was never described is an error with its offset.
        var bad = shb(be: false)
        bad += block(6, Self.le32(3) + Self.le32(0) + Self.le32(0) + Self.le32(4) + Self.le32(4) + [1, 2, 3, 4])
        let e = analyze(try dir.file("bad.pcapng", bad)).error ?? ""
        #expect(e.contains("offset 36") && e.contains("interface 3"), "\(e)")
    }
}

/// The family a Stratum session names by its protocol when its agent says nothing.
@Suite struct WireFamilyTests {
    static func facts(_ edit: (inout SessionFacts) -> Void) -> SessionFacts {
        var f = SessionFacts()
        f.protocolName = .stratumMonero
        f.login = "worker1"
        edit(&f)
        return f
    }

    @Test func algorithmWalletAndBlobNameTheFamily() {
        #expect(WireFamily.identify(Self.facts { $0.algorithm = "rx/0" })?.family == "monero")
        #expect(WireFamily.identify(Self.facts { $0.algorithm = "rx/wow" })?.algorithm == "RandomX")
        #expect(WireFamily.identify(Self.facts { $0.algorithm = "cn/r" })?.family == "cryptonote")
        #expect(WireFamily.identify(Self.facts { $0.algorithm = "kawpow" })?.family == "ravencoin")
        let wallet = "48edfHu7V9Z84YzzMa6fUueoELZ9ZRXq9VetWzYGzKt52XU5xvqgzYnDK9URnRoJMk1j8nLwEVsaSWJ4fhdUyZijBGUicoD"
        #expect(WireFamily.identify(Self.facts { $0.login = wallet + ".rig" })?.because == "the login is a Monero address")
        #expect(WireFamily.identify(Self.facts { $0.seedHash = true; $0.blobMajorVersion = 16 })?.family == "monero")
        // Nothing said: no family. An old CryptoNight blob without a seed hash: not RandomX.
        #expect(WireFamily.identify(Self.facts { _ in }) == nil)
        #expect(WireFamily.identify(Self.facts { $0.seedHash = false; $0.blobMajorVersion = 7 }) == nil)
        #expect(WireFamily.identify(Self.facts { $0.algorithm = "some-new-algo" }) == nil)
    }

    @Test func jobsAreReadFromTheStream() throws {
        let dir = try TempDir("wire-family")
        defer { dir.cleanup() }
        let login = Array((#"{"id":1,"jsonrpc":"2.0","method":"login","params":{"login":"x","pass":"x","agent":"Sys/1","algo":["rx/0","cn/r"]}}"# + "\n").utf8)
        let blob = "1010" + String(repeating: "ab", count: 74)
        let reply = Array((#"{"id":1,"jsonrpc":"2.0","error":null,"result":{"id":"1","job":{"blob":""# + blob + #"","job_id":"7","target":"ffff0000","seed_hash":""#
            + String(repeating: "cd", count: 32) + #""},"status":"OK"}}"# + "\n").utf8)
        var file = PacketBytes.pcapHeader()
        file += PacketBytes.record(PacketBytes.tcp(seq: 1000, payload: login))
        file += PacketBytes.record(PacketBytes.tcp(src: [10, 0, 0, 9], dst: [10, 0, 0, 2], sport: 3333, dport: 40000, seq: 5000, payload: reply))
        let r = analyze(try dir.file("rebranded.pcap", file))
        let facts = try #require(r.sessions.first?.facts)
        #expect(facts.algorithm == "rx/0" && facts.seedHash == true && facts.blobMajorVersion == 16, "\(facts)")
        let f = try #require(r.findings.first { $0.ruleId == "MW-NET-STRATUM" })
        #expect(f.family == "monero" && f.evidence.contains { $0.name == "family from the wire" })
    }

    /// The real 2018 session with nanopool: its agent ("xmr/1.0") names no program, its login
    /// is a Monero address.
    @Test func realNanopoolSessionIsMonero() throws {
        let r = analyze(sharedPcaps + "/xmr-eu1.nanopool.org.pcapng")
        let f = try #require(r.findings.first { $0.ruleId == "MW-NET-STRATUM" })
        #expect(f.family == "monero", "\(f.family ?? "none")")
        #expect(f.evidence.contains { $0.name == "family from the wire" && $0.value.contains("Monero address") }, "\(f.evidence)")
        #expect(r.sessions.first?.facts.blobMajorVersion == 4 && r.sessions.first?.facts.seedHash == nil)
    }
}

/// Announcement records in request bodies, also when the capture kept only part of each packet
/// (watch's rings keep 1024 bytes of each): the body's head stops at the first missing byte.
@Suite struct AnnouncementBodyTests {
    static func announcements(_ n: Int) -> [UInt8] {
        var out: [UInt8] = []
        for k in 0..<n {
            var a = (0..<1024).map { _ in UInt8.random(in: 0...255) }
            a[0] = 1
            for i in 0..<4 { a[8 + i] = UInt8(truncatingIfNeeded: UInt32(0x2000_ffff) >> (8 * UInt32(i))); a[12 + i] = UInt8(truncatingIfNeeded: UInt32(1_000_000 + k % 2) >> (8 * UInt32(i))) }
            for i in 16..<24 { a[i] = 0 }
            out += a
        }
        return out
    }

    @Test func truncatedPacketsKeepTheRecordsInPlace() throws {
        let dir = try TempDir("ann-bodies")
        defer { dir.cleanup() }
        let body = Self.announcements(4)
        let head = Array("POST /submit HTTP/1.1\r\nHost: 10.0.0.9\r\nx-pc-payto: pkt1qquyqjzstpsxsurcszyfpx9q4zct3sxg6z52rdt\r\nx-pc-sver: 1\r\nContent-Length: \(body.count)\r\n\r\n".utf8)
        let stream = head + body
        for snap in [65535, 1024] {
            var file = PacketBytes.pcapHeader()
            var seq: UInt32 = 1000
            var at = 0
            while at < stream.count {
                let piece = Array(stream[at..<min(at + 1448, stream.count)])
                let packet = PacketBytes.tcp(dport: 80, seq: seq, payload: piece)
                let kept = min(packet.count, snap)
                file += Array(PacketBytes.record(packet, caplen: UInt32(kept)).prefix(16 + kept))
                seq &+= UInt32(piece.count)
                at += piece.count
            }
            let r = analyze(try dir.file("anns-\(snap).pcap", file))
            let facts = try #require(r.sessions.first?.facts, "snap \(snap): \(r)")
            #expect(facts.announcementBodies == 1, "snap \(snap): \(facts)")
        }
    }
}

/// Rings sized by need: small for a chatty namespace, the size its rate needs as it grows, the
/// largest at once on drops, one size down only after a calm half minute.
@Suite struct RingSizeTests {
    @Test func tiersFollowTheRate() {
        let tiers = LiveCapture.RingSize.tiers
        #expect(tiers.map(\.bytes) == [128 << 10, 1 << 20, 4 << 20])
        #expect(LiveCapture.nextTier(0, rate: 20, dropped: false, calmFor: 0) == 0)
        #expect(LiveCapture.nextTier(0, rate: 1_000, dropped: false, calmFor: 0) == 1)
        #expect(LiveCapture.nextTier(0, rate: 9_000, dropped: false, calmFor: 0) == 2, "a download jumps straight to the size it needs")
        #expect(LiveCapture.nextTier(0, rate: 5, dropped: true, calmFor: 100) == 2, "drops: the largest at once")
        #expect(LiveCapture.nextTier(2, rate: 9_000, dropped: false, calmFor: 0) == 2)
        #expect(LiveCapture.nextTier(2, rate: 100, dropped: false, calmFor: 10) == 2, "not calm long enough")
        #expect(LiveCapture.nextTier(2, rate: 100, dropped: false, calmFor: 31) == 1)
        #expect(LiveCapture.nextTier(1, rate: 100, dropped: false, calmFor: 31) == 1, "100/s is more than a quarter of what the small ring takes")
        #expect(LiveCapture.nextTier(1, rate: 10, dropped: false, calmFor: 31) == 0)
        #expect(LiveCapture.nextTier(0, rate: 0, dropped: false, calmFor: 1_000) == 0)
    }
}

/// Once an HTTP body's head is sampled, the flow table passes the rest of the body by without
/// delivering it (Suricata's stream depth, per message): the body's size stays exact, the next
/// request on the connection is still read, and a hole inside the passed bytes is still a hole.
@Suite struct BodyBypassTests {
    final class Counting: FlowConsumer {
        let inner: FlowInspector
        var delivered = 0
        init(_ inner: FlowInspector) { self.inner = inner }
        func stream(_ bytes: UnsafeRawBufferPointer, fromClient: Bool, time: Double) -> Bool {
            delivered += 1
            return inner.stream(bytes, fromClient: fromClient, time: time)
        }
        func missing(_ count: Int, fromClient: Bool) { inner.missing(count, fromClient: fromClient) }
        func datagram(_ bytes: UnsafeRawBufferPointer, fromClient: Bool, time: Double) {}
        func bypass(fromClient: Bool) -> Int { inner.bypass(fromClient: fromClient) }
        func passed(_ count: Int, fromClient: Bool) { inner.passed(count, fromClient: fromClient) }
    }

    /// Two POSTs on one connection (100,000 and 2,000 body bytes) in 1,448-byte segments, each
    /// captured to `snap` bytes of payload; `lose` segments never arrive.
    static func upload(snap: Int, lose: Set<Int> = [], pending: Int = 256 * 1024) -> (facts: SessionFacts, delivered: Int, segments: Int) {
        let t = FlowTable(maxFlows: 10, maxPendingPerDirection: pending)
        var counting: Counting?
        t.onNew = { f in
            let c = Counting(FlowInspector(flow: f))
            f.consumer = c
            counting = c
        }
        var stream: [UInt8] = []
        var rng = SystemRandomNumberGenerator()
        for size in [100_000, 2_000] {
            stream += Array("POST /upload HTTP/1.1\r\nHost: files.example\r\nContent-Length: \(size)\r\n\r\n".utf8)
            stream += (0..<size).map { _ in UInt8.random(in: 0...255, using: &rng) }
        }
        func add(_ packet: [UInt8], payload: Int) {
            let cut = min(packet.count, packet.count - payload + snap)
            packet.withUnsafeBytes { b in
                let c = UnsafeRawBufferPointer(rebasing: b[0..<cut])
                if let p = PacketDecoder.decode(linkType: 1, c, originalLength: packet.count) { t.add(p, bytes: c, time: 1) }
            }
        }
        add(PacketBytes.tcp(sport: 40100, dport: 80, seq: 0, flags: 0x02, payload: []), payload: 0)
        var segments = 0
        for (i, start) in stride(from: 0, to: stream.count, by: 1448).enumerated() {
            let part = Array(stream[start..<min(start + 1448, stream.count)])
            segments += 1
            if lose.contains(i) { continue }
            add(PacketBytes.tcp(sport: 40100, dport: 80, seq: UInt32(1 + start), payload: part), payload: part.count)
        }
        return (counting?.inner.facts ?? SessionFacts(), counting?.delivered ?? 0, segments)
    }

    @Test func sampledBodiesArePassedBy() {
        // Cut to 900 bytes a segment (the live rings' snap length leaves about that much): the
        // first body's first segment is delivered, then only the segment that ends it.
        let cut = Self.upload(snap: 900)
        #expect(cut.facts.requests == 2)
        #expect(cut.facts.bodySizes == [100_000, 2_000])
        #expect(cut.facts.exactBodies == 2)
        #expect(cut.delivered <= 4, "\(cut.delivered) of \(cut.segments) segments delivered")
        // Whole segments: the first 4 KiB of each body are sampled, the rest passed by.
        let whole = Self.upload(snap: 1448)
        #expect(whole.facts.bodySizes == [100_000, 2_000])
        #expect(whole.facts.randomBodies == 2, "both bodies' heads are random data")
        #expect(whole.delivered <= 8, "\(whole.delivered) of \(whole.segments) segments delivered")
    }

    @Test func aHoleInsidePassedBytesIsStillAHole() {
        // Segment 20 is lost and the reassembly holds only 4 KiB: the hole is skipped, the body
        // keeps its declared size, and the second request is read.
        let r = Self.upload(snap: 900, lose: [20], pending: 4096)
        #expect(r.facts.requests == 2)
        #expect(r.facts.bodySizes == [100_000, 2_000])
    }
}

/// A live capture's flow table keeps a connection only while it may still matter: closed ones a
/// minute (ten when they carried mining evidence), idle UDP two minutes, other idle flows an hour.
/// Before, every connection stayed until the table was full, and a reconnecting client grew the
/// agent without end.
@Suite struct FlowRetentionTests {
    static func add(_ t: FlowTable, _ bytes: [UInt8], at time: Double) {
        bytes.withUnsafeBytes { b in
            if let p = PacketDecoder.decode(linkType: 1, b) { t.add(p, bytes: b, time: time) }
        }
    }

    @Test func endedFlowsLeaveTheTable() throws {
        let t = FlowTable(maxFlows: 100)
        var left: [UInt16] = []
        t.onEvict = { left.append($0.clientPort) }
        // 40001: opened and closed at t=0; 40002: the same, but it spoke Stratum; 40003: open and
        // quiet since t=0; 40004: a DNS question at t=0.
        for port: UInt16 in [40001, 40002, 40003] {
            Self.add(t, PacketBytes.tcp(sport: port, seq: 1, flags: 0x02, payload: []), at: 0)
            Self.add(t, PacketBytes.tcp(sport: port, seq: 2, payload: Array("hello\n".utf8)), at: 0)
        }
        for port: UInt16 in [40001, 40002] { Self.add(t, PacketBytes.tcp(sport: port, seq: 8, flags: 0x11, payload: []), at: 0.5) }
        Self.add(t, PacketBytes.udp(src: [10, 0, 0, 2], dst: [10, 0, 0, 53], sport: 40004, dport: 53, payload: [1, 2, 3]), at: 0)
        #expect(t.flows.count == 4)
        var stratum = SessionFacts()
        stratum.protocolName = .stratum
        var posts = SessionFacts()  // ordinary HTTP requests with bodies are no mining evidence
        posts.exactBodies = 3
        posts.host = "api.example"
        func facts(_ f: Flow) -> SessionFacts { f.clientPort == 40002 ? stratum : posts }
        let ended = { (now: Double) in Set(t.flows.values.filter { FlowBook.ended($0, facts: facts($0), now: now) }.map(\.clientPort)) }
        #expect(ended(30).isEmpty)
        #expect(ended(61) == [40001])
        #expect(ended(121) == [40001, 40004])
        #expect(ended(601) == [40001, 40002, 40004])
        #expect(ended(3601) == [40001, 40002, 40003, 40004])
        #expect(t.remove(where: { FlowBook.ended($0, facts: facts($0), now: 121) }) == 2)
        #expect(Set(left) == [40001, 40004] && t.flows.count == 2 && t.evicted == 0, "leaving is not evicting")
        // A flow that left and comes back is a new flow.
        Self.add(t, PacketBytes.tcp(sport: 40001, seq: 20, payload: Array("again\n".utf8)), at: 130)
        #expect(t.flows.count == 3)
    }
}

/// A ring that opens on a connection already under way sees its data from the middle: a '{' there
/// (one byte in 256 of a compressed git pack) is no Stratum; a Stratum message is.
@Suite struct MidStreamStratumTests {
    static func table() -> (FlowTable, () -> SessionFacts?) {
        let t = FlowTable(maxFlows: 10)
        var inspector: FlowInspector?
        t.onNew = { f in
            let i = FlowInspector(flow: f)
            f.consumer = i
            inspector = i
        }
        return (t, { inspector?.facts })
    }

    @Test func joinedMidStreamNeedsAStratumMessage() {
        let (t, facts) = Self.table()
        let first = Array("{\u{7}\u{1}garbage of a pack\n{\"level\":\"info\",\"msg\":\"pushed\"}\n".utf8)
        FlowRetentionTests.add(t, PacketBytes.tcp(sport: 40010, seq: 500, payload: first), at: 0)
        #expect(facts()?.protocolName == .unknown, "random bytes and a JSON log line are not Stratum")
        FlowRetentionTests.add(t, PacketBytes.tcp(sport: 40010, seq: 500 + UInt32(first.count),
                                                   payload: Array("{\"id\":4,\"jsonrpc\":\"2.0\",\"method\":\"submit\",\"params\":{\"id\":\"w\",\"job_id\":\"1\",\"nonce\":\"00\",\"result\":\"ff\"}}\n".utf8)), at: 1)
        #expect(facts()?.protocolName == .stratumMonero && facts()?.submits == 1, "\(String(describing: facts()))")
    }

    @Test func seenFromItsOpeningTheFirstByteDecides() {
        let (t, facts) = Self.table()
        FlowRetentionTests.add(t, PacketBytes.tcp(sport: 40011, seq: 1, flags: 0x02, payload: []), at: 0)
        FlowRetentionTests.add(t, PacketBytes.tcp(sport: 40011, seq: 2, payload: Array("{\"id\":1,\"meth".utf8)), at: 0)
        #expect(facts()?.protocolName == .stratum)
    }
}

/// A capture ring is opened in the namespace asked for or not at all: a pid that is no longer in
/// it (reused since the sampler read it) would give packets of another namespace under its number.
@Suite struct PacketRingNamespaceTests {
    @Test func aRingOpensOnlyInTheNamespaceAskedFor() throws {
        try prerequisite(getuid() == 0, "packet sockets need root")
        var st = stat()
        #expect(stat("/proc/self/ns/net", &st) == 0)
        let own = UInt64(st.st_ino)
        #expect(throws: MinewatchError.self) { try PacketRing(pid: getpid(), netns: own &+ 1, blocks: 1) }
        do {
            _ = try PacketRing(pid: getpid(), netns: own &+ 1, blocks: 1)
        } catch {
            #expect(error.code == .notFound)
        }
        let ring = try PacketRing(pid: getpid(), netns: own, blocks: 1)
        #expect(ring.fd >= 0)
    }

    /// The ring's kernel filter leaves out TCP segments that only acknowledge (no payload, no
    /// SYN, FIN or RST) and IP that is neither TCP nor UDP, and keeps the rest: a connection over
    /// the loopback of a namespace of its own shows its opening, its data and its closing, and not
    /// the handshake's last ACK nor the acknowledgements of the data; a UDP datagram is kept, an
    /// ICMP echo request (and the port-unreachable the datagram draws) left out.
    /// A process alone in a new network namespace with its loopback up (`unshare -n`); the
    /// caller terminates it.
    static func loopbackNamespace() throws -> Process {
        try prerequisite(getuid() == 0, "packet sockets and namespaces need root")
        try prerequisite(FileManager.default.isExecutableFile(atPath: "/usr/bin/unshare") && FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip")
                         || FileManager.default.isExecutableFile(atPath: "/sbin/ip"), "unshare and ip (util-linux, iproute2)")
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
        holder.arguments = ["-n", "sh", "-c", "ip link set lo up && exec sleep 30"]
        try holder.run()
        let pid = holder.processIdentifier
        func inode(_ path: String) -> UInt64? {
            var st = stat()
            return stat(path, &st) == 0 ? UInt64(st.st_ino) : nil
        }
        let own = inode("/proc/self/ns/net")
        var up = false
        for _ in 0..<100 where !up {
            usleep(20_000)
            // Its own namespace, and a loopback that is up (sh ran `ip` and became sleep).
            up = inode("/proc/\(pid)/ns/net") != own && (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8))?.hasPrefix("sleep") == true
        }
        if !up { holder.terminate(); holder.waitUntilExit() }
        try #require(up)
        return holder
    }

    /// Binds `fd` to 127.0.0.1 on a port the kernel picks; the address it got.
    static func bindLoopback(_ fd: Int32) throws -> sockaddr_in {
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        try #require(withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } } == 0)
        try #require(withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } } == 0)
        return addr
    }

    /// A ring says whether the blocks it read were handed over full (traffic filling it by size,
    /// which the capture thread must not make wait) or on the kernel's timer.
    @Test func fullBlocksAreToldFromTimedOnes() throws {
        let holder = try Self.loopbackNamespace()
        defer { holder.terminate(); holder.waitUntilExit() }
        let ring = try PacketRing(pid: holder.processIdentifier, blockSize: 128 * 1024, blocks: 8, retireMilliseconds: 2000)
        let ns = open("/proc/\(holder.processIdentifier)/ns/net", O_RDONLY | O_CLOEXEC)
        try #require(ns >= 0)
        defer { close(ns) }
        let sink = mw_socket_in_netns(ns, AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        try #require(sink >= 0)
        defer { close(sink) }
        var addr = try Self.bindLoopback(sink)
        let len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let payload = [UInt8](repeating: 0x42, count: 100)
        func send(_ n: Int) {
            for _ in 0..<n {
                _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(sink, payload, payload.count, 0, $0, len) } }
            }
        }
        // 1,500 datagrams, each seen leaving and arriving: 3,000 frames of about 200 bytes fill
        // 128 KiB blocks long before their 2 s timer.
        send(1500)
        var got = ring.drain { _, _ in }
        #expect(got > 600 && ring.filledBlock, "\(got) packets")
        // A few datagrams: their block is handed over by the timer.
        _ = ring.drain { _, _ in }
        send(3)
        let deadline = Date().addingTimeInterval(6)
        got = 0
        while got == 0 && Date() < deadline {
            usleep(100_000)
            got = ring.drain { _, _ in }
        }
        #expect(got > 0 && !ring.filledBlock, "\(got) packets")
        #expect(ring.drops() == 0)
    }

    @Test func bareAcknowledgementsAreLeftOut() throws {
        let holder = try Self.loopbackNamespace()
        defer { holder.terminate(); holder.waitUntilExit() }
        let pid = holder.processIdentifier
        let ring = try PacketRing(pid: pid, blocks: 4, retireMilliseconds: 10)
        let ns = open("/proc/\(pid)/ns/net", O_RDONLY | O_CLOEXEC)
        try #require(ns >= 0)
        defer { close(ns) }
        let listener = mw_socket_in_netns(ns, AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        let client = mw_socket_in_netns(ns, AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(listener >= 0 && client >= 0)
        defer { close(listener) }
        var addr = try Self.bindLoopback(listener)
        let len = socklen_t(MemoryLayout<sockaddr_in>.size)
        try #require(listen(listener, 4) == 0)
        let port = UInt16(bigEndian: addr.sin_port)
        try #require(withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(client, $0, len) } } == 0)
        let server = accept(listener, nil, nil)
        try #require(server >= 0)
        var buf = [UInt8](repeating: 0x41, count: 100)
        var syn = 0, data = 0, fin = 0, bare = 0, datagrams = 0, icmpSeen = 0
        // Loopback shows each packet twice (leaving and arriving).
        func collect() {
            ring.drain { info, bytes in
                if bytes.count > 23 && bytes[12] == 0x08 && bytes[13] == 0 && bytes[23] == 1 { icmpSeen += 1 }
                guard let p = PacketDecoder.decode(linkType: info.linkType, bytes, originalLength: info.originalLength) else { return }
                if p.transport == .udp && p.dstPort == 9 { datagrams += 1 }
                guard p.transport == .tcp, p.srcPort == port || p.dstPort == port else { return }
                if p.syn { syn += 1 }
                if p.fin { fin += 1 }
                if p.wirePayloadLength > 0 { data += 1 }
                if !p.syn && !p.fin && !p.rst && p.wirePayloadLength == 0 { bare += 1 }
            }
        }
        // Drained after each exchange: a ring of four blocks that retire after 10 ms would fill
        // (and drop) over the exchanges' pauses on a loaded machine.
        for _ in 0..<3 {
            #expect(send(client, &buf, 100, 0) == 100)
            #expect(recv(server, &buf, 100, Int32(MSG_WAITALL)) == 100)
            usleep(60_000)  // past the delayed ACK: each segment acknowledged by a bare ACK
            collect()
        }
        #expect(send(server, &buf, 100, 0) == 100)
        #expect(recv(client, &buf, 100, Int32(MSG_WAITALL)) == 100)
        collect()
        // A datagram to the discard port (no one listens: it draws an ICMP port unreachable) and
        // an ICMP echo request through a raw socket (the namespace answers it).
        let udp = mw_socket_in_netns(ns, AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        let icmp = mw_socket_in_netns(ns, AF_INET, Int32(SOCK_RAW.rawValue), Int32(IPPROTO_ICMP))
        try #require(udp >= 0 && icmp >= 0)
        defer { close(udp); close(icmp) }
        var to = addr
        to.sin_port = UInt16(9).bigEndian
        #expect(withUnsafePointer(to: &to) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(udp, buf, 10, 0, $0, len) } } == 10)
        var echo: [UInt8] = [8, 0, 0, 0, 0x12, 0x34, 0, 1] + Array("minewatch".utf8) + [0]
        var sum: UInt32 = 0
        for i in stride(from: 0, to: echo.count, by: 2) { sum += UInt32(echo[i]) << 8 | UInt32(echo[i + 1]) }
        while sum > 0xFFFF { sum = (sum & 0xFFFF) + (sum >> 16) }
        echo[2] = UInt8(~sum >> 8 & 0xFF)
        echo[3] = UInt8(~sum & 0xFF)
        #expect(withUnsafePointer(to: &to) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(icmp, echo, echo.count, 0, $0, len) } } == echo.count)
        var reply = [UInt8](repeating: 0, count: 256)
        usleep(50_000)
        #expect(recv(icmp, &reply, reply.count, Int32(MSG_DONTWAIT)) > 0, "the echo went through the namespace's loopback")
        collect()
        close(client)
        close(server)
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline && fin < 2 {
            usleep(30_000)
            collect()
        }
        #expect(ring.drops() == 0)
        #expect(syn >= 2, "SYN and SYN-ACK")
        #expect(data >= 4, "three requests and a reply")
        #expect(fin >= 2)
        #expect(bare == 0, "bare acknowledgements are filtered in the kernel")
        #expect(datagrams >= 1, "UDP is kept")
        #expect(icmpSeen == 0, "ICMP is filtered in the kernel")
    }
}

/// A connection a namespace accepted from another host is counted and listed, not inspected: the
/// detectors read only the sessions a container opened, and parsing a server's side of every
/// exchange doubled the capture's work on a node of API clients and their servers.
@Suite struct AcceptedFlowTests {
    static let login = Array("{\"id\":1,\"method\":\"login\",\"params\":{\"login\":\"4AdUndXHHZ6cfufTMvppY6JwXNouMBzSkbLYfpAV5Usx3skxNgYeYTRj5UzqtReoS44qo9mtmXCqY45DJ852K5Jv2684Rge\",\"pass\":\"x\",\"agent\":\"XMRig/6.21.0\"}}\n".utf8)

    static func add(_ book: FlowBook, _ bytes: [UInt8], at time: Double, received: Bool) {
        bytes.withUnsafeBytes { b in
            if let p = PacketDecoder.decode(linkType: 1, b) { book.table.add(p, bytes: b, time: time, received: received) }
        }
    }

    @Test func acceptedConnectionsAreCountedNotInspected() {
        let book = FlowBook(maxFlows: 100, cap: 64 * 1024, heartbeat: HeartbeatThresholds())
        // Opened from here (its SYN sent), and accepted from another host (its SYN received): the
        // same Stratum login on each.
        for (sport, received) in [(UInt16(41000), false), (41001, true)] {
            Self.add(book, PacketBytes.tcp(sport: sport, seq: 1, flags: 0x02, payload: []), at: 0, received: received)
            Self.add(book, PacketBytes.tcp(sport: sport, seq: 2, payload: Self.login), at: 0.1, received: received)
        }
        book.absorb()
        let sessions = book.sessions()
        #expect(sessions.map(\.clientPort) == [41000], "only the connection opened from here is inspected: \(sessions.map(\.clientPort))")
        #expect(sessions.first?.facts.protocolName.isMining == true)
        let open = book.openConnections()
        #expect(Set(open.map(\.clientPort)) == [41000, 41001], "both are listed open")
        #expect(open.first { $0.clientPort == 41001 }?.clientBytes == UInt64(Self.login.count), "the accepted one's bytes are counted")
        // A flow first seen past its opening is inspected whatever the direction (who opened it is
        // not known).
        Self.add(book, PacketBytes.tcp(sport: 41002, seq: 500, payload: Self.login), at: 0.2, received: true)
        book.absorb()
        #expect(Set(book.sessions().map(\.clientPort)) == [41000, 41002])
    }

    /// The ring tells a packet that came in from another host (over a veth pair between two
    /// namespaces of the test's own, 198.18.1.244/30) from one sent, and from loopback's.
    @Test func theRingTellsReceivedPackets() throws {
        let a = try PacketRingNamespaceTests.loopbackNamespace()
        defer { a.terminate(); a.waitUntilExit() }
        let b = try PacketRingNamespaceTests.loopbackNamespace()
        defer { b.terminate(); b.waitUntilExit() }
        let tag = String(UInt32.random(in: 0..<0xFFFFFF), radix: 16)
        let ip = FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip") ? "/usr/sbin/ip" : "/sbin/ip"
        for step in [[ip, "link", "add", "mwa\(tag)", "type", "veth", "peer", "name", "mwb\(tag)"],
                     [ip, "link", "set", "mwa\(tag)", "netns", "\(a.processIdentifier)"],
                     [ip, "link", "set", "mwb\(tag)", "netns", "\(b.processIdentifier)"],
                     ["nsenter", "-t", "\(a.processIdentifier)", "-n", ip, "addr", "add", "198.18.1.245/30", "dev", "mwa\(tag)"],
                     ["nsenter", "-t", "\(b.processIdentifier)", "-n", ip, "addr", "add", "198.18.1.246/30", "dev", "mwb\(tag)"],
                     ["nsenter", "-t", "\(a.processIdentifier)", "-n", ip, "link", "set", "mwa\(tag)", "up"],
                     ["nsenter", "-t", "\(b.processIdentifier)", "-n", ip, "link", "set", "mwb\(tag)", "up"]] {
            let r = try run(step)
            try #require(r.status == 0, "\(step.joined(separator: " ")): \(r.err)")
        }
        let ringA = try PacketRing(pid: a.processIdentifier, blocks: 4, retireMilliseconds: 10)
        let ringB = try PacketRing(pid: b.processIdentifier, blocks: 4, retireMilliseconds: 10)
        let nsA = open("/proc/\(a.processIdentifier)/ns/net", O_RDONLY | O_CLOEXEC), nsB = open("/proc/\(b.processIdentifier)/ns/net", O_RDONLY | O_CLOEXEC)
        try #require(nsA >= 0 && nsB >= 0)
        defer { close(nsA); close(nsB) }
        let listener = mw_socket_in_netns(nsB, AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        let client = mw_socket_in_netns(nsA, AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        let local = mw_socket_in_netns(nsB, AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(listener >= 0 && client >= 0 && local >= 0)
        defer { close(listener); close(client); close(local) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("198.18.1.246")
        addr.sin_port = UInt16(0)
        let len = socklen_t(MemoryLayout<sockaddr_in>.size)
        var any = addr
        any.sin_addr.s_addr = 0  // every address of B: its veth's and loopback
        try #require(withUnsafePointer(to: &any) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, len) } } == 0)
        var bound = any
        var blen = len
        try #require(withUnsafeMutablePointer(to: &bound) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &blen) } } == 0)
        try #require(listen(listener, 4) == 0)
        addr.sin_port = bound.sin_port
        var loop = addr
        loop.sin_addr.s_addr = inet_addr("127.0.0.1")
        var connected = false
        for _ in 0..<50 where !connected {  // the veth's address may take a moment (DAD is IPv6's only)
            connected = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(client, $0, len) } } == 0
            if !connected { usleep(50_000) }
        }
        try #require(connected, "connect over the veth pair: errno \(errno)")
        try #require(withUnsafePointer(to: &loop) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(local, $0, len) } } == 0)
        let port = UInt16(bigEndian: bound.sin_port)
        // Opening SYNs (no ACK) to the listener, by where they were captured and how they came.
        func syns(_ ring: PacketRing) -> [(dst: String, received: Bool)] {
            var out: [(String, Bool)] = []
            let deadline = Date().addingTimeInterval(3)
            while out.isEmpty && Date() < deadline {
                usleep(50_000)
                ring.drain { info, bytes in
                    guard let p = PacketDecoder.decode(linkType: info.linkType, bytes), p.transport == .tcp, p.syn, !p.ackFlag, p.dstPort == port else { return }
                    out.append(("\(p.dst)", info.received))
                }
            }
            return out
        }
        let atB = syns(ringB), atA = syns(ringA)
        #expect(atB.contains { $0.dst == "198.18.1.246" && $0.received }, "the SYN from A came in at B: \(atB)")
        #expect(atB.filter { $0.dst == "127.0.0.1" }.allSatisfy { !$0.received } && atB.contains { $0.dst == "127.0.0.1" },
                "loopback's SYN, leaving and arriving, is not received from another host: \(atB)")
        #expect(!atA.isEmpty && atA.allSatisfy { !$0.received }, "A sent its SYN: \(atA)")
    }
}
