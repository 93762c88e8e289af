/// The NRV2B, NRV2D and NRV2E decompressors (UCL, by Markus Oberhumer) with the little-endian
/// 32-bit bit buffer UPX uses for ELF (methods 2, 5 and 8). Written from the format description
/// (bits are taken most significant first from little-endian words that are interleaved with
/// literal bytes); every read and every copy is bounds-checked, and a block decodes only when it
/// ends with the end code having consumed exactly its input and produced exactly its size.
public enum NRV {
    public enum Variant: Sendable { case b, d, e }

    public enum Failure: Error, Equatable, CustomStringConvertible {
        case inputOverrun(at: Int)
        case outputOverrun
        case lookbehindOverrun(offset: Int, at: Int)
        case inputNotConsumed(left: Int)
        case outputShort(produced: Int)

        public var description: String {
            switch self {
            case .inputOverrun(let at): "compressed data ends early (at \(at))"
            case .outputOverrun: "decodes to more than its declared size"
            case .lookbehindOverrun(let off, let at): "match offset \(off) reaches before the start (output at \(at))"
            case .inputNotConsumed(let left): "\(left) compressed bytes left after the end code"
            case .outputShort(let n): "ends after \(n) bytes, short of its declared size"
            }
        }
    }

    struct Bits {
        let src: UnsafeRawBufferPointer
        var pos = 0
        var word: UInt32 = 0
        var left = 0

        @inline(__always) mutating func bit() throws(Failure) -> UInt32 {
            if left == 0 {
                guard pos + 4 <= src.count else { throw .inputOverrun(at: pos) }
                word = UInt32(src[pos]) | UInt32(src[pos + 1]) << 8 | UInt32(src[pos + 2]) << 16 | UInt32(src[pos + 3]) << 24
                pos += 4
                left = 32
            }
            left -= 1
            return (word >> UInt32(left)) & 1
        }

        @inline(__always) mutating func byte() throws(Failure) -> UInt32 {
            guard pos < src.count else { throw .inputOverrun(at: pos) }
            defer { pos += 1 }
            return UInt32(src[pos])
        }
    }

    /// Largest offset code before the final byte (0xFFFFFF + 3); the end code is this and 0xFF.
    static let maxOffsetCode: UInt32 = 0x0100_0002

    /// Decodes `input` into `output` (whose size is the block's declared uncompressed size).
    public static func decode(_ variant: Variant, _ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws(Failure) {
        var b = Bits(src: input)
        let limit = output.count
        var olen = 0
        var lastOff: UInt32 = 1
        while true {
            while try b.bit() == 1 {
                guard olen < limit else { throw .outputOverrun }
                output[olen] = UInt8(truncatingIfNeeded: try b.byte())
                olen += 1
            }
            var off: UInt32 = 1
            var len: UInt32 = 0
            switch variant {
            case .b:
                repeat {
                    off = off &* 2 &+ (try b.bit())
                    guard off <= maxOffsetCode else { throw .lookbehindOverrun(offset: Int(off), at: olen) }
                } while try b.bit() == 0
            case .d, .e:
                while true {
                    off = off &* 2 &+ (try b.bit())
                    guard off <= maxOffsetCode else { throw .lookbehindOverrun(offset: Int(off), at: olen) }
                    if try b.bit() == 1 { break }
                    off = (off &- 1) &* 2 &+ (try b.bit())
                    guard off <= maxOffsetCode else { throw .lookbehindOverrun(offset: Int(off), at: olen) }
                }
            }
            if off == 2 {
                off = lastOff
                if variant != .b { len = try b.bit() }
            } else {
                guard off >= 3 else { throw .lookbehindOverrun(offset: Int(off), at: olen) }
                let v = UInt64(off - 3) * 256 + UInt64(try b.byte())
                if v == 0xFFFF_FFFF { break }
                if variant == .b {
                    off = UInt32(v) + 1
                } else {
                    len = UInt32(v & 1) ^ 1
                    off = UInt32(v >> 1) + 1
                }
                lastOff = off
            }
            switch variant {
            case .b:
                len = try b.bit()
                len = len * 2 + (try b.bit())
                if len == 0 {
                    len = 1
                    repeat {
                        len = len &* 2 &+ (try b.bit())
                        guard len <= UInt32(limit) else { throw .outputOverrun }
                    } while try b.bit() == 0
                    len += 2
                }
                if off > 0xd00 { len += 1 }
            case .d:
                len = len * 2 + (try b.bit())
                if len == 0 {
                    len = 1
                    repeat {
                        len = len &* 2 &+ (try b.bit())
                        guard len <= UInt32(limit) else { throw .outputOverrun }
                    } while try b.bit() == 0
                    len += 2
                }
                if off > 0x500 { len += 1 }
            case .e:
                if len != 0 {
                    len = 1 + (try b.bit())
                } else if try b.bit() == 1 {
                    len = 3 + (try b.bit())
                } else {
                    len = 1
                    repeat {
                        len = len &* 2 &+ (try b.bit())
                        guard len <= UInt32(limit) else { throw .outputOverrun }
                    } while try b.bit() == 0
                    len += 3
                }
                if off > 0x500 { len += 1 }
            }
            let count = Int(len) + 1
            let distance = Int(off)
            guard distance >= 1, distance <= olen else { throw .lookbehindOverrun(offset: distance, at: olen) }
            guard count <= limit - olen else { throw .outputOverrun }
            // Byte by byte: a match may overlap what it produces (a run).
            var from = olen - distance
            for _ in 0..<count {
                output[olen] = output[from]
                olen += 1
                from += 1
            }
        }
        guard b.pos == input.count else { throw .inputNotConsumed(left: input.count - b.pos) }
        guard olen == limit else { throw .outputShort(produced: olen) }
    }
}
