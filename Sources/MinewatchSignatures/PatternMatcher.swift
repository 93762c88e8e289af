/// A multi-pattern literal matcher that works on a stream of chunks.
///
/// Each pattern is anchored on its rarest 2-byte pair (by a frequency model of text and
/// binaries), so common letter pairs rarely stop the scan. Scanning reads eight positions per
/// step from one 8-byte load and looks each pair up in a 64 KiB table; only when a pair is an
/// anchor are the patterns anchored there compared in full. Case-insensitive patterns enter
/// every case variant of their anchor, so scanning never folds case. Matches that cross a chunk
/// boundary are found through a small carry of the last `maxLength - 1` bytes; each match is
/// reported once.
public final class PatternMatcher: @unchecked Sendable {
    public struct Pattern: Sendable, Hashable {
        public var bytes: [UInt8]
        public var nocase: Bool
        public init(bytes: [UInt8], nocase: Bool) {
            self.bytes = bytes
            self.nocase = nocase
        }
    }

    public let patterns: [Pattern]
    public let maxLength: Int
    /// Largest anchor offset inside a pattern.
    let maxAnchor: Int
    // Immutable after init; raw memory keeps the hot loop free of bounds checks and refcounting.
    /// Non-zero for pairs that anchor a pattern.
    let anchorTable: UnsafeMutablePointer<UInt8>
    /// 128 Ki-bit filter over hashes of the 4 bytes that start at each anchor.
    let quadFilter: UnsafeMutablePointer<UInt64>
    static let quadBits: UInt32 = 17
    /// For each pair: a range into `entries`.
    let pairStart: UnsafeMutablePointer<Int32>
    let pairCount: UnsafeMutablePointer<UInt16>
    /// (pattern index, anchor offset) pairs grouped by anchor pair.
    let entryPattern: UnsafeMutablePointer<Int32>
    let entryOffset: UnsafeMutablePointer<Int32>
    let flatBytes: UnsafeMutablePointer<UInt8>
    let flatStart: UnsafeMutablePointer<Int32>
    let flatLength: UnsafeMutablePointer<Int32>
    let flatNocase: UnsafeMutablePointer<Bool>
    let lower: UnsafeMutablePointer<UInt8>

    public static let lowerTable: [UInt8] = (0..<256).map { (b: Int) -> UInt8 in
        let v = UInt8(b)
        return (v >= 65 && v <= 90) ? v + 32 : v
    }

    /// Rough byte frequencies over a mix of text and executables: the anchor of a pattern is
    /// the pair with the lowest product. Only the choice of anchor depends on it, never a result.
    static let byteFrequency: [Double] = (0..<256).map { (b: Int) -> Double in
        let c = UInt8(b)
        switch c {
        case 0: return 0.08
        case 0x20: return 0.08
        case 0x0a: return 0.02
        case 0xff: return 0.02
        case UInt8(ascii: "e"), UInt8(ascii: "t"), UInt8(ascii: "a"), UInt8(ascii: "o"), UInt8(ascii: "i"),
             UInt8(ascii: "n"), UInt8(ascii: "s"), UInt8(ascii: "r"), UInt8(ascii: "l"): return 0.035
        case UInt8(ascii: "a")...UInt8(ascii: "z"): return 0.012
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): return 0.004
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return 0.006
        case UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"), UInt8(ascii: "/"), UInt8(ascii: "\""),
             UInt8(ascii: "="), UInt8(ascii: ":"), UInt8(ascii: ","), UInt8(ascii: "("), UInt8(ascii: ")"): return 0.006
        case 0x01...0x1f: return 0.004
        default: return 0.002
        }
    }

    /// The case variants of a byte for a pattern.
    static func variants(_ b: UInt8, _ nocase: Bool) -> [UInt8] {
        guard nocase else { return [b] }
        if b >= 65 && b <= 90 { return [b, b + 32] }
        if b >= 97 && b <= 122 { return [b, b - 32] }
        return [b]
    }

    @inline(__always) static func quadHash(_ q: UInt32) -> UInt32 { (q &* 0x9E37_79B1) &>> (32 - quadBits) }

    /// The offset of the pattern's rarest pair that has 4 pattern bytes from it.
    static func anchorOffset(_ p: Pattern) -> Int {
        var best = 0
        var bestScore = Double.infinity
        for o in 0...(p.bytes.count - 4) {
            let fa = variants(p.bytes[o], p.nocase).reduce(0) { $0 + byteFrequency[Int($1)] }
            let fb = variants(p.bytes[o + 1], p.nocase).reduce(0) { $0 + byteFrequency[Int($1)] }
            let score = fa * fb
            if score < bestScore - 1e-12 {
                bestScore = score
                best = o
            }
        }
        return best
    }

    public init(patterns: [Pattern]) {
        precondition(patterns.allSatisfy { $0.bytes.count >= 4 }, "patterns must be at least 4 bytes")
        self.patterns = patterns
        maxLength = patterns.map(\.bytes.count).max() ?? 2
        var lists = [[(Int32, Int32)]](repeating: [], count: 65536)
        var maxAnchor = 0
        let quadWords = (1 << Int(Self.quadBits)) / 64
        quadFilter = .allocate(capacity: quadWords)
        quadFilter.initialize(repeating: 0, count: quadWords)
        for (pi, p) in patterns.enumerated() {
            let o = Self.anchorOffset(p)
            maxAnchor = max(maxAnchor, o)
            var quads: [UInt32] = [0]
            for k in 0..<4 {
                let vs = Self.variants(p.bytes[o + k], p.nocase)
                quads = quads.flatMap { q in vs.map { q | UInt32($0) << (8 * UInt32(k)) } }
            }
            for q in quads {
                let h = Self.quadHash(q)
                quadFilter[Int(h >> 6)] |= 1 << UInt64(h & 63)
            }
            for a in Self.variants(p.bytes[o], p.nocase) {
                for b in Self.variants(p.bytes[o + 1], p.nocase) {
                    lists[Int(a) | Int(b) << 8].append((Int32(pi), Int32(o)))
                }
            }
        }
        self.maxAnchor = maxAnchor
        anchorTable = .allocate(capacity: 65536)
        pairStart = .allocate(capacity: 65536)
        pairCount = .allocate(capacity: 65536)
        let total = lists.reduce(0) { $0 + $1.count }
        entryPattern = .allocate(capacity: max(total, 1))
        entryOffset = .allocate(capacity: max(total, 1))
        var k = 0
        for g in 0..<65536 {
            anchorTable[g] = lists[g].isEmpty ? 0 : 1
            pairStart[g] = Int32(k)
            pairCount[g] = UInt16(lists[g].count)
            for (pi, o) in lists[g] {
                entryPattern[k] = pi
                entryOffset[k] = o
                k += 1
            }
        }
        var flat: [UInt8] = []
        var fs: [Int32] = []
        var fl: [Int32] = []
        for p in patterns {
            fs.append(Int32(flat.count))
            fl.append(Int32(p.bytes.count))
            flat.append(contentsOf: p.nocase ? p.bytes.map { Self.lowerTable[Int($0)] } : p.bytes)
        }
        flatBytes = .allocate(capacity: max(flat.count, 1)); flatBytes.initialize(from: flat, count: flat.count)
        flatStart = .allocate(capacity: max(fs.count, 1)); flatStart.initialize(from: fs, count: fs.count)
        flatLength = .allocate(capacity: max(fl.count, 1)); flatLength.initialize(from: fl, count: fl.count)
        flatNocase = .allocate(capacity: max(patterns.count, 1))
        flatNocase.initialize(from: patterns.map(\.nocase), count: patterns.count)
        lower = .allocate(capacity: 256)
        lower.initialize(from: Self.lowerTable, count: 256)
    }

    deinit {
        anchorTable.deallocate(); quadFilter.deallocate(); pairStart.deallocate(); pairCount.deallocate(); entryPattern.deallocate()
        entryOffset.deallocate(); flatBytes.deallocate(); flatStart.deallocate(); flatLength.deallocate()
        flatNocase.deallocate(); lower.deallocate()
    }

    /// Scans `buffer`, appending `(pattern, position)` to `out` for every match that starts at
    /// `position` in `from..<upTo` and lies wholly within `buffer`, and for which
    /// `position + length > mustEndAfter`.
    @inline(__always)
    func scan(
        _ buffer: UnsafeRawBufferPointer, from: Int, upTo: Int, mustEndAfter: Int,
        _ out: inout [(Int, Int)]
    ) {
        let n = buffer.count
        guard n >= 2, let base = buffer.baseAddress, from < upTo else { return }
        // Anchors sit at start + offset: scan every pair position that can anchor a wanted start.
        let firstPair = from
        let lastPair = min(n - 1, upTo + maxAnchor)  // exclusive
        let table = anchorTable
        var i = firstPair
        let fastEnd = min(lastPair - 7, n - 8)
        while i < fastEnd {
            let a = base.loadUnaligned(fromByteOffset: i, as: UInt64.self).littleEndian
            let b = UInt64(base.load(fromByteOffset: i &+ 8, as: UInt8.self))
            let t0 = table[Int(truncatingIfNeeded: a & 0xFFFF)]
            let t1 = table[Int(truncatingIfNeeded: (a &>> 8) & 0xFFFF)]
            let t2 = table[Int(truncatingIfNeeded: (a &>> 16) & 0xFFFF)]
            let t3 = table[Int(truncatingIfNeeded: (a &>> 24) & 0xFFFF)]
            let t4 = table[Int(truncatingIfNeeded: (a &>> 32) & 0xFFFF)]
            let t5 = table[Int(truncatingIfNeeded: (a &>> 40) & 0xFFFF)]
            let t6 = table[Int(truncatingIfNeeded: (a &>> 48) & 0xFFFF)]
            let t7 = table[Int(truncatingIfNeeded: (a &>> 56) | (b &<< 8))]
            if (t0 | t1 | t2 | t3 | t4 | t5 | t6 | t7) == 0 {
                i &+= 8
                continue
            }
            // Bit k of `hits` is set when the pair at i+k anchors a pattern.
            var hits = UInt32(t0) | UInt32(t1) &<< 1 | UInt32(t2) &<< 2 | UInt32(t3) &<< 3
                | UInt32(t4) &<< 4 | UInt32(t5) &<< 5 | UInt32(t6) &<< 6 | UInt32(t7) &<< 7
            while hits != 0 {
                let j = i &+ hits.trailingZeroBitCount
                hits &= hits &- 1
                let h = Self.quadHash(base.loadUnaligned(fromByteOffset: j, as: UInt32.self).littleEndian)
                if quadFilter[Int(h &>> 6)] & (1 &<< UInt64(h & 63)) != 0 {
                    let g = Int(base.loadUnaligned(fromByteOffset: j, as: UInt16.self).littleEndian)
                    candidates(g, j, base, n, from, upTo, mustEndAfter, &out)
                }
            }
            i &+= 8
        }
        while i < lastPair {
            check(i, base, n, from, upTo, mustEndAfter, &out)
            i &+= 1
        }
    }

    @inline(__always)
    func check(_ j: Int, _ base: UnsafeRawPointer, _ n: Int, _ from: Int, _ upTo: Int, _ mustEndAfter: Int,
               _ out: inout [(Int, Int)]) {
        let g = Int(base.loadUnaligned(fromByteOffset: j, as: UInt16.self).littleEndian)
        guard anchorTable[g] != 0, j + 4 <= n else { return }
        let h = Self.quadHash(base.loadUnaligned(fromByteOffset: j, as: UInt32.self).littleEndian)
        if quadFilter[Int(h &>> 6)] & (1 &<< UInt64(h & 63)) != 0 {
            candidates(g, j, base, n, from, upTo, mustEndAfter, &out)
        }
    }

    @inline(never)
    func candidates(_ g: Int, _ j: Int, _ base: UnsafeRawPointer, _ n: Int, _ from: Int, _ upTo: Int,
                    _ mustEndAfter: Int, _ out: inout [(Int, Int)]) {
        let s = Int(pairStart[g])
        for e in s..<(s + Int(pairCount[g])) {
            let pi = Int(entryPattern[e])
            let start = j - Int(entryOffset[e])
            let len = Int(flatLength[pi])
            if start >= from && start < upTo && start + len <= n && start + len > mustEndAfter && verify(pi, base + start, len) {
                out.append((pi, start))
            }
        }
    }

    @inline(__always)
    func verify(_ pi: Int, _ p: UnsafeRawPointer, _ len: Int) -> Bool {
        let start = Int(flatStart[pi])
        if flatNocase[pi] {
            for j in 0..<len where lower[Int(p.load(fromByteOffset: j, as: UInt8.self))] != flatBytes[start + j] {
                return false
            }
            return true
        }
        return memcmp(p, flatBytes + start, len) == 0
    }

    /// Per-stream state: absolute position and the carry that lets matches cross chunks.
    public struct Stream: Sendable {
        public internal(set) var position: Int64 = 0
        var carry: [UInt8] = []
        public init() {}
    }

    /// Feed the next chunk of a stream. `onMatch(patternIndex, absoluteOffset)`.
    /// The scan loop writes matches to a list (not a closure) so it compiles to one tight,
    /// non-generic loop whoever calls it.
    public func feed(_ stream: inout Stream, _ chunk: UnsafeRawBufferPointer, _ onMatch: (Int, Int64) -> Void) {
        let keep = maxLength - 1
        let n = chunk.count
        if n == 0 { return }
        var found: [(Int, Int)] = []
        // 1. Matches starting in the carry and ending in this chunk.
        if !stream.carry.isEmpty {
            let carryCount = stream.carry.count
            var joint = stream.carry
            if let b = chunk.baseAddress { joint.append(contentsOf: UnsafeRawBufferPointer(start: b, count: min(n, keep))) }
            let basePos = stream.position - Int64(carryCount)
            joint.withUnsafeBytes { jb in scan(jb, from: 0, upTo: carryCount, mustEndAfter: carryCount, &found) }
            for (pi, at) in found { onMatch(pi, basePos + Int64(at)) }
            found.removeAll(keepingCapacity: true)
        }
        // 2. Matches wholly inside this chunk.
        let chunkPos = stream.position
        scan(chunk, from: 0, upTo: n, mustEndAfter: 0, &found)
        for (pi, at) in found { onMatch(pi, chunkPos + Int64(at)) }
        // 3. New carry: the last `keep` bytes of everything seen.
        if n >= keep {
            stream.carry = Array(UnsafeRawBufferPointer(rebasing: chunk[(n - keep)...]))
        } else {
            stream.carry.append(contentsOf: chunk)
            if stream.carry.count > keep { stream.carry.removeFirst(stream.carry.count - keep) }
        }
        stream.position += Int64(n)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
