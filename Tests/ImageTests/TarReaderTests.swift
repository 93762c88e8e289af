import Foundation
import MinewatchCore
@testable import MinewatchImage
import Testing
import TestSupport

func entries(_ bytes: [UInt8]) throws(MinewatchError) -> [(TarEntry, [UInt8])] {
    let r = TarReader(stream: SectionStream(source: MemoryByteSource(bytes), offset: 0, length: Int64(bytes.count)), name: "t.tar")
    var out: [(TarEntry, [UInt8])] = []
    var buf = [UInt8](repeating: 0, count: 7)  // a small buffer exercises partial reads
    while let e = try r.next() {
        var data: [UInt8] = []
        while true {
            let n = try buf.withMutableBytes { (b) throws(MinewatchError) -> Int in try r.readContent(into: b) }
            if n == 0 { break }
            data += buf[0..<n]
        }
        out.append((e, data))
    }
    return out
}

@Suite struct TarReaderTests {
    @Test func readsKindsLongNamesAndContent() throws {
        var t = TarBuilder()
        t.dir("usr/bin")
        t.file("usr/bin/a", "hello")
        let long = "usr/" + String(repeating: "d", count: 120) + "/file"
        t.file(long, "long")
        t.symlink("usr/bin/l", to: "/etc/passwd")
        t.hardlink("usr/bin/h", to: "usr/bin/a")
        t.device("dev/null")
        let e = try entries(t.finished())
        #expect(e.map(\.0.path) == ["/usr/bin", "/usr/bin/a", "/" + long, "/usr/bin/l", "/usr/bin/h", "/dev/null"])
        #expect(e[1].1 == Array("hello".utf8))
        #expect(e[2].1 == Array("long".utf8))
        #expect(e[3].0.kind == .symlink && e[3].0.linkTarget == "/etc/passwd")
        #expect(e[5].0.kind == .charDevice && e[5].1.isEmpty)
    }

    @Test func systemTarAgrees() throws {
        let dir = try TempDir("tar")
        defer { dir.cleanup() }
        _ = try dir.file("src/a/b.txt", Array("bee".utf8))
        _ = try dir.file("src/" + String(repeating: "n", count: 150), Array("nnn".utf8))
        for format in ["gnu", "posix", "ustar"] where format != "ustar" {
            let out = try run(["tar", "--format=\(format)", "-C", dir.path + "/src", "-cf", "-", "."]).out
            let names = try entries(out).map(\.0.path)
            #expect(names.contains("/a/b.txt"))
            #expect(names.contains("/" + String(repeating: "n", count: 150)), "\(format)")
        }
    }

    @Test func badChecksumIsAnErrorWithOffset() throws {
        var t = TarBuilder()
        t.file("ok", "x")
        t.raw(TarBuilder.header(name: "bad", size: 1, badChecksum: true))
        do {
            _ = try entries(t.finished())
            Issue.record("no error")
        } catch {
            #expect(error.description == "t.tar at offset 1024: read tar header: bad header checksum (not a tar archive, or corrupt)")
        }
    }

    @Test func truncatedAndHugeDeclaredSizes() throws {
        var t = TarBuilder()
        t.file("a", [UInt8](repeating: 65, count: 2000))
        let cut = Array(t.bytes.prefix(1000))
        #expect(throws: MinewatchError.self) { try entries(cut) }
        var h = TarBuilder()
        h.raw(TarBuilder.header(name: "huge", size: 0, sizeField: "77777777777"))
        h.raw([UInt8](repeating: 1, count: 512))
        do {
            _ = try entries(h.bytes)
            Issue.record("no error")
        } catch {
            #expect(error.description.contains("truncated"))
        }
    }

    @Test func garbageIsNotATar() {
        #expect(throws: MinewatchError.self) { try entries(Array(repeating: 0x41, count: 1024)) }
    }
}

@Suite struct DecompressTests {
    func inflate(_ data: [UInt8], limits: DecompressionLimits = DecompressionLimits()) throws(MinewatchError) -> [UInt8] {
        let (s, _) = try autoDecompress(SectionStream(source: MemoryByteSource(data), offset: 0, length: Int64(data.count)), limits: limits, name: "blob")
        return try s.readAll(limit: 1 << 30, what: "blob")
    }

    @Test func gzipAndMultiMemberAndZstd() throws {
        let a = Array("first member ".utf8), b = Array("second member".utf8)
        #expect(try inflate(try gzip(a)) == a)
        #expect(try inflate(try gzip(a) + gzip(b)) == a + b)
        #expect(try inflate(a) == a)  // not compressed: passed through
        let z = try zstdCompress(b)
        #expect(try inflate(z) == b)
    }

    @Test func corruptAndTruncatedGzip() throws {
        var rand = Samples.Rand(seed: 3)
        var g = try gzip(Array(repeating: 7, count: 100_000) + rand.bytes(50_000))
        let truncated = Array(g.prefix(g.count / 2))
        #expect(throws: MinewatchError.self) { try inflate(truncated) }
        g[20] ^= 0xff
        g[21] ^= 0xff
        g[40] ^= 0x55
        #expect(throws: MinewatchError.self) { try inflate(g) }
    }

    @Test func decompressionBombIsStopped() throws {
        let zeros = [UInt8](repeating: 0, count: 64 << 20)
        let bomb = try gzip(zeros)
        #expect(bomb.count < 200_000)
        var limits = DecompressionLimits()
        limits.ratioGrace = 1 << 20
        do {
            _ = try inflate(bomb, limits: limits)
            Issue.record("bomb not stopped")
        } catch {
            #expect(error.code == .limit)
            #expect(error.description.contains("ratio"))
        }
        limits = DecompressionLimits(maxOutput: 1 << 20)
        #expect(throws: MinewatchError.self) { try inflate(bomb, limits: limits) }
    }
}

/// ISA-L's inflater (the default when libisal.so.2 loads) and zlib's must agree byte for byte,
/// refuse the same broken input, and end members and streams the same way.
@Suite struct InflaterTests {
    func inflate(_ data: [UInt8], _ inflater: Inflater, chunk: Int = 1 << 16) throws(MinewatchError) -> [UInt8] {
        let s = try DecompressStream(.gzip, input: SectionStream(source: MemoryByteSource(data), offset: 0, length: Int64(data.count)),
                                     limits: DecompressionLimits(), name: "blob", inflater: inflater)
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: chunk)
        while true {
            let n = try buf.withMutableBytes { (b) throws(MinewatchError) -> Int in try s.read(into: b) }
            if n == 0 { return out }
            out.append(contentsOf: buf[0..<n])
        }
    }

    @Test func isalIsInstalledAndPreferred() throws {
        try prerequisite(Inflater.isal.isAvailable, "libisal.so.2 (ISA-L) is not installed (scripts/install-deps)")
        if ProcessInfo.processInfo.environment["MINEWATCH_INFLATE"] == nil { #expect(Inflater.preferred == .isal) }
    }

    @Test func bothInflatersAgree() throws {
        try prerequisite(Inflater.isal.isAvailable, "libisal.so.2 (ISA-L) is not installed (scripts/install-deps)")
        var rand = Samples.Rand(seed: 19)
        let text = Array(String(repeating: "the layer's tar stream, with text and with runs ", count: 4000).utf8)
        let mixed = text + rand.bytes(300_000) + [UInt8](repeating: 0, count: 200_000) + text
        let third = rand.bytes(70_000)
        let members = try gzip(mixed) + gzip(Array("second".utf8)) + gzip(third)
        for chunk in [1, 7, 4096, 1 << 20] where chunk > 1 || members.count < 2_000_000 {
            let small = chunk == 1 ? try gzip(Array(text.prefix(3000))) : members
            #expect(try inflate(small, .isal, chunk: chunk) == inflate(small, .zlib, chunk: chunk))
        }
        #expect(try inflate(members, .isal) == mixed + Array("second".utf8) + third)
        // A bad CRC in the trailer, a flipped byte in the data and a cut are refused by both.
        var badCRC = try gzip(mixed)
        badCRC[badCRC.count - 6] ^= 0x01
        var flipped = try gzip(mixed)
        flipped[flipped.count / 2] ^= 0x40
        let cut = Array(try gzip(mixed).dropLast(5))
        for broken in [badCRC, flipped, cut] {
            #expect(throws: MinewatchError.self) { try inflate(broken, .isal) }
            #expect(throws: MinewatchError.self) { try inflate(broken, .zlib) }
        }
        do {
            _ = try inflate(badCRC, .isal)
        } catch {
            #expect(error.description.contains("check"))
        }
    }
}

/// Reading a layer ahead on a second thread changes nothing a walk reports.
@Suite struct ReadAheadTests {
    func layer(files: Int, size: Int, seed: UInt64) throws -> [UInt8] {
        var rand = Samples.Rand(seed: seed)
        var tar = TarBuilder()
        for i in 0..<files { tar.file("usr/lib/f\(i)", rand.bytes(size) + Array(String(repeating: "text ", count: size / 5).utf8)) }
        return try gzip(tar.finished())
    }

    func walk(_ bytes: [UInt8], readAhead: Bool, stopAfter: Int = .max) -> (LayerWalker.Result, [String: Int], [String]) {
        var seen: [String: Int] = [:]
        var issues: [String] = []
        let src = MemoryByteSource(bytes)
        let result = LayerWalker(readAhead: readAhead).walk(SectionStream(source: src, offset: 0, length: src.size), name: "layer",
            visit: { (v) throws(MinewatchError) -> Void in
                if seen.count >= stopAfter { throw MinewatchError(.io, operation: "visit", message: "stopped") }
                var buf = [UInt8](repeating: 0, count: 10_000)
                var n = 0
                while true {
                    let got = try buf.withMutableBytes { (b) throws(MinewatchError) -> Int in try v.read(b) }
                    if got == 0 { break }
                    n += got
                }
                seen[v.entry.path] = n
            }, issue: { issues.append($0.message) })
        return (result, seen, issues)
    }

    @Test func sameEntriesAndDigests() throws {
        let bytes = try layer(files: 40, size: 150_000, seed: 7)
        let (a, seenA, issuesA) = walk(bytes, readAhead: true)
        let (b, seenB, issuesB) = walk(bytes, readAhead: false)
        #expect(a.digests != nil)
        #expect(a.digests == b.digests)
        #expect(a.bytes == b.bytes)
        #expect(seenA == seenB && seenA.count == 40)
        #expect(issuesA.isEmpty && issuesB.isEmpty)
        #expect(a.digests?.blob == "sha256:" + SHA256Digest.hex(bytes))
    }

    @Test func errorsSurfaceAndAbandonedWalksEnd() throws {
        var bytes = try layer(files: 20, size: 100_000, seed: 8)
        let (early, seen, issues) = walk(bytes, readAhead: true, stopAfter: 3)
        #expect(seen.count == 3 && early.digests == nil && issues.count == 1)
        bytes[bytes.count - 100] ^= 0xff
        let (broken, _, brokenIssues) = walk(bytes, readAhead: true)
        let (plain, _, plainIssues) = walk(bytes, readAhead: false)
        #expect(broken.digests == nil && plain.digests == nil)
        #expect(brokenIssues == plainIssues && !brokenIssues.isEmpty)
    }
}

@Suite struct LayerStackTests {
    @Test func whiteoutsOpaqueAndReplacement() {
        var l1 = LayerChanges(); l1.written = ["/a/x", "/b/y", "/c/z", "/d"]
        var l2 = LayerChanges(); l2.whiteouts = ["/a/x"]; l2.opaqueDirs = ["/b"]
        var l3 = LayerChanges(); l3.written = ["/c/z"]
        let s = LayerStack(changes: [l1, l2, l3])
        #expect(s.isHidden(path: "/a/x", layer: 0))
        #expect(s.isHidden(path: "/b/y", layer: 0))
        #expect(s.isHidden(path: "/c/z", layer: 0))
        #expect(!s.isHidden(path: "/c/z", layer: 2))
        #expect(!s.isHidden(path: "/d", layer: 0))
        var l4 = LayerChanges(); l4.whiteouts = ["/d"]
        #expect(LayerStack(changes: [l1, l4]).isHidden(path: "/d/inner", layer: 0))
    }
}

@Suite struct DirectoryBlobStoreTests {
    /// A folder image (OCI layout, unpacked save) is read through the confined-path primitive.
    @Test func refusesSymlinksAndDotDot() throws {
        let dir = try TempDir("safe")
        defer { dir.cleanup() }
        _ = try dir.file("root/ok.txt", Array("ok".utf8))
        try FileManager.default.createSymbolicLink(atPath: dir.path + "/root/link", withDestinationPath: "/etc/passwd")
        try FileManager.default.createSymbolicLink(atPath: dir.path + "/root/dirlink", withDestinationPath: "/etc")
        let store = try DirectoryBlobStore(path: dir.path + "/root")
        #expect(try store.open("ok.txt").1 == 2)
        #expect(store.contains("ok.txt"))
        for bad in ["link", "dirlink/passwd", "../root/ok.txt"] {
            #expect(!store.contains(bad))
            #expect(throws: MinewatchError.self) { try store.open(bad) }
        }
    }
}

@Suite struct RootfsWalkerTests {
    /// A name that is not UTF-8 (any byte but NUL and '/' is allowed) is read by its bytes, so a
    /// miner cannot hide behind one.
    @Test func namesThatAreNotUTF8AreRead() throws {
        let dir = try TempDir("walk")
        defer { dir.cleanup() }
        _ = try dir.file("root/ok.txt", Array("ok".utf8))
        let raw: [CChar] = (Array((dir.path + "/root/").utf8) + [0xff, 0xfe, 0x41, 0]).map { CChar(bitPattern: $0) }
        let fd = open(raw, O_WRONLY | O_CREAT | O_EXCL, 0o644)
        #expect(fd >= 0)
        _ = "hidden".withCString { write(fd, $0, 6) }
        close(fd)
        var seen: [String: Int64] = [:]
        var issues: [String] = []
        try RootfsWalker(root: dir.path + "/root").walk(visit: { path, h, size in
            var b = [UInt8](repeating: 0, count: 16)
            let n = b.withUnsafeMutableBytes { read(h.fd, $0.baseAddress, $0.count) }
            seen[path] = size
            #expect(n == Int(size))
        }, issue: { issues.append("\($0.path ?? ""): \($0.message)") })
        #expect(issues.isEmpty, "\(issues)")
        #expect(seen.count == 2 && seen["/ok.txt"] == 2 && seen.values.contains(6), "\(seen)")
    }
}
