import CShims
import Foundation
import MinewatchCore

public final class FileByteSource: ByteSource {
    public let handle: FileHandleFD
    public let size: Int64
    public var name: String { handle.path }

    public init(handle: FileHandleFD) throws(MinewatchError) {
        self.handle = handle
        self.size = Int64(try handle.stat().st_size)
    }

    public convenience init(path: String) throws(MinewatchError) {
        try self.init(handle: try FileHandleFD.open(path))
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws(MinewatchError) -> Int {
        try handle.pread(into: buffer, at: offset)
    }
}

/// In-memory bytes: the test double for `ByteSource`.
public final class MemoryByteSource: ByteSource {
    public let bytes: [UInt8]
    public let name: String
    public var size: Int64 { Int64(bytes.count) }
    public init(_ bytes: [UInt8], name: String = "(memory)") {
        self.bytes = bytes
        self.name = name
    }
    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws(MinewatchError) -> Int {
        guard offset >= 0, offset < size else { return 0 }
        let n = min(buffer.count, bytes.count - Int(offset))
        bytes.withUnsafeBytes { src in
            buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[Int(offset)..<(Int(offset) + n)]))
        }
        return n
    }
}

/// A window `[offset, offset+length)` of a `ByteSource`, read sequentially.
public final class SectionStream: SkippableStream {
    let source: ByteSource
    var position: Int64
    let end: Int64
    public init(source: ByteSource, offset: Int64, length: Int64) {
        self.source = source
        self.position = offset
        self.end = offset + length
    }
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(MinewatchError) -> Int {
        let want = Int(min(Int64(buffer.count), end - position))
        if want <= 0 { return 0 }
        let n = try source.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want]), at: position)
        if n == 0 {
            throw MinewatchError(.format, operation: "read", subject: source.name, offset: position,
                                 message: "file ends \(end - position) bytes early (truncated)")
        }
        position += Int64(n)
        return n
    }

    public func skip(_ count: Int64) throws(MinewatchError) {
        if count > end - position || position + count > source.size {
            throw MinewatchError(.format, operation: "skip", subject: source.name, offset: position,
                                 message: "entry of \(count) bytes runs past the end of the file (truncated or declared size too large)")
        }
        position += count
    }
}

/// Counts bytes that pass through (for progress and ratio limits).
public final class CountingStream: ByteStream {
    let inner: ByteStream
    public private(set) var count: Int64 = 0
    public init(_ inner: ByteStream) { self.inner = inner }
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(MinewatchError) -> Int {
        let n = try inner.read(into: buffer)
        count += Int64(n)
        return n
    }
}

/// Limits for untrusted compressed data.
public struct DecompressionLimits: Sendable {
    /// Most bytes one layer may expand to.
    public var maxOutput: Int64
    /// Largest output/input ratio allowed once the output exceeds `ratioGrace`.
    public var maxRatio: Int64
    public var ratioGrace: Int64
    public init(maxOutput: Int64 = 32 << 30, maxRatio: Int64 = 250, ratioGrace: Int64 = 64 << 20) {
        self.maxOutput = maxOutput
        self.maxRatio = maxRatio
        self.ratioGrace = ratioGrace
    }
}

public enum Compression: String, Sendable {
    case none, gzip, zstd

    public static func detect(_ head: [UInt8]) -> Compression {
        if head.count >= 2, head[0] == 0x1f, head[1] == 0x8b { return .gzip }
        if head.count >= 4, head[0] == 0x28, head[1] == 0xb5, head[2] == 0x2f, head[3] == 0xfd { return .zstd }
        return .none
    }
}

/// Which library inflates gzip layers. ISA-L's igzip (libisal.so.2, loaded at run time) inflates
/// about twice as fast as zlib on this project's bench corpus; zlib is the fallback when ISA-L is
/// missing. `MINEWATCH_INFLATE=zlib` (or `isa-l`) forces one, for benchmarks and the fuzz target
/// that compares the two.
public enum Inflater: String, Sendable, CaseIterable {
    case isal = "isa-l"
    case zlib

    public var isAvailable: Bool {
        switch self {
        case .isal: mw_isal_available() != 0
        case .zlib: true
        }
    }

    /// ISA-L when it loads, unless `MINEWATCH_INFLATE` names another.
    public static let preferred: Inflater = {
        if let name = ProcessInfo.processInfo.environment["MINEWATCH_INFLATE"], let forced = Inflater(rawValue: name),
           forced.isAvailable {
            return forced
        }
        return Inflater.isal.isAvailable ? .isal : .zlib
    }()

    var code: Int32 {
        switch self {
        case .isal: Int32(MW_INFLATE_ISAL)
        case .zlib: Int32(MW_INFLATE_ZLIB)
        }
    }
}

/// Decompresses gzip (all members) or zstd with the system libraries, enforcing limits.
public final class DecompressStream: ByteStream {
    enum Engine {
        case gzip(OpaquePointer)
        case zstd(OpaquePointer)
    }

    let input: CountingStream
    let engine: Engine
    let limits: DecompressionLimits
    let name: String
    var inBuf: [UInt8]
    var inStart = 0
    var inEnd = 0
    var inputEOF = false
    var finished = false
    public private(set) var produced: Int64 = 0

    public init(_ compression: Compression, input: ByteStream, limits: DecompressionLimits, name: String,
                inflater: Inflater = .preferred) throws(MinewatchError) {
        self.input = CountingStream(input)
        self.limits = limits
        self.name = name
        self.inBuf = [UInt8](repeating: 0, count: 128 * 1024)
        switch compression {
        case .gzip:
            guard let p = mw_inflate_new(inflater.code) else {
                throw MinewatchError(.io, operation: "start gzip", subject: name,
                                     message: inflater.isAvailable ? "out of memory" : "\(inflater.rawValue) is not installed")
            }
            engine = .gzip(p)
        case .zstd:
            guard mw_zstd_available() != 0 else {
                throw MinewatchError(.unsupported, operation: "decompress", subject: name,
                                     message: "zstd layer not supported: libzstd.so.1 is not installed")
            }
            guard let p = mw_zstd_new() else {
                throw MinewatchError(.io, operation: "start zstd", subject: name, message: "out of memory")
            }
            engine = .zstd(p)
        case .none:
            throw MinewatchError(.invalidArgument, operation: "decompress", subject: name, message: "data is not compressed")
        }
    }

    deinit {
        switch engine {
        case .gzip(let p): mw_inflate_free(p)
        case .zstd(let p): mw_zstd_free(p)
        }
    }

    func refill() throws(MinewatchError) {
        if inStart < inEnd || inputEOF { return }
        let n = try inBuf.withMutableBytes { (b) throws(MinewatchError) -> Int in try input.read(into: b) }
        inStart = 0
        inEnd = n
        if n == 0 { inputEOF = true }
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(MinewatchError) -> Int {
        guard let outBase = buffer.baseAddress, buffer.count > 0 else { return 0 }
        while !finished {
            try refill()
            if inStart == inEnd && inputEOF {
                throw MinewatchError(.format, operation: "decompress", subject: name, offset: input.count,
                                     message: "compressed data ends early (truncated)")
            }
            var consumed = 0
            var made = 0
            var rc: Int32 = 0
            inBuf.withUnsafeBytes { ib in
                let inPtr = ib.baseAddress.map { $0.assumingMemoryBound(to: UInt8.self) + inStart }
                let outPtr = outBase.assumingMemoryBound(to: UInt8.self)
                switch engine {
                case .gzip(let p):
                    rc = mw_inflate_step(p, inPtr, inEnd - inStart, &consumed, outPtr, buffer.count, &made)
                case .zstd(let p):
                    rc = mw_zstd_step(p, inPtr, inEnd - inStart, &consumed, outPtr, buffer.count, &made)
                }
            }
            inStart += consumed
            if consumed == 0 && made == 0 && inStart < inEnd && rc != 1 && (rc >= 0 || rc == -5) {
                // Input there, room for output, and the decoder took none of it: a zlib stream
                // asking for a preset dictionary (Z_NEED_DICT) or one that cannot go on. Never
                // loop on it.
                throw MinewatchError(.format, operation: "decompress", subject: name, offset: input.count,
                                     message: rc == 2 ? "compressed data needs a preset dictionary" : "compressed data makes no progress")
            }
            switch engine {
            case .gzip(let p):
                if rc == 1 {  // Z_STREAM_END: another gzip member may follow.
                    try refill()
                    if inStart < inEnd && inBuf[inStart] == 0x1f {
                        _ = mw_inflate_reset(p)
                    } else {
                        finished = true  // trailing zero padding or nothing
                    }
                } else if rc < 0 && rc != -5 {  // Z_BUF_ERROR (-5) only means no progress possible now
                    throw MinewatchError(.format, operation: "decompress gzip", subject: name, offset: input.count,
                                         message: String(cString: mw_inflate_message(p)))
                }
            case .zstd(let p):
                if rc < 0 {
                    throw MinewatchError(.format, operation: "decompress zstd", subject: name, offset: input.count,
                                         message: String(cString: mw_zstd_error(p)))
                }
                if rc == 0 {
                    try refill()
                    if inStart == inEnd && inputEOF { finished = true }
                }
            }
            if made > 0 {
                produced += Int64(made)
                try checkLimits()
                return made
            }
        }
        return 0
    }

    func checkLimits() throws(MinewatchError) {
        if produced > limits.maxOutput {
            throw MinewatchError(.limit, operation: "decompress", subject: name,
                                 message: "expands beyond \(limits.maxOutput) bytes (limit)")
        }
        if produced > limits.ratioGrace && produced > max(input.count, 1) * limits.maxRatio {
            throw MinewatchError(.limit, operation: "decompress", subject: name,
                                 message: "expansion ratio above \(limits.maxRatio):1 (decompression bomb?)")
        }
    }
}

/// Wraps `stream`, sniffing its first bytes and decompressing when it is gzip or zstd.
public func autoDecompress(_ stream: ByteStream, limits: DecompressionLimits, name: String) throws(MinewatchError) -> (ByteStream, Compression) {
    var head = [UInt8](repeating: 0, count: 4)
    let n = try head.withMutableBytes { (b) throws(MinewatchError) -> Int in try stream.readFully(into: b) }
    head = Array(head[0..<n])
    let kind = Compression.detect(head)
    let prefixed = PrefixedStream(prefix: head, inner: stream)
    if kind == .none { return (prefixed, .none) }
    return (try DecompressStream(kind, input: prefixed, limits: limits, name: name), kind)
}
