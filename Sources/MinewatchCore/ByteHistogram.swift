#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Counts of each byte value, and the Shannon entropy they give: how random bytes look (request
/// bodies, an executable's overlay, a process's memory).
public struct ByteHistogram: Sendable {
    public private(set) var counts = [Int](repeating: 0, count: 256)
    public private(set) var total = 0

    public init() {}

    public init<S: Sequence>(_ bytes: S) where S.Element == UInt8 { add(bytes) }

    public mutating func add<S: Sequence>(_ bytes: S) where S.Element == UInt8 {
        // Contiguous bytes (arrays, slices, buffers) are counted through pointers: the generic
        // loop, unspecialised across modules, cost tens of nanoseconds a byte.
        if bytes.withContiguousStorageIfAvailable({ add(UnsafeRawBufferPointer($0)) }) != nil { return }
        for b in bytes {
            counts[Int(b)] += 1
            total += 1
        }
    }

    public mutating func add(_ bytes: UnsafeRawBufferPointer) {
        counts.withUnsafeMutableBufferPointer { c in
            for b in bytes { c[Int(b)] += 1 }
        }
        total += bytes.count
    }

    /// Bits of entropy a byte (0 for no bytes, 8 for perfectly even counts).
    public var entropy: Double {
        guard total > 0 else { return 0 }
        let n = Double(total)
        var h = 0.0
        for c in counts where c > 0 {
            let p = Double(c) / n
            h -= p * log2(p)
        }
        return h
    }
}
