/// A multi-pattern literal matcher that works on a stream of chunks.
///
/// Every pattern is at least 4 bytes. Each position's next 4 bytes are hashed
/// (multiply-shift) into a 128 Ki-bit filter (16 KiB, stays in L1) holding the 4-byte
/// prefixes of all patterns; only on a filter hit is the open-addressing table of prefixes
/// probed and whole patterns compared. Case-insensitive patterns enter every case variant of
/// their prefix, so scanning never folds case. Matches that cross a chunk boundary are found
/// through a small carry of the last `maxLength - 1` bytes; each match is reported once.
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
    static let filterBits: UInt32 = 17
    // Immutable after init; raw memory keeps the hot loop free of bounds checks and refcounting.
    let filter: UnsafeMutablePointer<UInt64>
    /// One byte per 2-byte prefix (64 KiB): the first, multiply-free check.
    let bigram: UnsafeMutablePointer<UInt8>
    let slotKeys: UnsafeMutablePointer<UInt32>
    let slotUsed: UnsafeMutablePointer<Bool>
    let slotStart: UnsafeMutablePointer<Int32>
    let slotCount: UnsafeMutablePointer<Int32>
    let slotMask: Int
    let candidates: UnsafeMutablePointer<Int32>
    let flatBytes: UnsafeMutablePointer<UInt8>
    let flatStart: UnsafeMutablePointer<Int32>
    let flatLength: UnsafeMutablePointer<Int32>
    let flatNocase: UnsafeMutablePointer<Bool>

    public static let lowerTable: [UInt8] = (0..<256).map { (b: Int) -> UInt8 in
        let v = UInt8(b)
        return (v >= 65 && v <= 90) ? v + 32 : v
    }
    let lower: UnsafeMutablePointer<UInt8>

    @inline(__always) static func hash(_ k: UInt32) -> UInt32 { k &* 0x9E37_79B1 }

    public init(patterns: [Pattern]) {
        precondition(patterns.allSatisfy { $0.bytes.count >= 4 }, "patterns must be at least 4 bytes")
        self.patterns = patterns
        maxLength = patterns.map(\.bytes.count).max() ?? 4
        let filterWords = (1 << Int(Self.filterBits)) / 64
        filter = .allocate(capacity: filterWords)
        filter.initialize(repeating: 0, count: filterWords)
        bigram = .allocate(capacity: 65536)
        bigram.initialize(repeating: 0, count: 65536)
        var groups: [UInt32: [Int32]] = [:]
        for (pi, p) in patterns.enumerated() {
            for v in Self.prefixVariants(p) {
                bigram[Int(v[0]) | Int(v[1]) << 8] = 1
                let k4 = UInt32(v[0]) | UInt32(v[1]) << 8 | UInt32(v[2]) << 16 | UInt32(v[3]) << 24
                let h = Self.hash(k4) >> (32 - Self.filterBits)
                filter[Int(h >> 6)] |= 1 << UInt64(h & 63)
                groups[k4, default: []].append(Int32(pi))
            }
        }
        var capBits = 4
        while (1 << capBits) < max(16, groups.count * 2) { capBits += 1 }
        let cap = 1 << capBits
        slotMask = cap - 1
        slotKeys = .allocate(capacity: cap); slotKeys.initialize(repeating: 0, count: cap)
        slotUsed = .allocate(capacity: cap); slotUsed.initialize(repeating: false, count: cap)
        slotStart = .allocate(capacity: cap); slotStart.initialize(repeating: 0, count: cap)
        slotCount = .allocate(capacity: cap); slotCount.initialize(repeating: 0, count: cap)
        var cand: [Int32] = []
        for (k, list) in groups.sorted(by: { $0.key < $1.key }) {
            var slot = Int(Self.hash(k) & UInt32(cap - 1))
            while slotUsed[slot] { slot = (slot + 1) & (cap - 1) }
            slotUsed[slot] = true
            slotKeys[slot] = k
            slotStart[slot] = Int32(cand.count)
            let unique = Array(Set(list)).sorted()
            slotCount[slot] = Int32(unique.count)
            cand.append(contentsOf: unique)
        }
        candidates = .allocate(capacity: max(cand.count, 1))
        candidates.initialize(from: cand, count: cand.count)
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
        filter.deallocate(); bigram.deallocate(); slotKeys.deallocate(); slotUsed.deallocate(); slotStart.deallocate(); slotCount.deallocate()
        candidates.deallocate(); flatBytes.deallocate(); flatStart.deallocate(); flatLength.deallocate()
        flatNocase.deallocate(); lower.deallocate()
    }

    /// All case variants of the first 4 bytes of a pattern (just one unless `nocase`).
    static func prefixVariants(_ p: Pattern) -> [[UInt8]] {
        var out: [[UInt8]] = [[]]
        for b in p.bytes.prefix(4) {
            var options: [UInt8] = [b]
            if p.nocase {
                if b >= 65 && b <= 90 { options.append(b + 32) } else if b >= 97 && b <= 122 { options.append(b - 32) }
            }
            out = out.flatMap { prefix in options.map { prefix + [$0] } }
        }
        return out
    }

    /// Scans `buffer`, calling `onMatch(pattern, position)` for every match that starts at
    /// `position` in `from..<upTo` and lies wholly within `buffer`, and for which
    /// `position + length > mustEndAfter`.
    @inline(__always)
    func scan(
        _ buffer: UnsafeRawBufferPointer, from: Int, upTo: Int, mustEndAfter: Int,
        _ onMatch: (Int, Int) -> Void
    ) {
        let n = buffer.count
        guard n >= 4, let base = buffer.baseAddress else { return }
        let last = min(upTo, n - 4 + 1)
        guard from < last else { return }
        let filter = self.filter
        let shift = 32 - Self.filterBits
        let bigram = self.bigram
        @inline(__always) func passes(_ k4: UInt32) -> Bool {
            let h = Self.hash(k4) &>> shift
            return filter[Int(h &>> 6)] & (1 &<< UInt64(h & 63)) != 0
        }
        var i = from
        // Eight positions per step: one 8-byte load and eight byte lookups in the 2-byte
        // prefix table; only a block with a hit goes on to the hashed 4-byte filter.
        let fastEnd = min(last - 7, n - 11)
        while i < fastEnd {
            let a = base.loadUnaligned(fromByteOffset: i, as: UInt64.self).littleEndian
            let b = UInt64(base.load(fromByteOffset: i &+ 8, as: UInt8.self))
            let any = bigram[Int(truncatingIfNeeded: a & 0xFFFF)]
                | bigram[Int(truncatingIfNeeded: (a &>> 8) & 0xFFFF)]
                | bigram[Int(truncatingIfNeeded: (a &>> 16) & 0xFFFF)]
                | bigram[Int(truncatingIfNeeded: (a &>> 24) & 0xFFFF)]
                | bigram[Int(truncatingIfNeeded: (a &>> 32) & 0xFFFF)]
                | bigram[Int(truncatingIfNeeded: (a &>> 40) & 0xFFFF)]
                | bigram[Int(truncatingIfNeeded: (a &>> 48) & 0xFFFF)]
                | bigram[Int(truncatingIfNeeded: (a &>> 56) | (b &<< 8))]
            if any != 0 {
                for j in i..<(i &+ 8) {
                    let k4 = base.loadUnaligned(fromByteOffset: j, as: UInt32.self).littleEndian
                    if bigram[Int(k4 & 0xFFFF)] != 0 && passes(k4) { probe(k4, base, j, n, mustEndAfter, onMatch) }
                }
            }
            i &+= 8
        }
        while i < last {
            let k4 = base.loadUnaligned(fromByteOffset: i, as: UInt32.self).littleEndian
            if passes(k4) { probe(k4, base, i, n, mustEndAfter, onMatch) }
            i &+= 1
        }
    }

    @inline(never)
    func probe(_ k4: UInt32, _ base: UnsafeRawPointer, _ i: Int, _ n: Int, _ mustEndAfter: Int, _ onMatch: (Int, Int) -> Void) {
        var slot = Int(Self.hash(k4)) & slotMask
        while slotUsed[slot] {
            if slotKeys[slot] == k4 {
                let s = Int(slotStart[slot])
                for c in s..<(s + Int(slotCount[slot])) {
                    let pi = Int(candidates[c])
                    let len = Int(flatLength[pi])
                    if i + len <= n && i + len > mustEndAfter && verify(pi, base + i, len) {
                        onMatch(pi, i)
                    }
                }
                return
            }
            slot = (slot &+ 1) & slotMask
        }
    }

    @inline(__always)
    func verify(_ pi: Int, _ p: UnsafeRawPointer, _ len: Int) -> Bool {
        let start = Int(flatStart[pi])
        if flatNocase[pi] {
            for j in 4..<len where lower[Int(p.load(fromByteOffset: j, as: UInt8.self))] != flatBytes[start + j] {
                return false
            }
            return true
        }
        return memcmp(p + 4, flatBytes + start + 4, len - 4) == 0
    }

    /// Per-stream state: absolute position and the carry that lets matches cross chunks.
    public struct Stream: Sendable {
        public internal(set) var position: Int64 = 0
        var carry: [UInt8] = []
        public init() {}
    }

    /// Feed the next chunk of a stream. `onMatch(patternIndex, absoluteOffset)`.
    public func feed(_ stream: inout Stream, _ chunk: UnsafeRawBufferPointer, _ onMatch: (Int, Int64) -> Void) {
        let keep = maxLength - 1
        let n = chunk.count
        if n == 0 { return }
        // 1. Matches starting in the carry and ending in this chunk.
        if !stream.carry.isEmpty {
            let carryCount = stream.carry.count
            var joint = stream.carry
            if let b = chunk.baseAddress { joint.append(contentsOf: UnsafeRawBufferPointer(start: b, count: min(n, keep))) }
            let basePos = stream.position - Int64(carryCount)
            joint.withUnsafeBytes { jb in
                scan(jb, from: 0, upTo: carryCount, mustEndAfter: carryCount) { pi, at in
                    onMatch(pi, basePos + Int64(at))
                }
            }
        }
        // 2. Matches wholly inside this chunk.
        let chunkPos = stream.position
        scan(chunk, from: 0, upTo: n, mustEndAfter: 0) { pi, at in onMatch(pi, chunkPos + Int64(at)) }
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
