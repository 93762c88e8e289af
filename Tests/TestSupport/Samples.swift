import Foundation

/// Synthetic samples: ELF-shaped files carrying chosen strings among pseudo-random bytes, so
/// detectors are tested on content, never on names.
public enum Samples {
    /// A deterministic pseudo-random byte generator (xorshift), so failures reproduce.
    public struct Rand {
        var s: UInt64
        public init(seed: UInt64) { s = seed == 0 ? 0x9e3779b97f4a7c15 : seed }
        public mutating func next() -> UInt64 {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17
            return s
        }
        public mutating func bytes(_ n: Int) -> [UInt8] {
            var out = [UInt8](); out.reserveCapacity(n)
            while out.count < n {
                var v = next()
                for _ in 0..<8 where out.count < n { out.append(UInt8(v & 0xff)); v >>= 8 }
            }
            return out
        }
    }

    /// A 64-bit little-endian ELF header (enough for content sniffing and `file`).
    public static let elfHeader: [UInt8] = [0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0] + [UInt8](repeating: 0, count: 8)
        + [2, 0, 0x3e, 0, 1, 0, 0, 0] + [UInt8](repeating: 0, count: 40)

    /// An ELF-shaped file: header, then `strings` NUL-separated, each between random filler.
    public static func elf(_ strings: [String], seed: UInt64 = 1, filler: Int = 4096) -> [UInt8] {
        var r = Rand(seed: seed)
        var out = elfHeader + r.bytes(filler)
        for s in strings {
            out += [0] + Array(s.utf8) + [0]
            out += r.bytes(filler)
        }
        return out
    }

    /// Shaped like a UPX-packed ELF: `UPX!` magic, UPX0/UPX1 section names, high-entropy body.
    public static func upxPacked(seed: UInt64 = 7) -> [UInt8] {
        var r = Rand(seed: seed)
        return elfHeader + r.bytes(64) + Array("UPX0\0UPX1\0".utf8) + r.bytes(2048)
            + Array("UPX!".utf8) + r.bytes(8192)
            + Array("$Info: This file is packed with the UPX executable packer http://upx.sf.net $\n".utf8) + r.bytes(512)
    }

    public static let xmrigStrings = ["XMRig/%s libuv/%s%s", "donate.v2.xmrig.com", "--cpu-affinity", "password for mining server"]
    public static let packetcryptStrings = ["x-pc-payto", "x-pc-worknum", "packetcrypt_rs", "Bandwidth hard proof of work algorithm", "goodrate"]
    public static let cpuminerStrings = ["Stratum notify: invalid Merkle branch", "User-Agent: cpuminer/", "LONGPOLL pushed new work"]
    public static let xmrstakStrings = ["xmr-stak", "fireice-uk", "Please enter the currency that you want to mine"]
    public static let ccminerStrings = ["ccminer", "tpruvot", "for nVidia GPUs"]
    public static let cgminerStrings = ["cgminer", "mining.subscribe", "--api-listen"]
    public static let ethminerStrings = ["ethminer", "eth_submitWork", "ethash"]
}

/// Files laid out like a checkout of the original PacketCrypt miner (cjdelisle/PacketCrypt, in-tree
/// build): the Node.js drivers, their pool client, package.json, the C cores in bin/ and the docs.
/// Each file carries literal strings of the upstream file it stands for (read from the upstream
/// source) among text and bytes of its own; no upstream code.
public enum PacketCryptCheckout {
    public static let pkt = "pkt1q6hqsqhqdgqfd8t3xwgceulu7k9d9w5t2amath0qxyfjlvl3s3u4sjza2g2"

    static func js(_ lines: [String]) -> [UInt8] {
        Array(("'use strict';\n/* mining driver */\n" + lines.map { "console.log(\"\($0)\");\nconst step = () => { return 1; };\n" }.joined()).utf8)
    }

    public static func files(root: String = "/opt/PacketCrypt") -> [(String, [UInt8])] {
        [
            ("\(root)/annmine.js", js([
                "Usage: node annmine.js OPTIONS <poolurl>",
                "    --paymentAddr # the bitcoin address to request payment from the pool",
                "    --maxKbps     # adjust the bandwidth limit (in kilobits) for the miner,",
                "                  # default is ./bin/pcann",
                "pcann has died, restarting in 1 second",
            ])),
            ("\(root)/blkmine.js", js(["Usage: node blkmine.js OPTIONS <poolurl>", "pcblk not present or not working", "Enter pkblk died"])),
            ("\(root)/js/PoolClient.js", js(["Failed to get config.json [", "x-pc-sver", "'/work_'", "annTarget", "submitAnnUrls"])),
            ("\(root)/package.json", Array("{\n  \"name\": \"packetcrypt\",\n  \"version\": \"1.0.0\",\n  \"dependencies\": {\n    \"nthen\": \"^0.1.10\",\n    \"saferphore\": \"0.0.1\"\n  }\n}\n".utf8)),
            ("\(root)/bin/pcann", Samples.elf(["Usage: ./pcann OPTIONS", "pcann: Parent dead, shutting down", "pcann: %.02f%cb/s"], seed: 31)),
            ("\(root)/bin/pcblk", Samples.elf(["Usage: ./pcblk OPTIONS <wrkdir>", "PacketCrypt Block Miner: Protocol Version %d", "pcblk: Stdin is nolonger connected, exiting"], seed: 32)),
            ("\(root)/docs/annmine.md", Array("# annmine\n\nUsage: node annmine.js OPTIONS <poolurl>\n--paymentAddr # the bitcoin address to request payment from the pool\n".utf8)),
        ]
    }

    /// The command line the upstream docs give: `node annmine.js --paymentAddr pkt1... --threads N --maxKbps N http://POOL`.
    public static let cmd = ["node", "annmine.js", "--paymentAddr", pkt, "--threads", "1", "--maxKbps", "500", "http://pool.pkteer.com"]
}
