import CShims

/// Substring tests on bytes (memmem): what a dissector asks of every request and response it
/// follows. `String.contains(String)` goes through Foundation's Unicode-aware search, which cost
/// more than the rest of the parsing; protocol text is ASCII and compared byte for byte.
public enum ByteSearch {
    public static func contains(_ haystack: UnsafeRawBufferPointer, _ needle: UnsafeRawBufferPointer) -> Bool {
        guard needle.count > 0 else { return true }
        guard haystack.count >= needle.count, let h = haystack.baseAddress, let n = needle.baseAddress else { return false }
        return mw_memmem(h, haystack.count, n, needle.count) != nil
    }

    public static func contains<C: Collection>(_ haystack: C, _ needle: String) -> Bool where C.Element == UInt8 {
        var needle = needle
        return needle.withUTF8 { n in
            if let found = haystack.withContiguousStorageIfAvailable({ contains(UnsafeRawBufferPointer($0), UnsafeRawBufferPointer(n)) }) {
                return found
            }
            return Array(haystack).withUnsafeBytes { contains($0, UnsafeRawBufferPointer(n)) }
        }
    }
}

extension String {
    /// True when `needle`'s UTF-8 bytes occur in this string's (no Unicode equivalence).
    public func containsBytes(_ needle: String) -> Bool {
        var me = self
        return me.withUTF8 { ByteSearch.contains(UnsafeRawBufferPointer($0), needle) }
    }
}
