#if canImport(Glibc)
import Glibc
#endif

/// Random-access bytes: a file, a part of a file, or memory (the test double).
public protocol ByteSource: AnyObject {
    var size: Int64 { get }
    var name: String { get }
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws(MinewatchError) -> Int
}

/// A sequential stream of bytes. `read` returns 0 only at the end.
public protocol ByteStream: AnyObject {
    func read(into buffer: UnsafeMutableRawBufferPointer) throws(MinewatchError) -> Int
}

/// A stream that can move forward without reading (a file section): tar indexing uses it
/// to step over entry contents.
public protocol SkippableStream: ByteStream {
    /// Skips `count` bytes; throws if the stream ends first.
    func skip(_ count: Int64) throws(MinewatchError)
}

extension ByteStream {
    /// Reads until `buffer` is full or the stream ends; returns the bytes read.
    public func readFully(into buffer: UnsafeMutableRawBufferPointer) throws(MinewatchError) -> Int {
        var total = 0
        while total < buffer.count {
            let n = try read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[total...]))
            if n == 0 { break }
            total += n
        }
        return total
    }

    /// Reads the whole stream into memory, refusing more than `limit` bytes.
    public func readAll(limit: Int, what: String) throws(MinewatchError) -> [UInt8] {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let n = try buf.withMutableBytes { (b) throws(MinewatchError) -> Int in try read(into: b) }
            if n == 0 { break }
            out.append(contentsOf: buf[0..<n])
            if out.count > limit {
                throw MinewatchError(.limit, operation: "read", subject: what, message: "larger than \(limit) bytes")
            }
        }
        return out
    }
}

/// A stream that starts with some bytes already read (used after sniffing a header).
public final class PrefixedStream: ByteStream {
    var prefix: [UInt8]
    var prefixPos = 0
    let inner: ByteStream
    public init(prefix: [UInt8], inner: ByteStream) {
        self.prefix = prefix
        self.inner = inner
    }
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(MinewatchError) -> Int {
        if prefixPos < prefix.count {
            let n = min(buffer.count, prefix.count - prefixPos)
            prefix.withUnsafeBytes { src in
                buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[prefixPos..<(prefixPos + n)]))
            }
            prefixPos += n
            return n
        }
        return try inner.read(into: buffer)
    }
}

/// A stream with nothing in it.
public final class EmptyStream: ByteStream {
    public init() {}
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(MinewatchError) -> Int { 0 }
}

/// Retries a system call while it fails with EINTR.
@inlinable
public func retryingEINTR<T: BinaryInteger>(_ body: () -> T) -> T {
    while true {
        let r = body()
        if r == -1 && errno == EINTR { continue }
        return r
    }
}
