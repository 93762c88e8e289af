import CShims
import Foundation
import MinewatchCore
import MinewatchAdmission
import MinewatchAnalysis
import MinewatchAttest
import MinewatchScan
import MinewatchHost
import MinewatchImage
import MinewatchNetwork
import MinewatchPackets
import MinewatchSignatures
import MinewatchUnpack
#if canImport(Glibc)
import Glibc
#endif

/// One harness per parser of attacker-controlled bytes. Each takes any bytes and must neither
/// crash nor hang; errors are the expected answer to garbage. libFuzzer drives them through
/// `mw-fuzz` (built with `-sanitize=fuzzer,address`), and the test suite replays the seed
/// corpus and every input that once crashed (Tests/Fixtures/fuzz) through the same functions.
public enum FuzzTargets {
    public typealias Harness = @Sendable (UnsafeRawBufferPointer) -> Void

    public static let all: [(name: String, run: Harness)] = [
        ("tar", tar), ("decompress", decompress), ("layer", layer), ("image", image), ("config", config),
        ("rules", rules), ("pcap", pcap), ("packet", packet), ("stream", stream), ("tls", tls), ("dns", dns),
        ("file", file), ("upx", upx), ("procfs", procfs), ("attestation", attestation), ("admission", admission),
        ("inflate", inflate),
    ]

    public static func harness(_ name: String) -> Harness? { all.first { $0.name == name }?.run }

    /// Limits small enough that a fuzzer's decompression bombs end quickly.
    static let limits = DecompressionLimits(maxOutput: 16 << 20, maxRatio: 250, ratioGrace: 1 << 20)

    static let compiled: CompiledRules = CompiledRules(BundledRules.load().0)

    static func source(_ b: UnsafeRawBufferPointer) -> MemoryByteSource { MemoryByteSource(Array(b), name: "fuzz") }

    static func drain(_ s: ByteStream, max: Int = 32 << 20) {
        var buf = [UInt8](repeating: 0, count: 64 * 1024)
        var total = 0
        while total < max, let n = try? buf.withMutableBytes({ (b) throws(MinewatchError) -> Int in try s.read(into: b) }), n > 0 { total += n }
    }

    /// The tar reader over raw bytes: every entry, every content byte.
    static let tar: Harness = { b in
        let src = source(b)
        let r = TarReader(stream: SectionStream(source: src, offset: 0, length: src.size), name: "fuzz")
        var buf = [UInt8](repeating: 0, count: 4096)
        var entries = 0
        while entries < 10_000, let e = try? r.next() {
            entries += 1
            _ = e.escapesRoot
            while let n = try? buf.withMutableBytes({ (p) throws(MinewatchError) -> Int in try r.readContent(into: p) }), n > 0 {}
        }
    }

    /// gzip and zstd framing (multi-member gzip, truncation, bombs).
    static let decompress: Harness = { b in
        let src = source(b)
        guard let (s, _) = try? autoDecompress(SectionStream(source: src, offset: 0, length: src.size), limits: limits, name: "fuzz") else { return }
        drain(s)
    }

    /// ISA-L's inflater against zlib's on the same gzip bytes (each member, truncation, bad
    /// checksums): neither may crash, and when both accept the input they must produce the same
    /// bytes, since those bytes are hashed into the layer's diff id. Without ISA-L, zlib alone.
    static let inflate: Harness = { b in
        func run(_ inflater: Inflater) -> (ok: Bool, bytes: [UInt8]) {
            let src = source(b)
            guard let s = try? DecompressStream(.gzip, input: SectionStream(source: src, offset: 0, length: src.size),
                                                limits: limits, name: "fuzz", inflater: inflater) else { return (false, []) }
            var out: [UInt8] = []
            var buf = [UInt8](repeating: 0, count: 16 * 1024)
            while out.count < 32 << 20 {
                do {
                    let n = try buf.withMutableBytes { (p) throws(MinewatchError) -> Int in try s.read(into: p) }
                    if n == 0 { return (true, out) }
                    out.append(contentsOf: buf[0..<n])
                } catch { return (false, out) }
            }
            return (false, out)
        }
        let z = run(.zlib)
        guard Inflater.isal.isAvailable else { return }
        let i = run(.isal)
        if z.ok && i.ok && z.bytes != i.bytes {
            fatalError("ISA-L and zlib inflated the same gzip bytes differently (\(i.bytes.count) and \(z.bytes.count) bytes)")
        }
    }

    /// A whole layer: decompression, tar, whiteouts and both digests.
    static let layer: Harness = { b in
        let src = source(b)
        _ = LayerWalker(limits: limits).walk(SectionStream(source: src, offset: 0, length: src.size), name: "fuzz", visit: { (v) throws(MinewatchError) -> Void in
            var buf = [UInt8](repeating: 0, count: 4096)
            while try buf.withMutableBytes({ (p) throws(MinewatchError) -> Int in try v.read(p) }) > 0 {}
        }, issue: { _ in })
    }

    /// An image archive: docker-archive manifest.json, OCI index/manifest/config, then every layer
    /// scanned with the bundled rules.
    static let image: Harness = { b in
        let src = source(b)
        guard let index = try? TarIndex(source: src) else { return }
        var images: [ImageSource] = []
        if let d = try? DockerArchiveImage.load(store: index) { images += d as [ImageSource] }
        if let o = try? OCIImage.load(store: index, kind: "oci-archive", platform: nil) { images += o as [ImageSource] }
        var options = ScanOptions()
        options.limits = limits
        let scanner = ImageScanner(rules: compiled, options: options)
        for img in images.prefix(4) { _ = scanner.scan(image: img, target: "fuzz", kind: img.kind) }
    }

    static let config: Harness = { b in _ = try? ImageConfigInfo.parse(Array(b), name: "fuzz") }

    /// The rule loader and validator (YAML, fields, strings, conditions), then compiling.
    static let rules: Harness = { b in
        let out = RuleLoader().load(yaml: String(decoding: b, as: UTF8.self), file: "fuzz.yaml")
        _ = out.diagnostics.map(\.description)
        if out.diagnostics.isEmpty { _ = CompiledRules(out.ruleSet) }
    }

    /// pcap and pcapng files through the whole analyzer (decoder, flows, reassembly, recognisers).
    static let pcap: Harness = { b in
        let fd = mw_memfd("mw-fuzz-pcap")
        guard fd >= 0 else { return }
        defer { close(fd) }
        var off = 0
        while off < b.count {
            let w = write(fd, b.baseAddress.map { $0 + off }, b.count - off)
            if w <= 0 { return }
            off += w
        }
        // Mapped (how regular files are read) and read through the buffer (pipes, or no mmap).
        for map in [true, false] {
            var file = CaptureFile(path: "/proc/self/fd/\(fd)")
            file.mapFiles = map
            let analyzer = CaptureAnalyzer(rules: compiled.ruleSet)
            analyzer.maxFlows = 64
            _ = analyzer.analyze(&file)
        }
    }

    /// One packet: the first two bytes choose the link type.
    static let packet: Harness = { b in
        guard b.count >= 2 else { return }
        let link = UInt16(b[0]) << 8 | UInt16(b[1])
        _ = PacketDecoder.decode(linkType: link, UnsafeRawBufferPointer(rebasing: b[2...]))
    }

    /// A TCP conversation whose payloads come from the input, so the Stratum, HTTP (PacketCrypt,
    /// getwork) and TLS recognisers see arbitrary streams. Byte 0 picks the server port; then
    /// records of [direction+length (2 bytes)][payload].
    static let stream: Harness = { b in
        guard b.count >= 1 else { return }
        let ports: [UInt16] = [3333, 80, 443, 8080, 14444, 53]
        let port = ports[Int(b[0]) % ports.count]
        var packets: [(PacketInfo, [UInt8])] = []
        var seq: [UInt32] = [1000, 5000]
        var i = 1
        var t = 0.0
        func segment(fromClient: Bool, flags: UInt8, payload: ArraySlice<UInt8>) {
            let d = fromClient ? 0 : 1
            var tcp = [UInt8](repeating: 0, count: 20)
            let (sp, dp) = fromClient ? (UInt16(40000), port) : (port, UInt16(40000))
            tcp[0] = UInt8(sp >> 8); tcp[1] = UInt8(sp & 0xff); tcp[2] = UInt8(dp >> 8); tcp[3] = UInt8(dp & 0xff)
            let s = seq[d]
            tcp[4] = UInt8(s >> 24); tcp[5] = UInt8((s >> 16) & 0xff); tcp[6] = UInt8((s >> 8) & 0xff); tcp[7] = UInt8(s & 0xff)
            tcp[12] = 0x50
            tcp[13] = flags
            seq[d] = s &+ UInt32(payload.count) &+ (flags & 0x02 != 0 ? 1 : 0)
            let total = 20 + 20 + payload.count
            var ip: [UInt8] = [0x45, 0, UInt8(total >> 8), UInt8(total & 0xff), 0, 0, 0x40, 0, 64, 6, 0, 0]
            ip += fromClient ? [198, 18, 1, 2, 198, 18, 1, 3] : [198, 18, 1, 3, 198, 18, 1, 2]
            let bytes = ip + tcp + payload
            t += 0.01
            packets.append((PacketInfo(time: t, linkType: 101, capturedLength: bytes.count, originalLength: bytes.count, fileOffset: 0), bytes))
        }
        segment(fromClient: true, flags: 0x02, payload: [])
        segment(fromClient: false, flags: 0x12, payload: [])
        while i + 2 <= b.count, packets.count < 4096 {
            let fromClient = b[i] & 0x80 == 0
            let len = Int(b[i] & 0x7f) << 8 | Int(b[i + 1])
            i += 2
            let end = min(b.count, i + len)
            segment(fromClient: fromClient, flags: 0x18, payload: Array(b[i..<end])[...])
            i = end
        }
        var src = RecordedPackets(name: "fuzz", packets: packets)
        _ = CaptureAnalyzer(rules: compiled.ruleSet).analyze(&src)
    }

    /// The UPX unpacker: block finding (layout, entry words, blind search) and every decoder.
    static let upx: Harness = { b in
        let limits = UPX.Limits(maxBlock: 16 << 20, maxOutput: 64 << 20, maxTrials: 64)
        _ = UPX.looksPacked(b)
        guard let layout = try? UPX.locate(b, limits: limits) else { return }
        try? UPX.decode(b, layout, limits: limits) { _, _ in }
    }

    static let tls: Harness = { b in _ = TLSClientHello.serverName(Array(b)) }

    /// What a registry serves as an attestation: a DSSE envelope, and the Statement in its payload
    /// (read only after a signature verified, but parsed here regardless).
    static let attestation: Harness = { b in
        let bytes = Array(b)
        if let env = try? DSSEEnvelope.decode(bytes, name: "fuzz") {
            _ = env.pae
            _ = try? ScanStatement.parse(env.payload, name: "fuzz")
        }
        _ = try? ScanStatement.parse(bytes, name: "fuzz")
    }

    /// What the API server relays from whoever creates a workload: an AdmissionReview, and the
    /// pod spec rendered as manifest text for the rules.
    static let admission: Harness = { b in
        guard let r = try? AdmissionRequest.parse(Array(b)) else { return }
        for c in r.containers { _ = c.manifestText }
    }

    /// What a container controls in /proc and in its root: its /etc/hosts, its processes'
    /// command lines, environment and stat lines (comm is chosen by the process), its sockets'
    /// sock_diag replies, the runtime's OCI bundle annotations (a pod's author sets some), and
    /// its processes' maps and smaps (mapping paths are file names it chose) and thread stat lines.
    /// The first byte picks the parser.
    static let procfs: Harness = { b in
        guard let sel = b.first else { return }
        let rest = Array(b.dropFirst())
        if sel == 0xfe { return confinedPath(rest) }
        if sel == 0xfd {
            let text = String(decoding: rest, as: UTF8.self)
            for r in ProcParsers.maps(text) + ProcParsers.smaps(text) { _ = (r.label, r.size, r.isAnonymous, r.isMemfd, r.isSpecial) }
            _ = ProcParsers.threadStat(rest)
            return
        }
        switch sel % 7 {
        case 6: _ = BundleAnnotations.parse(rest)
        case 0: _ = ProcParsers.hosts(rest)
        case 1: _ = ProcParsers.environ(rest, keep: ["RP_API_KEY", "POOL_URL", "CID"])
        case 2: _ = ProcParsers.cmdline(rest)
        case 3: _ = ProcParsers.stat(rest)
        case 4: _ = NetParsers.sockets(String(decoding: rest, as: UTF8.self), proto: .tcp); _ = NetParsers.dev(rest)
        default:
            var out: [SocketEntry] = []
            _ = try? SockDiagParser.parse(rest, into: &out)
        }
    }

    /// A fake container root with every way out (absolute and relative links to a file outside,
    /// a link upwards, a link to /proc/self/root, a FIFO, `..`), made once per fuzzing process.
    static let escapeTree: (root: String, secret: [UInt8])? = {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("mw-fuzz-root-\(getpid())").path
        let root = base + "/root"
        let secret = Array("OUTSIDE-THE-ROOT".utf8)
        let fm = FileManager.default
        do {
            try fm.createDirectory(atPath: root + "/app", withIntermediateDirectories: true)
            try fm.createDirectory(atPath: root + "/etc", withIntermediateDirectories: true)
            _ = fm.createFile(atPath: base + "/secret", contents: Data(secret))
            _ = fm.createFile(atPath: root + "/etc/hosts", contents: Data("10.0.0.1 in\n".utf8))
            try fm.createSymbolicLink(atPath: root + "/app/abs", withDestinationPath: base + "/secret")
            try fm.createSymbolicLink(atPath: root + "/app/rel", withDestinationPath: "../../secret")
            try fm.createSymbolicLink(atPath: root + "/up", withDestinationPath: "..")
            try fm.createSymbolicLink(atPath: root + "/magic", withDestinationPath: "/proc/self/root")
            try fm.createSymbolicLink(atPath: root + "/hosts", withDestinationPath: "/etc/hosts")
            mkfifo(root + "/fifo", 0o600)
        } catch { return nil }
        return (root, secret)
    }()

    /// A path a container chooses, opened through the confined-path primitive in both modes and
    /// with both resolvers: it must never block and never read the file outside the root.
    static func confinedPath(_ bytes: [UInt8]) {
        guard let tree = escapeTree else { return }
        let rel = String(decoding: bytes.prefix(4096), as: UTF8.self)
        for links in [ConfinedRoot.Links.refused, .inRoot] {
            for resolver in [ConfinedRoot.Resolver.automatic, .componentWise] {
                guard let root = try? ConfinedRoot(path: tree.root, links: links, resolver: resolver) else { continue }
                if let got = try? root.readFile(rel, limit: 4096) {
                    precondition(got != tree.secret, "\(rel) left the root (\(links), \(resolver))")
                }
                _ = try? root.kind(of: rel)
            }
        }
    }

    static let dns: Harness = { b in _ = DNSMessage.parse(b) }

    /// One file through the content analysis every scan and `watch` use (matcher, wallets,
    /// suppression, correlations).
    static let file: Harness = { b in
        let analyzer = FileAnalyzer(rules: compiled)
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: FileAnalyzer.chunkSize, alignment: 16)
        defer { buf.deallocate() }
        var off = 0
        _ = try? analyzer.analyze(path: "/fuzz", layer: nil, read: { (dst) throws(MinewatchError) -> Int in
            let n = min(dst.count, b.count - off)
            if n > 0, let base = b.baseAddress { dst.copyMemory(from: UnsafeRawBufferPointer(start: base + off, count: n)) }
            off += n
            return n
        }, buffer: buf)
    }
}
