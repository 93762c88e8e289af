import MinewatchCore

public struct TarEntry: Sendable, Hashable {
    public enum Kind: Sendable, Hashable {
        case regular, hardlink, symlink, directory, charDevice, blockDevice, fifo
        case other(UInt8)

        /// Regular files (and unknown types, read as files) carry content; links, devices,
        /// FIFOs and folders carry none whatever their size field says.
        public var carriesData: Bool {
            switch self {
            case .regular, .other: true
            default: false
            }
        }
    }
    /// Normalised absolute path ("/usr/bin/x"); `..` components are kept so they can be reported.
    public var path: String
    public var linkTarget: String
    public var size: Int64
    public var mode: UInt32
    public var kind: Kind
    /// Offset of the entry's header in the (decompressed) tar stream.
    public var headerOffset: Int64
    /// Offset of the entry's content in the (decompressed) tar stream.
    public var dataOffset: Int64

    /// True when the raw name climbs above the archive root.
    public var escapesRoot: Bool { path.split(separator: "/").contains("..") }
}

/// A streaming tar reader (ustar, GNU long names, PAX, base-256 sizes). It never seeks and
/// never holds more than one header block plus bounded long-name/PAX records in memory.
public final class TarReader {
    public static let maxMetaRecord = 1 << 20
    let stream: ByteStream
    let name: String
    public private(set) var position: Int64 = 0
    var remaining: Int64 = 0       // content bytes of the current entry not yet read
    var padding: Int64 = 0         // padding after the current entry's content
    var finished = false
    var header = [UInt8](repeating: 0, count: 512)
    var skipBuf = [UInt8](repeating: 0, count: 64 * 1024)
    public private(set) var current: TarEntry?

    public init(stream: ByteStream, name: String) {
        self.stream = stream
        self.name = name
    }

    func fail(_ op: String, _ msg: String, at offset: Int64? = nil) -> MinewatchError {
        MinewatchError(.format, operation: op, subject: name, offset: offset ?? position, message: msg)
    }

    func readExactly(_ buf: UnsafeMutableRawBufferPointer, what: String) throws(MinewatchError) -> Bool {
        let n = try stream.readFully(into: buf)
        position += Int64(n)
        if n == 0 { return false }
        if n < buf.count { throw fail("read \(what)", "archive ends inside \(what) (truncated)") }
        return true
    }

    func skip(_ count: Int64) throws(MinewatchError) {
        if count == 0 { return }
        if let s = stream as? SkippableStream {
            try s.skip(count)
            position += count
            return
        }
        var left = count
        while left > 0 {
            let want = Int(min(left, Int64(skipBuf.count)))
            let n = try skipBuf.withMutableBytes { (b) throws(MinewatchError) -> Int in
                try stream.read(into: UnsafeMutableRawBufferPointer(rebasing: b[0..<want]))
            }
            if n == 0 { throw fail("skip entry data", "archive ends \(left) bytes early (truncated)") }
            left -= Int64(n)
            position += Int64(n)
        }
    }

    /// Reads the current entry's content; returns 0 at its end.
    public func readContent(into buffer: UnsafeMutableRawBufferPointer) throws(MinewatchError) -> Int {
        if remaining == 0 { return 0 }
        let want = Int(min(Int64(buffer.count), remaining))
        let n = try stream.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want]))
        if n == 0 {
            throw fail("read entry \(current?.path ?? "")", "archive ends \(remaining) bytes early (truncated or declared size too large)")
        }
        remaining -= Int64(n)
        position += Int64(n)
        return n
    }

    func readRecord(size: Int64, what: String) throws(MinewatchError) -> [UInt8] {
        if size > Int64(Self.maxMetaRecord) || size < 0 {
            throw fail("read \(what)", "record of \(size) bytes is larger than the \(Self.maxMetaRecord)-byte limit")
        }
        var data = [UInt8](repeating: 0, count: Int(size))
        if size > 0 {
            let ok = try data.withMutableBytes { (b) throws(MinewatchError) -> Bool in try readExactly(b, what: what) }
            if !ok { throw fail("read \(what)", "archive ends inside \(what) (truncated)") }
        }
        let pad = (512 - size % 512) % 512
        try skip(pad)
        return data
    }

    /// Advances to the next entry, skipping what is left of the current one.
    public func next() throws(MinewatchError) -> TarEntry? {
        if finished { return nil }
        try skip(remaining + padding)
        remaining = 0
        padding = 0
        current = nil
        var longName: String?
        var longLink: String?
        var pax: [String: String] = [:]
        while true {
            let headerOffset = position
            let got = try header.withMutableBytes { (b) throws(MinewatchError) -> Bool in try readExactly(b, what: "tar header") }
            if !got { finished = true; return nil }  // end of data on a block boundary
            if header.allSatisfy({ $0 == 0 }) {
                finished = true  // end-of-archive marker; what follows is padding
                return nil
            }
            guard Self.checksumOK(header) else {
                throw fail("read tar header", "bad header checksum (not a tar archive, or corrupt)", at: headerOffset)
            }
            let typeflag = header[156]
            guard let size = Self.parseNumber(header[124..<136]) else {
                throw fail("read tar header", "invalid size field", at: headerOffset)
            }
            if size < 0 { throw fail("read tar header", "negative size", at: headerOffset) }
            switch typeflag {
            case UInt8(ascii: "L"):
                longName = Self.cString(try readRecord(size: size, what: "GNU long name")[...])
                continue
            case UInt8(ascii: "K"):
                longLink = Self.cString(try readRecord(size: size, what: "GNU long link")[...])
                continue
            case UInt8(ascii: "x"):
                pax.merge(try Self.parsePAX(try readRecord(size: size, what: "PAX header"), name: name, offset: headerOffset)) { $1 }
                continue
            case UInt8(ascii: "g"):
                _ = try readRecord(size: size, what: "PAX global header")
                continue
            default:
                break
            }
            var rawName = Self.cString(header[0..<100])
            let magic = Array(header[257..<263])
            if magic.starts(with: Array("ustar".utf8)) {
                let prefix = Self.cString(header[345..<500])
                if !prefix.isEmpty && magic == Array("ustar\0".utf8) { rawName = prefix + "/" + rawName }
            }
            if let ln = longName { rawName = ln }
            if let p = pax["path"] { rawName = p }
            var link = Self.cString(header[157..<257])
            if let ll = longLink { link = ll }
            if let lp = pax["linkpath"] { link = lp }
            var entrySize = size
            if let s = pax["size"] {
                guard let v = Int64(s), v >= 0 else { throw fail("read PAX header", "invalid size '\(s)'", at: headerOffset) }
                entrySize = v
            }
            let kind: TarEntry.Kind
            switch typeflag {
            case 0, UInt8(ascii: "0"), UInt8(ascii: "7"): kind = .regular
            case UInt8(ascii: "1"): kind = .hardlink
            case UInt8(ascii: "2"): kind = .symlink
            case UInt8(ascii: "3"): kind = .charDevice
            case UInt8(ascii: "4"): kind = .blockDevice
            case UInt8(ascii: "5"): kind = .directory
            case UInt8(ascii: "6"): kind = .fifo
            default: kind = .other(typeflag)
            }
            let dataSize = kind.carriesData ? entrySize : 0
            remaining = dataSize
            padding = (512 - dataSize % 512) % 512
            let mode = UInt32(truncatingIfNeeded: Self.parseNumber(header[100..<108]) ?? 0)
            let entry = TarEntry(path: Self.normalize(rawName), linkTarget: link, size: dataSize, mode: mode,
                                 kind: kind, headerOffset: headerOffset, dataOffset: position)
            current = entry
            return entry
        }
    }

    static func cString(_ bytes: ArraySlice<UInt8>) -> String {
        let end = bytes.firstIndex(of: 0) ?? bytes.endIndex
        return String(decoding: bytes[bytes.startIndex..<end], as: UTF8.self)
    }

    static func checksumOK(_ h: [UInt8]) -> Bool {
        guard let stored = parseNumber(h[148..<156]) else { return false }
        var unsigned: Int64 = 0
        var signed: Int64 = 0
        for i in 0..<512 {
            let b = (148..<156).contains(i) ? UInt8(ascii: " ") : h[i]
            unsigned += Int64(b)
            signed += Int64(Int8(bitPattern: b))
        }
        return stored == unsigned || stored == signed
    }

    /// Octal (space/NUL padded) or GNU base-256 (high bit of the first byte set).
    static func parseNumber(_ field: ArraySlice<UInt8>) -> Int64? {
        guard let first = field.first else { return nil }
        if first & 0x80 != 0 {
            var v: Int64 = 0
            var firstByte = true
            for b in field {
                let byte = firstByte ? b & 0x7f : b
                firstByte = false
                if v > (Int64.max >> 8) { return nil }
                v = v << 8 | Int64(byte)
            }
            return v
        }
        var v: Int64 = 0
        var started = false
        for b in field {
            if b == 0 || (b == UInt8(ascii: " ") && started) { break }
            if b == UInt8(ascii: " ") { continue }
            guard b >= UInt8(ascii: "0"), b <= UInt8(ascii: "7") else { return nil }
            started = true
            if v > (Int64.max >> 3) { return nil }
            v = v << 3 | Int64(b - UInt8(ascii: "0"))
        }
        return v
    }

    static func parsePAX(_ data: [UInt8], name: String, offset: Int64) throws(MinewatchError) -> [String: String] {
        var out: [String: String] = [:]
        var i = 0
        while i < data.count {
            guard let sp = data[i...].firstIndex(of: UInt8(ascii: " ")),
                  let len = Int(String(decoding: data[i..<sp], as: UTF8.self)), len > 0, len <= data.count - i,
                  sp + 1 <= i + len else {
                if data[i...].allSatisfy({ $0 == 0 }) { break }
                throw MinewatchError(.format, operation: "read PAX header", subject: name, offset: offset, message: "malformed record")
            }
            let record = data[(sp + 1)..<(i + len)]
            if let eq = record.firstIndex(of: UInt8(ascii: "=")) {
                let key = String(decoding: record[record.startIndex..<eq], as: UTF8.self)
                var value = Array(record[(eq + 1)...])
                if value.last == UInt8(ascii: "\n") { value.removeLast() }
                out[key] = String(decoding: value, as: UTF8.self)
            }
            i += len
        }
        return out
    }

    /// "./usr//bin/x" -> "/usr/bin/x". Keeps ".." so callers can report entries that climb out.
    public static func normalize(_ raw: String) -> String {
        var parts: [Substring] = []
        for p in raw.split(separator: "/", omittingEmptySubsequences: true) where p != "." {
            parts.append(p)
        }
        return "/" + parts.joined(separator: "/")
    }
}
