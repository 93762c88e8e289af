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

/// This repository's own packer (Tests/Fixtures/packer/mw-packer.c), built with the toolchain's C
/// compiler: a loader that decrypts its payload into memory and runs it (by default mapping the
/// ELF and its interpreter itself, or with `memfd` through memfd_create and fexecve).
public enum Packer {
    public static func compiler() -> String? {
        let swiftBin = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init) + ["/opt/swift/usr/bin", "/usr/bin"]
        for d in swiftBin {
            for cc in ["clang", "cc", "gcc"] where FileManager.default.isExecutableFile(atPath: "\(d)/\(cc)") { return "\(d)/\(cc)" }
        }
        return nil
    }

    /// Builds the packer into `dir`; returns its path.
    public static func build(in dir: TempDir) throws -> String {
        guard let cc = compiler() else { throw PodmanError(message: "no C compiler (clang from the Swift toolchain, cc or gcc)") }
        let out = dir.path + "/mw-packer"
        let r = try run([cc, "-O2", "-o", out, fixturePath("packer/mw-packer.c")])
        if r.status != 0 { throw PodmanError(message: "building the packer: \(r.err)") }
        return out
    }

    /// Packs `input` into `output` with the packer at `packer`; `delay`: the loader sleeps that
    /// many seconds before it reads and unpacks anything.
    public static func pack(_ packer: String, _ input: String, to output: String, memfd: Bool = false, delay: Int = 0) throws {
        let r = try run([packer, "pack"] + (memfd ? ["--memfd"] : []) + (delay > 0 ? ["--delay", String(delay)] : []) + [input, output])
        if r.status != 0 { throw PodmanError(message: "mw-packer pack: \(r.err)") }
    }
}
