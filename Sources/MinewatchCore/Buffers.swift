extension Array where Element == UInt8 {
    /// `withUnsafeMutableBytes` for a body with typed throws (the standard one only rethrows
    /// `any Error`, which would erase `MinewatchError`).
    @inlinable
    public mutating func withMutableBytes<R>(
        _ body: (UnsafeMutableRawBufferPointer) throws(MinewatchError) -> R
    ) throws(MinewatchError) -> R {
        let r: Result<R, MinewatchError> = withUnsafeMutableBytes { b in
            do throws(MinewatchError) { return .success(try body(b)) } catch { return .failure(error) }
        }
        return try r.get()
    }
}
