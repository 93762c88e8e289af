import Foundation
import Testing

/// Real UPX (upx-ucl 4.x) and real XMRig builds (amd64, arm64, i386) from Debian 13, fetched by
/// scripts/install-deps into $MINEWATCH_TEST_DEPS (default /opt/minewatch-test-deps), plus a
/// small root with the amd64 XMRig's libraries to run it in.
public enum UPXTools {
    public static var deps: String { ProcessInfo.processInfo.environment["MINEWATCH_TEST_DEPS"] ?? "/opt/minewatch-test-deps" }
    public static var upx: String { deps + "/bin/upx" }
    public static var xmrigRoot: String { deps + "/xmrig-root" }
    public static func xmrig(_ arch: String) -> String { "\(deps)/xmrig/\(arch)/usr/bin/xmrig" }
    public static let architectures = ["amd64", "arm64", "i386"]
    public static let methods = ["nrv2b", "nrv2d", "nrv2e", "lzma"]

    public static var available: Bool {
        FileManager.default.isExecutableFile(atPath: upx) && architectures.allSatisfy { FileManager.default.fileExists(atPath: xmrig($0)) }
    }

    /// Returns when real upx and xmrig are there; otherwise the test is skipped, or fails under CI=true.
    public static func require(sourceLocation: SourceLocation = #_sourceLocation) throws {
        try prerequisite(available, "upx and xmrig are missing (scripts/install-deps fetches them into \(deps))", sourceLocation: sourceLocation)
    }

    /// Packs `input` with `--METHOD` into `output` with the real upx.
    public static func pack(_ input: String, method: String, to output: String) throws {
        let r = try run([upx, "-q", "-f", "--\(method)", "-o", output, input])
        if r.status != 0 { throw PodmanError(message: "upx --\(method) \(input): \(String(decoding: r.out, as: UTF8.self)) \(r.err)") }
    }

    /// What attackers do so that `upx -d` refuses a packed file that still runs: every "UPX!"
    /// zeroed, `l_info` and `p_info` (after the program headers) and the trailer (last 36 bytes)
    /// overwritten with random bytes, and UPX's `$Info`/`$Id` banner strings wiped.
    public static func wipeHeaders(_ bytes: [UInt8], seed: UInt64 = 7) -> [UInt8] {
        var b = bytes
        var rand = Samples.Rand(seed: seed)
        let magic = Array("UPX!".utf8)
        var i = 0
        while i + 4 <= b.count {
            if b[i] == magic[0] && b[i + 1] == magic[1] && b[i + 2] == magic[2] && b[i + 3] == magic[3] {
                for k in 0..<4 { b[i + k] = 0 }
            }
            i += 1
        }
        let is64 = b[4] == 2
        func le16(_ o: Int) -> Int { Int(b[o]) | Int(b[o + 1]) << 8 }
        let phoff = is64 ? Int(b[32]) | Int(b[33]) << 8 : Int(b[28]) | Int(b[29]) << 8
        let phent = le16(is64 ? 54 : 42), phnum = le16(is64 ? 56 : 44)
        let linfo = phoff + phent * phnum
        for k in 0..<24 { b[linfo + k] = UInt8(truncatingIfNeeded: rand.next()) }
        for k in (b.count - 36)..<b.count { b[k] = UInt8(truncatingIfNeeded: rand.next()) }
        for marker in ["$Info: This file is packed with the UPX", "$Id: UPX", "UPX executable packer", "the UPX Team"] {
            let m = Array(marker.utf8)
            var j = 0
            while j + m.count <= b.count {
                if b[j] == m[0] && Array(b[j..<(j + m.count)]) == m { for k in 0..<m.count { b[j + k] = UInt8(ascii: " ") } }
                j += 1
            }
        }
        return b
    }
}
