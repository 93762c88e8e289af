#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// An IPv4 or IPv6 address as two words (IPv4 in the low word, flagged), hashable without allocation.
public struct IPAddress: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var hi: UInt64
    public var lo: UInt64
    public var isV4: Bool

    public init(v4 bytes: UnsafeRawBufferPointer, at o: Int) {
        hi = 0
        lo = UInt64(bytes[o]) << 24 | UInt64(bytes[o + 1]) << 16 | UInt64(bytes[o + 2]) << 8 | UInt64(bytes[o + 3])
        isV4 = true
    }

    public init(v6 bytes: UnsafeRawBufferPointer, at o: Int) {
        var h: UInt64 = 0, l: UInt64 = 0
        for i in 0..<8 { h = h << 8 | UInt64(bytes[o + i]) }
        for i in 8..<16 { l = l << 8 | UInt64(bytes[o + i]) }
        if h == 0 && l >> 32 == 0xFFFF {  // v4-mapped
            hi = 0; lo = l & 0xFFFF_FFFF; isV4 = true
        } else {
            hi = h; lo = l; isV4 = false
        }
    }

    public init(hi: UInt64, lo: UInt64, isV4: Bool) {
        self.hi = hi
        self.lo = lo
        self.isV4 = isV4
    }

    /// 4 (IPv4) or 16 (IPv6) bytes in network order; nil for any other count.
    public init?(bytes: [UInt8]) {
        switch bytes.count {
        case 4: self = bytes.withUnsafeBytes { IPAddress(v4: $0, at: 0) }
        case 16: self = bytes.withUnsafeBytes { IPAddress(v6: $0, at: 0) }
        default: return nil
        }
    }

    /// Parses dotted IPv4 or full/compressed IPv6 text (inet_pton's grammar, nothing looser).
    public init?(_ text: String) {
        var a4 = in_addr()
        if inet_pton(AF_INET, text, &a4) == 1 {
            let bytes = withUnsafeBytes(of: &a4) { Array($0) }
            self = bytes.withUnsafeBytes { IPAddress(v4: $0, at: 0) }
            return
        }
        var a = in6_addr()
        guard inet_pton(AF_INET6, text, &a) == 1 else { return nil }
        let bytes = withUnsafeBytes(of: &a) { Array($0) }
        self = bytes.withUnsafeBytes { IPAddress(v6: $0, at: 0) }
    }

    /// The 16-byte form (IPv4 mapped into ::ffff:0:0/96) as two words, for prefix matching.
    public var wide: (hi: UInt64, lo: UInt64) { isV4 ? (0, 0x0000_FFFF_0000_0000 | lo) : (hi, lo) }

    /// Dotted IPv4, or IPv6 in its canonical compressed form (RFC 5952, as inet_ntop writes it).
    public var description: String {
        if isV4 { return "\(lo >> 24 & 255).\(lo >> 16 & 255).\(lo >> 8 & 255).\(lo & 255)" }
        var bytes = [UInt8](repeating: 0, count: 16)
        for i in 0..<8 { bytes[i] = UInt8(truncatingIfNeeded: hi >> (56 - 8 * UInt64(i))) }
        for i in 0..<8 { bytes[8 + i] = UInt8(truncatingIfNeeded: lo >> (56 - 8 * UInt64(i))) }
        var out = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let ok = bytes.withUnsafeBytes { b in inet_ntop(AF_INET6, b.baseAddress, &out, socklen_t(out.count)) != nil }
        return ok ? String(decoding: out.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : "?"
    }

    /// 127.0.0.0/8 or ::1.
    public var isLoopback: Bool { isV4 ? lo >> 24 == 127 : hi == 0 && lo == 1 }

    public static func < (a: IPAddress, b: IPAddress) -> Bool { (a.isV4 ? 0 : 1, a.hi, a.lo) < (b.isV4 ? 0 : 1, b.hi, b.lo) }
}
