import Foundation
import MinewatchUnpack
import Testing
import TestSupport

/// The decoders and the block finder on hostile bytes: clear failures, never a crash or an
/// overrun. (Real UPX packs are unpacked in IntegrationTests/UPXTests.)
@Suite struct UnpackTests {
    @Test func nrvRejectsGarbageAndTruncation() throws {
        var rand = Samples.Rand(seed: 11)
        for variant in [NRV.Variant.b, .d, .e] {
            for size in [0, 1, 3, 4, 7, 64, 4096] {
                let input = rand.bytes(size)
                var out = [UInt8](repeating: 0, count: 1024)
                let failed = input.withUnsafeBytes { i in out.withUnsafeMutableBytes { o in (try? NRV.decode(variant, i, into: o)) == nil } }
                #expect(failed, "\(variant) \(size) random bytes decoded")
            }
        }
        // Literals only, then the input ends: an overrun, not a crash.
        let literals: [UInt8] = [0xff, 0xff, 0xff, 0xff, 0x41, 0x42]
        var out = [UInt8](repeating: 0, count: 16)
        literals.withUnsafeBytes { i in
            out.withUnsafeMutableBytes { o in
                _ = #expect(throws: NRV.Failure.self) { try NRV.decode(.b, i, into: o) }
            }
        }
    }

    @Test func lzmaChecksItsProperties() throws {
        var out = [UInt8](repeating: 0, count: 64)
        for bad: [UInt8] in [[0xff, 0xff, 0], [0x1a, 0x40, 0], [0x1a]] {
            let r = bad.withUnsafeBytes { i in out.withUnsafeMutableBytes { o in (try? UPXLZMA.decode(i, into: o)) == nil } }
            #expect(r)
        }
        // A raw LZMA1 stream made by xz decodes with UPX's two property bytes in front.
        let text = Array(String(repeating: "stratum+tcp://198.18.1.2:3333 donate.v2.xmrig.com ", count: 40).utf8)
        let raw = try run(["xz", "--format=raw", "--lzma1=preset=6,lc=3,lp=0,pb=2", "-c"], stdin: text).out
        let block: [UInt8] = [0x1a, 0x03] + raw
        var decoded = [UInt8](repeating: 0, count: text.count)
        try block.withUnsafeBytes { i in try decoded.withUnsafeMutableBytes { o in try UPXLZMA.decode(i, into: o) } }
        #expect(decoded == text)
    }

    @Test func notPackedAndTruncatedFiles() throws {
        let ls = Array(try Data(contentsOf: URL(fileURLWithPath: "/bin/ls")))
        ls.withUnsafeBytes { b in
            #expect(!UPX.looksPacked(b))
            #expect(throws: UPX.Failure.self) { try UPX.locate(b, limits: UPX.Limits(maxTrials: 64)) }
        }
        // UPX's program-header layout with nothing behind it.
        var fake = [UInt8](repeating: 0, count: 512)
        fake.replaceSubrange(0..<20, with: [0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 3, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 62, 0])
        fake[32] = 64; fake[54] = 56; fake[56] = 2
        func phdr(_ at: Int, flags: UInt8, filesz: UInt32) {
            fake[at] = 1; fake[at + 4] = flags
            withUnsafeBytes(of: UInt64(filesz).littleEndian) { for (k, v) in $0.enumerated() { fake[at + 32 + k] = v; fake[at + 40 + k] = v } }
        }
        phdr(64, flags: 6, filesz: 0x1000)
        phdr(120, flags: 5, filesz: 0x200)
        fake.withUnsafeBytes { b in
            #expect(UPX.looksPacked(b))
            #expect(throws: UPX.Failure.self) { try UPX.locate(b) }
        }
    }
}
