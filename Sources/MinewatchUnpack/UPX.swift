import MinewatchCore

/// Unpacks UPX-packed ELF executables (amd64, i386, arm64; UPX 3.9x-4.x main programs, and
/// shared objects by their block chains) so that the original program's bytes can be scanned.
///
/// The layout (from UPX's own source, p_lx_elf.cpp and the stubs, and checked against real packs):
/// UPX writes its own ELF header and 2-3 program headers, then `l_info` {checksum, "UPX!", ...},
/// `p_info` {0, original size, block size}, then one compressed block per original PT_LOAD (the
/// first holds the original ELF header and program headers), each behind a 12-byte `b_info`
/// {uncompressed size, compressed size, method, filter, filter parameter, 0}, back to back. After
/// them come two words the stub reads at run time (the offset of the first `b_info`, and a word
/// equal to its own offset), the decompressor stub, the compressed rest of the loader, then blocks
/// for the file bytes outside every PT_LOAD, an end marker and a trailer ("UPX!" PackHeader).
///
/// Attackers wipe "UPX!", `l_info`, `p_info` and the trailer so that `upx -d` refuses the file;
/// the program still runs, because the stub needs none of them. So blocks are found by structure:
/// the program headers the stub needs, the words before the entry point, and the `b_info` chain
/// itself (every block must decode to exactly its size from exactly its bytes), and only as a last
/// resort by a bounded blind search for a valid chain. Nothing here trusts the magic.
///
/// UPX's call/jump filters (0x46, 0x49 on x86, 0x52 on arm64) change only branch operands, so
/// they are not undone: strings come out intact, which is what scanning needs.
public enum UPX {
    public enum Method: UInt8, Sendable, CustomStringConvertible {
        case stored = 0, nrv2b = 2, nrv2d = 5, nrv2e = 8, lzma = 14
        public var description: String {
            switch self {
            case .stored: "stored"
            case .nrv2b: "NRV2B"
            case .nrv2d: "NRV2D"
            case .nrv2e: "NRV2E"
            case .lzma: "LZMA"
            }
        }
    }

    /// One compressed block: where its `b_info` is in the packed file.
    public struct Block: Sendable, Hashable {
        public var headerOffset: Int
        public var unpackedSize: Int
        public var packedSize: Int
        public var method: Method
        public var filter: UInt8
        public var dataOffset: Int { headerOffset + 12 }
    }

    /// Where the packed file's blocks go in the original file.
    public struct Layout: Sendable {
        public var architecture: String
        public var method: Method
        /// (offset in the original file, block), in original-file order.
        public var extents: [(offset: Int, block: Block)]
        public var packedSize: Int
        public var unpackedSize: Int { extents.reduce(0) { $0 + $1.block.unpackedSize } }
        /// False when UPX's own headers (the `l_info` magic or the trailer) were removed or
        /// overwritten, so that `upx -d` refuses the file although it still runs.
        public var headersIntact: Bool
        /// True when the blocks were found by a search for valid chains, not by the layout.
        public var foundBySearch: Bool
    }

    public struct Limits: Sendable {
        /// Largest uncompressed size of one block.
        public var maxBlock: Int
        /// Most bytes all blocks together may expand to.
        public var maxOutput: Int64
        /// Most candidate positions tried by the blind search.
        public var maxTrials: Int
        public init(maxBlock: Int = 128 << 20, maxOutput: Int64 = 1 << 30, maxTrials: Int = 512) {
            self.maxBlock = maxBlock
            self.maxOutput = maxOutput
            self.maxTrials = maxTrials
        }
    }

    /// Why a packed file could not be unpacked (one line, names the offset).
    public struct Failure: Error, Sendable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    // MARK: recognising a packed file from its first bytes

    /// True when the first bytes (at least the ELF and program headers) look like a UPX-packed
    /// ELF: the program-header pattern the UPX stub needs, or the "UPX!" magic where `l_info`
    /// goes. Cheap; decides whether a file's bytes are kept for unpacking.
    public static func looksPacked(_ head: UnsafeRawBufferPointer) -> Bool {
        guard let elf = ELF(head) else { return false }
        if elf.hasStubLayout { return true }
        let linfo = elf.phoff + elf.phnum * elf.phentsize
        if linfo + 8 <= head.count, read32(head, linfo + 4) == magic { return true }
        // Shared objects keep their first bytes; their l_info sits later. Look for the magic.
        return search(head, magicBytes, from: 0, to: min(head.count, 64 * 1024)) != nil
    }

    static let magic: UInt32 = 0x2158_5055  // "UPX!" little-endian
    static let magicBytes: [UInt8] = Array("UPX!".utf8)

    // MARK: finding the blocks

    /// Finds the blocks of a packed file. Decodes only the block that holds the original program
    /// headers (the rest is decoded by `decode`).
    public static func locate(_ file: UnsafeRawBufferPointer, limits: Limits = Limits()) throws(Failure) -> Layout {
        guard let elf = ELF(file) else { throw Failure(message: "not a little-endian ELF file UPX packs") }
        var tried = Set<Int>()
        var firstError: Failure?
        for start in elf.firstBlockCandidates(file) where tried.insert(start).inserted {
            do {
                return try structured(file, elf: elf, start: start, limits: limits)
            } catch {
                if firstError == nil { firstError = error }
            }
        }
        if let layout = blindSearch(file, elf: elf, limits: limits) { return layout }
        throw firstError ?? Failure(message: "no UPX block chain found")
    }

    /// Decodes every extent in original-file order, handing each one's bytes to `body` together
    /// with its offset in the original file. One block is in memory at a time.
    public static func decode(_ file: UnsafeRawBufferPointer, _ layout: Layout, limits: Limits = Limits(),
                              body: (Int, UnsafeRawBufferPointer) -> Void) throws(Failure) {
        let largest = layout.extents.map(\.block.unpackedSize).max() ?? 0
        guard largest <= limits.maxBlock else { throw Failure(message: "a block expands to \(largest) bytes (limit \(limits.maxBlock))") }
        var total: Int64 = 0
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(largest, 1), alignment: 16)
        defer { buffer.deallocate() }
        for (offset, block) in layout.extents {
            total += Int64(block.unpackedSize)
            guard total <= limits.maxOutput else { throw Failure(message: "unpacks to more than \(limits.maxOutput) bytes (limit)") }
            let out = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<block.unpackedSize])
            try decodeBlock(file, block, into: out)
            body(offset, UnsafeRawBufferPointer(out))
        }
    }

    /// The packed file as UPX lays out a main program: the first block holds the original ELF
    /// and program headers; then each original PT_LOAD's blocks; then (after the loader) the gaps.
    static func structured(_ file: UnsafeRawBufferPointer, elf: ELF, start: Int, limits: Limits) throws(Failure) -> Layout {
        let first = try blockHeader(file, at: start, limits: limits)
        guard first.method != .stored, first.unpackedSize <= 1 << 20 else {
            throw Failure(message: "block at offset \(start) is not the original program headers")
        }
        let headerBytes = UnsafeMutableRawBufferPointer.allocate(byteCount: first.unpackedSize, alignment: 16)
        defer { headerBytes.deallocate() }
        try decodeBlock(file, first, into: headerBytes)
        guard let original = ELF(UnsafeRawBufferPointer(headerBytes)), original.is64 == elf.is64, original.machine == elf.machine else {
            throw Failure(message: "block at offset \(start) does not decode to an ELF header of the same kind")
        }
        let loads = original.loads(UnsafeRawBufferPointer(headerBytes))
        guard !loads.isEmpty else { throw Failure(message: "the original program headers hold no PT_LOAD") }
        var extents: [(offset: Int, block: Block)] = [(0, first)]
        var pos = start + 12 + first.packedSize
        var budget = Int64(first.unpackedSize)
        for load in loads where load.fileSize > 0 {
            var origin = load.offset
            var remaining = load.fileSize
            if load.offset == 0 {  // its first bytes are the headers, already in the first block
                origin = first.unpackedSize
                remaining = load.fileSize - first.unpackedSize
            }
            while remaining > 0 {
                let b = try blockHeader(file, at: pos, limits: limits)
                guard b.unpackedSize <= remaining else {
                    throw Failure(message: "block at offset \(pos) is larger than the segment it belongs to")
                }
                budget += Int64(b.unpackedSize)
                guard budget <= limits.maxOutput else { throw Failure(message: "unpacks to more than \(limits.maxOutput) bytes (limit)") }
                extents.append((origin, b))
                origin += b.unpackedSize
                remaining -= b.unpackedSize
                pos = b.dataOffset + b.packedSize
            }
        }
        // The file bytes outside every PT_LOAD (symbol tables, section headers) follow the loader.
        // A missing or damaged tail is tolerated: the program's segments are what matter.
        let segmentEnd = loads.map { $0.offset + $0.fileSize }.max() ?? 0
        var gapOrigin = segmentEnd
        if let text = elf.stubText {
            var gpos = (text + 3) & ~3
            var gaps = original.gaps(loads)
            while let b = parseHeader(file, at: gpos, limits: limits) {
                budget += Int64(b.unpackedSize)
                if budget > limits.maxOutput { break }
                // Blocks fill the gaps in order; a gap larger than the block size spans several.
                if let g = gaps.first {
                    extents.append((g.offset, b))
                    if b.unpackedSize >= g.size { gaps.removeFirst() } else { gaps[0] = (g.offset + b.unpackedSize, g.size - b.unpackedSize) }
                } else {
                    extents.append((gapOrigin, b))
                }
                gapOrigin = max(gapOrigin, (extents.last?.offset ?? 0) + b.unpackedSize)
                gpos = b.dataOffset + b.packedSize
            }
        }
        extents.sort { $0.offset < $1.offset }
        return Layout(architecture: elf.architecture, method: extents.first { $0.block.method != .stored }?.block.method ?? first.method,
                      extents: extents, packedSize: file.count, headersIntact: headersIntact(file, elf: elf), foundBySearch: false)
    }

    /// Every offset is tried as a `b_info` that starts a chain of valid blocks (bounded); each
    /// chain found is kept in file order. For shared objects and layouts this reader does not know.
    static func blindSearch(_ file: UnsafeRawBufferPointer, elf: ELF, limits: Limits) -> Layout? {
        var extents: [(offset: Int, block: Block)] = []
        var trials = 0
        var pos = 0
        var origin = 0
        var budget: Int64 = 0
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)
        defer { scratch.deallocate() }
        while pos + 16 <= file.count && trials < limits.maxTrials {
            guard plausibleChainStart(file, at: pos, limits: limits) else { pos += 1; continue }
            trials += 1
            var chain: [Block] = []
            var p = pos
            while let b = parseHeader(file, at: p, limits: limits) {
                // Every block of the chain must really decode; small ones are checked here, large
                // ones when they are decoded for scanning (a failure there ends the unpacking).
                if b.unpackedSize <= scratch.count {
                    let out = UnsafeMutableRawBufferPointer(rebasing: scratch[0..<b.unpackedSize])
                    if (try? decodeBlock(file, b, into: out)) == nil { break }
                } else if chain.isEmpty && (try? probe(file, b)) == nil {
                    break
                }
                chain.append(b)
                p = b.dataOffset + b.packedSize
            }
            guard !chain.isEmpty else { pos += 1; continue }
            for b in chain {
                budget += Int64(b.unpackedSize)
                if budget > limits.maxOutput { break }
                extents.append((origin, b))
                origin += b.unpackedSize
            }
            pos = p
        }
        guard let first = extents.first(where: { $0.block.method != .stored }) else { return nil }
        return Layout(architecture: elf.architecture, method: first.block.method, extents: extents, packedSize: file.count,
                      headersIntact: headersIntact(file, elf: elf), foundBySearch: true)
    }

    /// Decodes a large block once, to be sure it is one (used by the blind search).
    static func probe(_ file: UnsafeRawBufferPointer, _ b: Block) throws(Failure) {
        let out = UnsafeMutableRawBufferPointer.allocate(byteCount: b.unpackedSize, alignment: 16)
        defer { out.deallocate() }
        try decodeBlock(file, b, into: out)
    }

    /// A `b_info` that could start a chain: sizes that fit, a method and filter UPX uses for ELF,
    /// and a payload that starts the way that method's streams start.
    static func plausibleChainStart(_ file: UnsafeRawBufferPointer, at pos: Int, limits: Limits) -> Bool {
        guard let b = parseHeader(file, at: pos, limits: limits), b.method != .stored, b.packedSize >= 4 else { return false }
        let d = b.dataOffset
        switch b.method {
        case .lzma:
            let p0 = file[d], p1 = file[d + 1]
            return Int(p0 >> 3) == Int(p1 & 15) + Int(p1 >> 4) && p0 & 7 <= 4 && file[d + 2] == 0
        default:
            return file[d + 3] & 0x80 != 0  // the first token is a literal
        }
    }

    /// Reads and checks a `b_info`. Stored blocks (compressed size = size) carry no method.
    static func blockHeader(_ file: UnsafeRawBufferPointer, at pos: Int, limits: Limits) throws(Failure) -> Block {
        if let b = parseHeader(file, at: pos, limits: limits) { return b }
        guard pos >= 0, pos + 12 <= file.count else { throw Failure(message: "block header at offset \(pos) is past the end of the file") }
        let unc = Int(read32(file, pos)), cpr = Int(read32(file, pos + 4))
        if unc > limits.maxBlock { throw Failure(message: "block at offset \(pos) expands to \(unc) bytes (limit \(limits.maxBlock))") }
        if unc > 0, cpr > 0, cpr <= unc, cpr > file.count - pos - 12 {
            throw Failure(message: "block at offset \(pos) runs past the end of the file (truncated)")
        }
        throw Failure(message: "no valid block header at offset \(pos) (sizes \(unc)/\(cpr), method \(file[pos + 8]), filter \(file[pos + 9]))")
    }

    /// The checks of `blockHeader` without building an error (the blind search calls it at every offset).
    @inline(__always) static func parseHeader(_ file: UnsafeRawBufferPointer, at pos: Int, limits: Limits) -> Block? {
        guard pos >= 0, pos + 12 <= file.count else { return nil }
        let unc = Int(read32(file, pos)), cpr = Int(read32(file, pos + 4))
        guard unc > 0, cpr > 0, cpr <= unc, unc <= limits.maxBlock, cpr <= file.count - pos - 12 else { return nil }
        let method = file[pos + 8], filter = file[pos + 9], cto = file[pos + 10], extra = file[pos + 11]
        if cpr == unc {
            guard method == 0 || Method(rawValue: method) != nil else { return nil }
            return Block(headerOffset: pos, unpackedSize: unc, packedSize: cpr, method: .stored, filter: 0)
        }
        guard let m = Method(rawValue: method), m != .stored, extra == 0,
              filter == 0 || filter == 0x46 || filter == 0x49 || filter == 0x52, filter != 0 || cto == 0 else { return nil }
        return Block(headerOffset: pos, unpackedSize: unc, packedSize: cpr, method: m, filter: filter)
    }

    static func decodeBlock(_ file: UnsafeRawBufferPointer, _ b: Block, into out: UnsafeMutableRawBufferPointer) throws(Failure) {
        let input = UnsafeRawBufferPointer(rebasing: file[b.dataOffset..<(b.dataOffset + b.packedSize)])
        let variant: NRV.Variant
        switch b.method {
        case .stored:
            out.copyMemory(from: input)
            return
        case .lzma:
            do throws(UPXLZMA.Failure) { try UPXLZMA.decode(input, into: out) } catch {
                throw Failure(message: "LZMA block at offset \(b.headerOffset): \(error)")
            }
            return
        case .nrv2b: variant = .b
        case .nrv2d: variant = .d
        case .nrv2e: variant = .e
        }
        do throws(NRV.Failure) { try NRV.decode(variant, input, into: out) } catch {
            throw Failure(message: "\(b.method) block at offset \(b.headerOffset): \(error)")
        }
    }

    /// UPX's own headers as `upx -d` needs them: the `l_info` magic after the program headers, or
    /// (shared objects) anywhere early, and the trailer's magic in the last bytes.
    static func headersIntact(_ file: UnsafeRawBufferPointer, elf: ELF) -> Bool {
        let linfo = elf.phoff + elf.phnum * elf.phentsize
        let lmagic = linfo + 8 <= file.count && read32(file, linfo + 4) == magic
        let tail = max(0, file.count - 8192)
        let trailer = search(file, magicBytes, from: tail, to: file.count) != nil
        return lmagic && trailer
    }

    static func search(_ hay: UnsafeRawBufferPointer, _ needle: [UInt8], from: Int, to: Int) -> Int? {
        guard to - from >= needle.count else { return nil }
        var i = from
        while i + needle.count <= to {
            if hay[i] == needle[0] && hay[i + 1] == needle[1] && hay[i + 2] == needle[2] && hay[i + 3] == needle[3] { return i }
            i += 1
        }
        return nil
    }

    @inline(__always) static func read32(_ b: UnsafeRawBufferPointer, _ o: Int) -> UInt32 {
        UInt32(b[o]) | UInt32(b[o + 1]) << 8 | UInt32(b[o + 2]) << 16 | UInt32(b[o + 3]) << 24
    }

    @inline(__always) static func read64(_ b: UnsafeRawBufferPointer, _ o: Int) -> UInt64 {
        UInt64(read32(b, o)) | UInt64(read32(b, o + 4)) << 32
    }

    static func read16(_ b: UnsafeRawBufferPointer, _ o: Int) -> Int { Int(b[o]) | Int(b[o + 1]) << 8 }
}

/// The few ELF header and program-header fields the unpacker needs (little-endian only; every
/// read is bounds-checked against the bytes given).
struct ELF {
    struct Segment { var type: UInt32; var flags: UInt32; var offset: Int; var vaddr: UInt64; var fileSize: Int; var memSize: UInt64 }

    let is64: Bool
    let machine: Int
    let entry: UInt64
    let phoff: Int
    let phnum: Int
    let phentsize: Int
    let shnum: Int
    let segments: [Segment]

    init?(_ b: UnsafeRawBufferPointer) {
        guard b.count >= 52, b[0] == 0x7f, b[1] == 0x45, b[2] == 0x4c, b[3] == 0x46, b[5] == 1 else { return nil }
        is64 = b[4] == 2
        guard b[4] == 1 || b[4] == 2, !is64 || b.count >= 64 else { return nil }
        machine = UPX.read16(b, 18)
        if is64 {
            entry = UPX.read64(b, 24)
            let ph = UPX.read64(b, 32)
            guard ph < UInt64(Int32.max) else { return nil }
            phoff = Int(ph)
            phentsize = UPX.read16(b, 54)
            phnum = UPX.read16(b, 56)
            shnum = UPX.read16(b, 60)
        } else {
            entry = UInt64(UPX.read32(b, 24))
            phoff = Int(UPX.read32(b, 28))
            phentsize = UPX.read16(b, 42)
            phnum = UPX.read16(b, 44)
            shnum = UPX.read16(b, 48)
        }
        guard phentsize == (is64 ? 56 : 32), phnum >= 1, phnum <= 64, phoff >= 0, phoff <= b.count, phnum * phentsize <= b.count - phoff else {
            return nil
        }
        var segs: [Segment] = []
        for i in 0..<phnum {
            let o = phoff + i * phentsize
            if is64 {
                let off = UPX.read64(b, o + 8), filesz = UPX.read64(b, o + 32)
                guard off < 1 << 40, filesz < 1 << 40 else { return nil }
                segs.append(Segment(type: UPX.read32(b, o), flags: UPX.read32(b, o + 4), offset: Int(off), vaddr: UPX.read64(b, o + 16),
                                    fileSize: Int(filesz), memSize: UPX.read64(b, o + 40)))
            } else {
                segs.append(Segment(type: UPX.read32(b, o), flags: UPX.read32(b, o + 24), offset: Int(UPX.read32(b, o + 4)),
                                    vaddr: UInt64(UPX.read32(b, o + 8)), fileSize: Int(UPX.read32(b, o + 16)),
                                    memSize: UInt64(UPX.read32(b, o + 20))))
            }
        }
        segments = segs
    }

    var architecture: String {
        switch machine {
        case 62: "amd64"
        case 3: "i386"
        case 183: "arm64"
        case 40: "arm"
        default: "ELF machine \(machine)"
        }
    }

    /// The program headers UPX writes for a packed main program: a writable PT_LOAD of one page at
    /// offset 0, then an executable PT_LOAD at offset 0 whose file and memory sizes are equal (it
    /// maps the compressed blocks and the loader), no section headers. The stub needs them.
    var hasStubLayout: Bool {
        let loads = segments.filter { $0.type == 1 }
        guard shnum == 0, segments.count <= 3, loads.count == 2 else { return false }
        let base = loads[0], text = loads[1]
        return base.offset == 0 && base.fileSize == 0x1000 && base.flags & 2 != 0
            && text.offset == 0 && text.flags & 1 != 0 && UInt64(text.fileSize) == text.memSize
    }

    /// End of the executable PT_LOAD of the packed file (where the loader ends).
    var stubText: Int? {
        guard hasStubLayout else { return nil }
        return segments.filter { $0.type == 1 }[1].fileSize
    }

    /// Offsets where the first `b_info` may start, most likely first: from the words the stub reads
    /// before its entry point (the first block's offset, then a word equal to its own offset), and
    /// right after where UPX puts `l_info` and `p_info`.
    func firstBlockCandidates(_ file: UnsafeRawBufferPointer) -> [Int] {
        var out: [Int] = []
        let loads = segments.filter { $0.type == 1 }
        if loads.count >= 2 {
            let text = loads[1]
            if text.offset == 0, entry >= text.vaddr, entry - text.vaddr < UInt64(min(file.count, text.fileSize)) {
                let e = Int(entry - text.vaddr)
                for o in stride(from: e - 12, through: e - 4, by: 4) where o >= 4 && o + 4 <= file.count {
                    if Int(UPX.read32(file, o)) == o { out.append(Int(UPX.read32(file, o - 4))) }
                }
            }
        }
        out.append(phoff + phnum * phentsize + 24)
        return out.filter { $0 > 0 && $0 < file.count }
    }

    /// The original program's PT_LOADs, in program-header order.
    func loads(_ b: UnsafeRawBufferPointer) -> [Segment] { segments.filter { $0.type == 1 } }

    /// File ranges outside every PT_LOAD up to the next one (UPX packs them after the loader).
    func gaps(_ loads: [Segment]) -> [(offset: Int, size: Int)] {
        var out: [(offset: Int, size: Int)] = []
        for l in loads {
            let hi = l.offset + l.fileSize
            guard let lo = loads.map(\.offset).filter({ $0 >= hi }).min() else { continue }
            if lo > hi { out.append((hi, lo - hi)) }
        }
        return out
    }
}
