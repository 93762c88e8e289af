import Foundation
import MinewatchCore
#if canImport(Glibc)
import Glibc
#endif

/// One captured packet's record (its bytes are passed beside it).
public struct PacketInfo: Sendable, Hashable {
    /// Seconds since the epoch.
    public var time: Double
    /// LINKTYPE_* of the interface it was captured on.
    public var linkType: UInt16
    public var capturedLength: Int
    public var originalLength: Int
    /// Offset of the packet's record in the capture file.
    public var fileOffset: Int64
    /// A live ring's packet that came in from another host on a network interface (not
    /// loopback, not sent from here); false when unknown (capture files).
    public var received: Bool
    public init(time: Double, linkType: UInt16, capturedLength: Int, originalLength: Int, fileOffset: Int64, received: Bool = false) {
        self.received = received
        self.time = time
        self.linkType = linkType
        self.capturedLength = capturedLength
        self.originalLength = originalLength
        self.fileOffset = fileOffset
    }
}

/// A source of packets: a capture file, or a test double. `read` hands every packet to `body`
/// in order; on a malformed record it throws after the packets before it were handed over.
public protocol PacketSource {
    var name: String { get }
    mutating func read(_ body: (PacketInfo, UnsafeRawBufferPointer) -> Void) throws(MinewatchError)
}

/// Packets from memory (the test double).
public struct RecordedPackets: PacketSource {
    public var name: String
    public var packets: [(PacketInfo, [UInt8])]
    public init(name: String = "recorded", packets: [(PacketInfo, [UInt8])]) {
        self.name = name
        self.packets = packets
    }
    public mutating func read(_ body: (PacketInfo, UnsafeRawBufferPointer) -> Void) throws(MinewatchError) {
        for (info, bytes) in packets { bytes.withUnsafeBytes { body(info, $0) } }
    }
}

/// Classic pcap (both byte orders, micro- and nanosecond) and pcapng (section, interface,
/// enhanced and simple packet blocks; several interfaces and sections) read from a file in large
/// chunks, never whole. Every length is checked before use; a bad one is an error naming the
/// file and the byte offset.
public struct CaptureFile: PacketSource {
    public let path: String
    public var name: String { path }
    /// Largest packet record accepted (captured length).
    public static let maxPacket = 256 * 1024
    /// Largest pcapng block accepted.
    public static let maxBlock = 16 * 1024 * 1024

    /// Map regular files instead of reading them (see `Window`); tests read both ways.
    public var mapFiles = true

    public init(path: String) { self.path = path }

    /// A reader over a capture file that keeps a window of it in memory. A regular file is mapped
    /// whole (read-only, private) and read in place, which saves copying every byte out of the
    /// page cache; anything else (a pipe, a FIFO, a file that cannot be mapped) is read into a
    /// 4 MiB buffer. `buf` is the window either way. What was read of a mapping is let go every
    /// 8 MiB (`MADV_DONTNEED`: the pages stay in the page cache, out of this process's RSS).
    final class Window {
        let fd: Int32
        private(set) var buf: UnsafeRawBufferPointer
        private var owned: UnsafeMutableRawBufferPointer?
        private var mapping: UnsafeMutableRawPointer?
        private var released = 0
        var start = 0  // first unread byte in buf
        var end = 0    // end of valid bytes in buf
        var base: Int64 = 0  // file offset of buf[0]
        var eof = false
        var offset: Int64 { base + Int64(start) }
        var available: Int { end - start }

        init(fd: Int32, map: Bool = true) {
            self.fd = fd
            var st = stat()
            let known = fstat(fd, &st) == 0
            let size = known && st.st_size > 0 ? Int(st.st_size) : 0
            if map, known, st.st_mode & S_IFMT == S_IFREG, size > 0,
               let m = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), m != MAP_FAILED {
                _ = madvise(m, size, MADV_SEQUENTIAL)
                mapping = m
                buf = UnsafeRawBufferPointer(start: m, count: size)
                end = size
                eof = true
                return
            }
            // A 4 MiB window, or the whole file when it is smaller.
            let b = UnsafeMutableRawBufferPointer.allocate(byteCount: min(4 << 20, max(size > 0 ? size : 4 << 20, 64 * 1024)), alignment: 16)
            owned = b
            buf = UnsafeRawBufferPointer(b)
        }

        deinit {
            if let mapping { munmap(mapping, buf.count) }
            owned?.deallocate()
        }

        /// Makes `n` bytes available from `start`; false at end of file.
        func need(_ n: Int, path: String) throws(MinewatchError) -> Bool {
            if let mapping, start - released >= 8 << 20 {
                let upTo = start & ~(Int(getpagesize()) - 1)
                _ = madvise(mapping + released, upTo - released, MADV_DONTNEED)
                released = upTo
            }
            if available >= n { return true }
            guard var b = owned else { return false }  // mapped: the whole file is there
            if start > 0 {
                let live = available
                if live > 0, let p = b.baseAddress { memmove(p, p + start, live) }
                base += Int64(start)
                start = 0
                end = live
            }
            if b.count < n {
                let bigger = UnsafeMutableRawBufferPointer.allocate(byteCount: n, alignment: 16)
                if end > 0 { bigger.copyMemory(from: UnsafeRawBufferPointer(rebasing: b[0..<end])) }
                b.deallocate()
                b = bigger
                owned = bigger
                buf = UnsafeRawBufferPointer(bigger)
            }
            while end < n && !eof {
                guard let p = b.baseAddress else { return false }
                let got = Glibc.read(fd, p + end, b.count - end)
                if got < 0 {
                    if errno == EINTR { continue }
                    throw .posix("read capture", subject: path, errno: errno)
                }
                if got == 0 { eof = true } else { end += got }
            }
            return available >= n
        }

        func u8(_ i: Int) -> UInt8 { buf[start + i] }
        func u16(_ i: Int, big: Bool) -> UInt16 {
            let a = UInt16(buf[start + i]), b = UInt16(buf[start + i + 1])
            return big ? a << 8 | b : b << 8 | a
        }
        func u32(_ i: Int, big: Bool) -> UInt32 {
            let a = UInt32(u16(i, big: big)), b = UInt32(u16(i + 2, big: big))
            return big ? a << 16 | b : b << 16 | a
        }
        /// `count` bytes from `start + from`.
        func bytes(from: Int, count: Int) -> UnsafeRawBufferPointer {
            UnsafeRawBufferPointer(rebasing: buf[(start + from)..<(start + from + count)])
        }
    }

    public mutating func read(_ body: (PacketInfo, UnsafeRawBufferPointer) -> Void) throws(MinewatchError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw .posix("open capture", subject: path, errno: errno) }
        defer { close(fd) }
        let w = Window(fd: fd, map: mapFiles)
        guard try w.need(4, path: path) else { throw bad(0, "file too short for a capture header") }
        let magic = w.u32(0, big: true)
        switch magic {
        case 0xA1B2_C3D4, 0xD4C3_B2A1, 0xA1B2_3C4D, 0x4D3C_B2A1:
            try readPcap(w, magic: magic, body)
        case 0x0A0D_0D0A:
            try readPcapng(w, body)
        default:
            throw bad(0, String(format: "not a pcap or pcapng file (magic 0x%08x)", magic))
        }
    }

    func bad(_ offset: Int64, _ what: String) -> MinewatchError {
        MinewatchError(.format, operation: "read capture", subject: path, offset: offset, message: what)
    }

    func readPcap(_ w: Window, magic: UInt32, _ body: (PacketInfo, UnsafeRawBufferPointer) -> Void) throws(MinewatchError) {
        let big = magic == 0xA1B2_C3D4 || magic == 0xA1B2_3C4D
        let nanos = magic == 0xA1B2_3C4D || magic == 0x4D3C_B2A1
        guard try w.need(24, path: path) else { throw bad(0, "truncated pcap file header (\(w.available) of 24 bytes)") }
        let snap = w.u32(16, big: big)
        let link = UInt16(truncatingIfNeeded: w.u32(20, big: big) & 0xFFFF)
        if snap == 0 { throw bad(16, "snap length 0") }
        w.start += 24
        let divisor = nanos ? 1e9 : 1e6
        while true {
            let off = w.offset
            guard try w.need(16, path: path) else {
                if w.available > 0 { throw bad(off, "truncated packet record header (\(w.available) of 16 bytes)") }
                return
            }
            let sec = w.u32(0, big: big), frac = w.u32(4, big: big)
            let cap = Int(w.u32(8, big: big)), orig = Int(w.u32(12, big: big))
            if cap > Self.maxPacket { throw bad(off, "captured length \(cap) is larger than any packet (limit \(Self.maxPacket))") }
            guard try w.need(16 + cap, path: path) else { throw bad(off, "truncated packet: \(w.available - 16) of \(cap) bytes") }
            let info = PacketInfo(time: Double(sec) + Double(frac) / divisor, linkType: link, capturedLength: cap, originalLength: orig, fileOffset: off)
            body(info, w.bytes(from: 16, count: cap))
            w.start += 16 + cap
        }
    }

    struct Interface { var link: UInt16; var resolution: Double }

    func readPcapng(_ w: Window, _ body: (PacketInfo, UnsafeRawBufferPointer) -> Void) throws(MinewatchError) {
        var big = false
        var interfaces: [Interface] = []
        var sawSection = false
        while true {
            let off = w.offset
            guard try w.need(12, path: path) else {
                if w.available > 0 { throw bad(off, "truncated block header (\(w.available) bytes)") }
                return
            }
            let type = w.u32(0, big: big)
            if type == 0x0A0D_0D0A {
                // Section header: its byte-order magic sets the byte order of the section.
                guard try w.need(16, path: path) else { throw bad(off, "truncated section header") }
                switch w.u32(8, big: true) {
                case 0x1A2B_3C4D: big = true
                case 0x4D3C_2B1A: big = false
                default: throw bad(off + 8, "bad byte-order magic in section header")
                }
                interfaces = []
                sawSection = true
            } else if !sawSection {
                throw bad(off, "pcapng file does not start with a section header")
            }
            let len = Int(w.u32(4, big: big))
            if len < 12 || len % 4 != 0 || len > Self.maxBlock {
                throw bad(off + 4, "block length \(len) (must be a multiple of 4 between 12 and \(Self.maxBlock))")
            }
            guard try w.need(len, path: path) else { throw bad(off, "truncated block: \(w.available) of \(len) bytes") }
            if Int(w.u32(len - 4, big: big)) != len { throw bad(off + Int64(len) - 4, "trailing block length does not match \(len)") }
            switch type {
            case 1:  // interface description
                guard len >= 20 else { throw bad(off, "interface block too short") }
                var res = 1e-6
                // Options: if_tsresol (9).
                var o = 16
                while o + 4 <= len - 4 {
                    let code = w.u16(o, big: big), olen = Int(w.u16(o + 2, big: big))
                    if code == 0 { break }
                    if o + 4 + olen > len - 4 { throw bad(off + Int64(o), "interface option runs past its block") }
                    if code == 9 && olen >= 1 {
                        let v = w.u8(o + 4)
                        let exp = Double(v & 0x7F)
                        res = v & 0x80 != 0 ? pow(2, -exp) : pow(10, -exp)
                    }
                    o += 4 + ((olen + 3) & ~3)
                }
                if interfaces.count >= 65536 { throw bad(off, "more than 65536 interfaces") }
                interfaces.append(Interface(link: w.u16(8, big: big), resolution: res))
            case 6:  // enhanced packet
                guard len >= 32 else { throw bad(off, "enhanced packet block too short") }
                let ifid = Int(w.u32(8, big: big))
                guard ifid < interfaces.count else { throw bad(off + 8, "packet names interface \(ifid), only \(interfaces.count) described") }
                let ts = UInt64(w.u32(12, big: big)) << 32 | UInt64(w.u32(16, big: big))
                let cap = Int(w.u32(20, big: big)), orig = Int(w.u32(24, big: big))
                if cap > Self.maxPacket || 28 + cap > len - 4 { throw bad(off + 20, "captured length \(cap) does not fit its \(len)-byte block") }
                let ifc = interfaces[ifid]
                let info = PacketInfo(time: Double(ts) * ifc.resolution, linkType: ifc.link, capturedLength: cap, originalLength: orig, fileOffset: off)
                body(info, w.bytes(from: 28, count: cap))
            case 3:  // simple packet: interface 0, no timestamp
                guard len >= 16, let ifc = interfaces.first else { throw bad(off, "simple packet block without an interface") }
                let orig = Int(w.u32(8, big: big))
                let cap = min(orig, len - 16)
                let info = PacketInfo(time: 0, linkType: ifc.link, capturedLength: cap, originalLength: orig, fileOffset: off)
                body(info, w.bytes(from: 12, count: cap))
            default:
                break  // section header (handled), name resolution, statistics, custom: skipped
            }
            w.start += len
        }
    }
}
