/// A multi-pattern literal matcher that works on a stream of chunks.
///
/// Every pattern is at least 4 bytes. Scanning checks each position against a 64 Ki-bit
/// table of the 2-byte prefixes of all patterns (8 KiB, stays in L1), then against an
/// open-addressing table keyed by the first 4 bytes, and only then compares whole
/// patterns. Case-insensitive patterns enter every case variant of their prefix into both
/// tables, so scanning never folds case. Matches that cross a chunk boundary are found
/// through a small carry of the last `maxLength - 1` bytes; each match is reported once.
public struct PatternMatcher: Sendable {
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
    let prefix2: [UInt64]           // 1024 words = 65536 bits
    let slotKeys: [UInt32]
    let slotUsed: [Bool]
    let slotStart: [Int32]
    let slotCount: [Int32]
    let candidates: [Int32]         // pattern indexes grouped by 4-byte prefix
    let hashShift: UInt32
    let flatBytes: [UInt8]          // all patterns back to back (lowercased when nocase)
    let flatStart: [Int32]
    let flatLength: [Int32]
    let flatNocase: [Bool]

    static let lowerTable: [UInt8] = (0..<256).map { (b: Int) -> UInt8 in
        let v = UInt8(b)
        return (v >= 65 && v <= 90) ? v + 32 : v
    }

    public init(patterns: [Pattern]) {
        precondition(patterns.allSatisfy { $0.bytes.count >= 4 }, "patterns must be at least 4 bytes")
        self.patterns = patterns
        maxLength = patterns.map(\.bytes.count).max() ?? 4
        var bits = [UInt64](repeating: 0, count: 1024)
        var groups: [UInt32: [Int32]] = [:]
        for (pi, p) in patterns.enumerated() {
            for variant in Self.prefixVariants(p) {
                let k2 = Int(variant[0]) | Int(variant[1]) << 8
                bits[k2 >> 6] |= 1 << UInt64(k2 & 63)
                let k4 = UInt32(variant[0]) | UInt32(variant[1]) << 8 | UInt32(variant[2]) << 16 | UInt32(variant[3]) << 24
                groups[k4, default: []].append(Int32(pi))
            }
        }
        prefix2 = bits
        var capBits: UInt32 = 4
        while (1 << capBits) < max(16, groups.count * 2) { capBits += 1 }
        let cap = 1 << Int(capBits)
        hashShift = 32 - capBits
        var keys = [UInt32](repeating: 0, count: cap)
        var used = [Bool](repeating: false, count: cap)
        var start = [Int32](repeating: 0, count: cap)
        var count = [Int32](repeating: 0, count: cap)
        var cand: [Int32] = []
        for (k, list) in groups.sorted(by: { $0.key < $1.key }) {
            var slot = Int((k &* 2654435761) >> (32 - capBits))
            while used[slot] { slot = (slot + 1) & (cap - 1) }
            used[slot] = true
            keys[slot] = k
            start[slot] = Int32(cand.count)
            let unique = Array(Set(list)).sorted()
            count[slot] = Int32(unique.count)
            cand.append(contentsOf: unique)
        }
        slotKeys = keys
        slotUsed = used
        slotStart = start
        slotCount = count
        candidates = cand
        var flat: [UInt8] = []
        var fs: [Int32] = []
        var fl: [Int32] = []
        for p in patterns {
            fs.append(Int32(flat.count))
            fl.append(Int32(p.bytes.count))
            flat.append(contentsOf: p.nocase ? p.bytes.map { Self.lowerTable[Int($0)] } : p.bytes)
        }
        flatBytes = flat
        flatStart = fs
        flatLength = fl
        flatNocase = patterns.map(\.nocase)
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
        let mask = slotKeys.count - 1
        let shift = hashShift
        prefix2.withUnsafeBufferPointer { bits in
            let bitsP = bits.baseAddress.unsafelyUnwrapped
            var i = from
            while i < last {
                let k2 = Int(base.loadUnaligned(fromByteOffset: i, as: UInt16.self).littleEndian)
                if bitsP[k2 &>> 6] & (1 &<< UInt64(k2 & 63)) != 0 {
                    let k4 = base.loadUnaligned(fromByteOffset: i, as: UInt32.self).littleEndian
                    var slot = Int((k4 &* 2654435761) &>> shift)
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
                            break
                        }
                        slot = (slot &+ 1) & mask
                    }
                }
                i &+= 1
            }
        }
    }

    @inline(__always)
    func verify(_ pi: Int, _ p: UnsafeRawPointer, _ len: Int) -> Bool {
        let start = Int(flatStart[pi])
        return flatBytes.withUnsafeBufferPointer { flat in
            if flatNocase[pi] {
                for j in 4..<len where Self.lowerTable[Int(p.load(fromByteOffset: j, as: UInt8.self))] != flat[start + j] {
                    return false
                }
                return true
            }
            return memcmp(p + 4, flat.baseAddress.unsafelyUnwrapped + start + 4, len - 4) == 0
        }
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
