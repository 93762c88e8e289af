import Foundation

/// What attackers do to a miner's file without changing its code, applied to real XMRig builds.
public enum Disguises {
    /// Every "xmrig" (any case) replaced by a same-length made-up brand: a rebuilt, rebranded XMRig.
    public static func rebrand(_ bytes: [UInt8], as brand: String = "qzvbk") -> [UInt8] {
        var b = bytes
        let needle = Array("xmrig".utf8)
        let repl = Array(brand.utf8)
        precondition(repl.count == needle.count)
        var i = 0
        while i + needle.count <= b.count {
            var hit = true
            for k in 0..<needle.count where b[i + k] | 0x20 != needle[k] { hit = false; break }
            if hit {
                for k in 0..<needle.count { b[i + k] = repl[k] }
                i += needle.count
            } else {
                i += 1
            }
        }
        return b
    }

    /// Every run of 4 or more printable bytes (what `strings` shows) overwritten: harsher than a
    /// build with string obfuscation, which leaves numeric constants alone.
    public static func overwriteStrings(_ bytes: [UInt8], minimum: Int = 4) -> [UInt8] {
        var b = bytes
        var start = -1
        func printable(_ c: UInt8) -> Bool { c >= 0x20 && c < 0x7f }
        for i in 0...b.count {
            if i < b.count, printable(b[i]) {
                if start < 0 { start = i }
                continue
            }
            if start >= 0, i - start >= minimum {
                for k in start..<i { b[k] = UInt8(ascii: "Z") }
            }
            start = -1
        }
        return b
    }

    /// Honest holders of crypto and proof-of-work code fetched by scripts/install-deps.
    public static var benignCrypto: String { UPXTools.deps + "/benign-crypto" }
}
