import Foundation
import MinewatchFuzz
import Testing
import TestSupport

/// Replays the fuzz seed corpus and every input that once crashed a parser (Tests/Fixtures/fuzz)
/// through the same harnesses libFuzzer drives, plus deterministic mutations of each seed.
/// A crash here is a crash of minewatch on hostile input.
@Suite struct FuzzReplayTests {
    static let root = fixturePath("fuzz")

    /// Seeds that live elsewhere in the repository (scripts/fuzz uses the same folders).
    static let moreSeeds: [String: [String]] = [
        "pcap": [fixturePath("pcaps")],
        "rules": [fixturePath("../../Sources/MinewatchSignatures/Rules")],
    ]

    /// Packed executables are made by the real upx when the tests run (scripts/fuzz does the same),
    /// not committed: small system programs with each method, and with their UPX headers wiped.
    static let packedSeedDir: TempDir? = {
        guard UPXTools.available else { return nil }
        guard let dir = try? TempDir("upx-seeds") else { return nil }
        for method in UPXTools.methods {
            let out = "\(dir.path)/true.\(method)"
            guard (try? UPXTools.pack("/bin/true", method: method, to: out)) != nil,
                  let bytes = FileManager.default.contents(atPath: out) else { continue }
            _ = try? dir.file("true.\(method).wiped", UPXTools.wipeHeaders(Array(bytes)))
        }
        return dir
    }()
    static var packedSeeds: String? { packedSeedDir?.path }

    static func inputs(_ kind: String, _ target: String) -> [String] {
        var extra = kind == "seeds" ? moreSeeds[target] ?? [] : []
        if kind == "seeds" && (target == "upx" || target == "file"), let p = packedSeeds { extra.append(p) }
        let dirs = ["\(root)/\(kind)/\(target)"] + extra
        return dirs.flatMap { dir in
            ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { !$0.hasSuffix(".md") }.sorted().map { "\(dir)/\($0)" }
        }
    }

    @Test(arguments: FuzzTargets.all.map(\.name))
    func seedsAndRegressions(target: String) throws {
        let h = try #require(FuzzTargets.harness(target))
        let files = Self.inputs("seeds", target) + Self.inputs("regressions", target)
        if target == "upx" { try UPXTools.require() }
        #expect(!Self.inputs("seeds", target).isEmpty, "no seed corpus for \(target) in \(Self.root)/seeds")
        var ran = 0
        for f in files {
            let data = try Data(contentsOf: URL(fileURLWithPath: f))
            data.withUnsafeBytes { h($0) }
            ran += 1
        }
        #expect(ran == files.count)
    }

    @Test(arguments: FuzzTargets.all.map(\.name))
    func mutatedSeeds(target: String) throws {
        let h = try #require(FuzzTargets.harness(target))
        var rand = Samples.Rand(seed: 0x5eed)
        var ran = 0
        for f in Self.inputs("seeds", target) {
            let seed = Array(try Data(contentsOf: URL(fileURLWithPath: f)))
            for round in 0..<24 {
                var m = seed
                switch round % 4 {
                case 0 where !m.isEmpty:  // flip a few bytes
                    for _ in 0..<4 { m[Int(rand.next() % UInt64(m.count))] ^= UInt8(truncatingIfNeeded: rand.next() | 1) }
                case 1:  // truncate
                    m = Array(m.prefix(Int(rand.next() % UInt64(m.count + 1))))
                case 2 where m.count > 8:  // a length field becomes huge
                    let at = Int(rand.next() % UInt64(m.count - 4))
                    m[at] = 0xff; m[at + 1] = 0xff; m[at + 2] = 0xff; m[at + 3] = 0x7f
                default:  // splice random bytes in
                    let at = Int(rand.next() % UInt64(m.count + 1))
                    m.insert(contentsOf: rand.bytes(Int(rand.next() % 64)), at: at)
                }
                m.withUnsafeBytes { h($0) }
                ran += 1
            }
        }
        #expect(ran == Self.inputs("seeds", target).count * 24)
    }
}
