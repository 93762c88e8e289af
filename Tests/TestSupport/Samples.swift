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
