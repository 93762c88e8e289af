import CShims

/// Raw LZMA1 blocks (UPX method 14) decoded by the system's liblzma (loaded at run time, like
/// zstd). UPX stores two bytes of its own before the raw stream, `((lc+lp)<<3)|pb` and
/// `(lp<<4)|lc`, and neither an end marker nor the dictionary size: the uncompressed size is known
/// from the block header. liblzma's `.lzma` decoder is given a 13-byte header made from those
/// (properties, a dictionary as large as the block, the size), then the raw stream.
public enum UPXLZMA {
    public enum Failure: Error, Equatable, CustomStringConvertible {
        case unavailable
        case badProperties(UInt8, UInt8)
        case decoder(Int32)
        case short(produced: Int)

        public var description: String {
            switch self {
            case .unavailable: "LZMA block not decoded: liblzma.so.5 is not installed"
            case .badProperties(let a, let b): "bad LZMA properties \(String(a, radix: 16)) \(String(b, radix: 16))"
            case .decoder(let rc): "liblzma rejected the stream (status \(rc))"
            case .short(let n): "LZMA stream ends after \(n) bytes, short of its declared size"
            }
        }
    }

    /// liblzma may use at most this much memory for one block's dictionary.
    public static let memoryLimit: UInt64 = 512 << 20

    public static func decode(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws(Failure) {
        guard input.count >= 3 else { throw .short(produced: 0) }
        let p0 = input[0], p1 = input[1]
        let pb = Int(p0 & 7), lc = Int(p1 & 15), lp = Int(p1 >> 4)
        // liblzma's LZMA1 decoder takes lc + lp <= 4; UPX's own check is (byte0 >> 3) == lc + lp.
        guard pb <= 4, lc + lp <= 4, Int(p0 >> 3) == lc + lp else { throw .badProperties(p0, p1) }
        guard mw_lzma_available() != 0 else { throw .unavailable }
        guard let d = mw_lzma_new(memoryLimit) else { throw .decoder(-1) }
        defer { mw_lzma_free(d) }
        var dict: UInt32 = 4096
        while Int(dict) < output.count && dict < 1 << 30 { dict <<= 1 }
        var header = [UInt8(truncatingIfNeeded: (pb * 5 + lp) * 9 + lc)]
        withUnsafeBytes(of: dict.littleEndian) { header += $0 }
        withUnsafeBytes(of: UInt64(output.count).littleEndian) { header += $0 }
        var produced = 0
        func step(_ bytes: UnsafeRawBufferPointer) -> Int32 {
            var offset = 0
            var rc: Int32 = 0
            while offset < bytes.count {
                var consumed = 0, made = 0
                let out = output.baseAddress.map { $0.assumingMemoryBound(to: UInt8.self) + produced }
                rc = mw_lzma_step(d, bytes.baseAddress.map { $0.assumingMemoryBound(to: UInt8.self) + offset }, bytes.count - offset,
                                  &consumed, out, output.count - produced, &made)
                offset += consumed
                produced += made
                if rc != 0 { break }
                if consumed == 0 && made == 0 { break }
            }
            return rc
        }
        var rc = header.withUnsafeBytes { step($0) }
        if rc == 0 { rc = step(UnsafeRawBufferPointer(rebasing: input[2...])) }
        // With the size in the header liblzma ends with LZMA_STREAM_END once it is produced.
        if rc != 0 && rc != 1 { throw .decoder(rc) }
        guard produced == output.count else { throw .short(produced: produced) }
    }
}
