import Testing
@testable import MinewatchSignatures

/// A naive reference: every (pattern, offset) where the pattern occurs.
func naiveMatches(_ data: [UInt8], _ patterns: [PatternMatcher.Pattern]) -> Set<[Int]> {
    var out = Set<[Int]>()
    let lower = PatternMatcher.lowerTable
    for (pi, p) in patterns.enumerated() where p.bytes.count <= data.count {
        for i in 0...(data.count - p.bytes.count) {
            var ok = true
            for j in 0..<p.bytes.count {
                let a = data[i + j], b = p.bytes[j]
                if p.nocase ? lower[Int(a)] != lower[Int(b)] : a != b { ok = false; break }
            }
            if ok { out.insert([pi, i]) }
        }
    }
    return out
}

struct XorShift: RandomNumberGenerator {
    var s: UInt64
    mutating func next() -> UInt64 { s ^= s << 13; s ^= s >> 7; s ^= s << 17; return s }
}

@Suite struct MatcherTests {
    @Test(arguments: [1, 2, 3, 5, 7, 64, 4096])
    func streamingMatchesNaiveAtEveryChunkSize(chunk: Int) {
        var rng = XorShift(s: UInt64(chunk) &* 0x9e3779b97f4a7c15 | 1)
        // A small alphabet makes overlapping and repeated matches common.
        let alphabet = Array("abAB-x".utf8)
        for _ in 0..<20 {
            let patterns = (0..<6).map { _ in
                PatternMatcher.Pattern(bytes: (0..<Int.random(in: 4...9, using: &rng)).map { _ in alphabet.randomElement(using: &rng) ?? 97 },
                                       nocase: Bool.random(using: &rng))
            }
            let data = (0..<3000).map { _ in alphabet.randomElement(using: &rng) ?? 97 }
            let m = PatternMatcher(patterns: patterns)
            var stream = PatternMatcher.Stream()
            var got: [[Int]] = []
            var i = 0
            while i < data.count {
                let end = min(i + chunk, data.count)
                data[i..<end].withUnsafeBytes { b in m.feed(&stream, b) { pi, off in got.append([pi, Int(off)]) } }
                i = end
            }
            #expect(got.count == Set(got).count, "a match was reported twice")
            #expect(Set(got) == naiveMatches(data, patterns))
        }
    }

    @Test func findsPatternsInBinaryNoise() {
        var rng = XorShift(s: 42)
        var data = (0..<100_000).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let needle = Array("stratum+tcp://".utf8)
        data.replaceSubrange(77_777..<(77_777 + needle.count), with: needle)
        let m = PatternMatcher(patterns: [.init(bytes: needle, nocase: false), .init(bytes: Array("XMRIG".utf8), nocase: true)])
        var s = PatternMatcher.Stream()
        var got: [(Int, Int64)] = []
        data.withUnsafeBytes { b in m.feed(&s, b) { got.append(($0, $1)) } }
        #expect(got.count == 1)
        #expect(got.first?.1 == 77_777)
    }
}
