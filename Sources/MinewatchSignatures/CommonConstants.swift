/// Constants that benign software is full of: the tables and initial values of standard hash
/// functions and ciphers, hash-table mixers and random-number generators. A rule built from them
/// would match every crypto library, runtime and compiler, so the loader refuses a binary rule
/// string made only of them (or any string of 8 bytes or less that holds one).
///
/// Sources: FIPS 180-4 (SHA-1, SHA-256, SHA-512 initial values and the first round constants),
/// FIPS 197 (AES S-box and the T-table head), FIPS 202 (Keccak round constants), RFC 1321 (MD5),
/// RFC 7693 (BLAKE2b's IV is SHA-512's), the FNV and xxHash specifications, PCG/Knuth's MMIX LCG,
/// CRC-32's reflected polynomial and the golden-ratio mixer.
public enum CommonConstants {
    public struct Entry: Sendable {
        public var name: String
        public var value: UInt64
        public var width: Int
    }

    static func u32(_ name: String, _ values: [UInt32]) -> [Entry] {
        values.map { Entry(name: name, value: UInt64($0), width: 4) }
    }

    static func u64(_ name: String, _ values: [UInt64]) -> [Entry] {
        values.map { Entry(name: name, value: $0, width: 8) }
    }

    public static let entries: [Entry] =
        u32("SHA-256 initial value", [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19])
        + u32("SHA-256 round constant", [0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5])
        + u32("SHA-1/MD5 initial value", [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0])
        + u32("AES S-box/T-table", [0x7b777c63, 0xc56f6bf2, 0xc66363a5, 0xf87c7c84, 0xee777799, 0xf67b7b8d])
        + u32("FNV-1 prime/offset", [0x01000193, 0x811c9dc5])
        + u32("xxHash32 prime", [0x9e3779b1, 0x85ebca77, 0xc2b2ae3d, 0x27d4eb2f, 0x165667b1])
        + u32("golden-ratio mixer", [0x9e3779b9])
        + u32("CRC-32 polynomial", [0xedb88320, 0x04c11db7, 0x82f63b78])
        + u32("BLAKE/Blowfish pi digits", [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344])
        + u64("SHA-512/BLAKE2b initial value", [0x6a09e667f3bcc908, 0xbb67ae8584caa73b, 0x3c6ef372fe94f82b, 0xa54ff53a5f1d36f1,
                                               0x510e527fade682d1, 0x9b05688c2b3e6c1f, 0x1f83d9abfb41bd6b, 0x5be0cd19137e2179])
        + u64("Keccak round constant", [0x0000000000008082, 0x800000000000808a, 0x8000000080008000, 0x000000000000808b,
                                        0x0000000080000001, 0x8000000080008081, 0x8000000000008009])
        + u64("FNV-1 64-bit prime/offset", [0x00000100000001b3, 0xcbf29ce484222325])
        + u64("xxHash64 prime", [0x9e3779b185ebca87, 0xc2b2ae3d27d4eb4f, 0x165667b19e3779f9, 0x85ebca77c2b2ae63, 0x27d4eb2f165667c5])
        + u64("PCG/MMIX multiplier", [0x5851f42d4c957f2d, 0x14057b7ef767814f])
        + u64("golden-ratio mixer", [0x9e3779b97f4a7c15])

    /// Byte strings of every entry in both byte orders, with its name.
    static let patterns: [(bytes: [UInt8], name: String)] = entries.flatMap { e -> [([UInt8], String)] in
        [false, true].map { be in (RuleLoader.bytes(of: [e.value], key: e.width == 8 ? "u64" : "u32", bigEndian: be), e.name) }
    }

    /// Why `bytes` proves nothing, or nil: every aligned word of it is a common constant, or it is
    /// 8 bytes or less and holds one.
    public static func refusal(_ bytes: [UInt8]) -> String? {
        var names: [String] = []
        if bytes.count <= 8 {
            for (p, name) in patterns where p.count <= bytes.count && RuleLoader.contains(bytes, p) {
                return "holds the \(name), which is common in benign software and proves nothing"
            }
            if bytes.count < 8 { return nil }
        }
        for width in [4, 8] where bytes.count % width == 0 {
            var all = true
            var i = 0
            while i < bytes.count {
                let word = Array(bytes[i..<(i + width)])
                guard let hit = patterns.first(where: { $0.bytes == word }) else { all = false; break }
                names.append(hit.name)
                i += width
            }
            if all, !names.isEmpty {
                return "is made only of common constants (\(Set(names).sorted().joined(separator: ", "))), which prove nothing"
            }
            names = []
        }
        return nil
    }
}
