import MinewatchCore
import MinewatchModel

/// What a layer changes in the filesystem: its whiteouts and the paths it writes.
public struct LayerChanges: Sendable, Hashable, Codable {
    /// Paths deleted by `.wh.NAME` entries.
    public var whiteouts: Set<String> = []
    /// Folders made opaque by `.wh..wh..opq`: lower layers' contents are hidden.
    public var opaqueDirs: Set<String> = []
    /// Paths of non-folder entries this layer writes (they replace lower layers' files).
    public var written: Set<String> = []
    public init() {}
}

/// Walks the tar entries of one layer stream, handing each regular file's content to the caller.
public struct LayerWalker {
    public var limits: DecompressionLimits
    public var chunkSize = 256 * 1024
    /// Read, hash and inflate on a second thread, ahead of the tar reader (see `ReadAheadLayer`).
    public var readAhead: Bool

    public init(limits: DecompressionLimits = DecompressionLimits(), readAhead: Bool = true) {
        self.limits = limits
        self.readAhead = readAhead
    }

    public struct Visit {
        public var entry: TarEntry
        /// Reads the next bytes of the entry; 0 at its end.
        public let read: (UnsafeMutableRawBufferPointer) throws(MinewatchError) -> Int
    }

    /// What a walk produced: the layer's changes, the uncompressed bytes walked, and the digests
    /// of the stored and of the uncompressed bytes, hashed while they streamed past (nil when the
    /// stream could not be read to its end).
    public struct Result: Sendable {
        public var changes: LayerChanges
        public var bytes: Int64
        public var digests: LayerDigests?
    }

    /// Walks a (possibly compressed) layer. Entry-level problems are reported through `issue`
    /// and the walk goes on; a problem that leaves the stream unreadable ends the walk with an issue.
    public func walk(
        _ raw: ByteStream, name: String,
        visit: (Visit) throws(MinewatchError) -> Void,
        issue: (ScanIssue) -> Void
    ) -> Result {
        var changes = LayerChanges()
        let hashed: HashedLayerStream
        do {
            hashed = try HashedLayerStream(raw, limits: limits, name: name)
        } catch {
            issue(ScanIssue(message: error.description))
            return Result(changes: changes, bytes: 0, digests: nil)
        }
        let ahead = readAhead ? ReadAheadLayer(hashed) : nil
        let reader = TarReader(stream: ahead ?? hashed.content, name: name)
        do {
            while let e = try reader.next() {
                if e.escapesRoot {
                    issue(ScanIssue(path: e.path, message: "\(name) at offset \(e.headerOffset): entry path leaves the layer root ('..'); scanned, never extracted"))
                }
                let base = e.path.split(separator: "/").last.map(String.init) ?? ""
                let dir = String(e.path.dropLast(base.count + 1))
                if base == ".wh..wh..opq" {
                    changes.opaqueDirs.insert(dir.isEmpty ? "/" : dir)
                    continue
                }
                if base.hasPrefix(".wh.") {
                    changes.whiteouts.insert((dir.isEmpty ? "" : dir) + "/" + base.dropFirst(4))
                    continue
                }
                if e.kind != .directory { changes.written.insert(e.path) }
                if e.kind.carriesData {
                    try visit(Visit(entry: e, read: { (buf) throws(MinewatchError) -> Int in try reader.readContent(into: buf) }))
                }
            }
        } catch {
            issue(ScanIssue(path: reader.current?.path, message: error.description))
            return Result(changes: changes, bytes: reader.position, digests: nil)
        }
        do {
            let digests: LayerDigests
            if let ahead { digests = try ahead.finish() } else { digests = try hashed.finish() }
            return Result(changes: changes, bytes: reader.position, digests: digests)
        } catch {
            issue(ScanIssue(message: error.description))
            return Result(changes: changes, bytes: reader.position, digests: nil)
        }
    }

    /// Only the digests of a layer (decompressing, not parsing): how a cached result is checked
    /// against bytes that are not content-addressed before it stands for them.
    public func digests(_ raw: ByteStream, name: String) throws(MinewatchError) -> LayerDigests {
        try HashedLayerStream(raw, limits: limits, name: name).finish()
    }
}

/// SHA-256 of a layer's stored bytes and of its uncompressed tar, as `sha256:<hex>`.
public struct LayerDigests: Sendable, Hashable, Codable {
    public var blob: String
    public var content: String
    public init(blob: String, content: String) {
        self.blob = blob
        self.content = content
    }
}

/// A layer's bytes, decompressed when they are gzip or zstd, hashed twice on the way: the stored
/// bytes and the uncompressed ones (once when the layer is not compressed). Nothing is read twice.
final class HashedLayerStream {
    let rawHash: HashingStream
    let contentHash: HashingStream?
    /// The uncompressed stream, for the tar reader.
    let content: ByteStream
    /// The uncompressed stream before its hash (the stored bytes' stream when not compressed):
    /// what `ReadAheadLayer` reads on its own thread, leaving the second hash to the reader's.
    let unhashed: ByteStream
    var compressed: Bool { contentHash != nil }

    init(_ raw: ByteStream, limits: DecompressionLimits, name: String) throws(MinewatchError) {
        rawHash = HashingStream(raw)
        let (inner, compression) = try autoDecompress(rawHash, limits: limits, name: name)
        unhashed = inner
        if compression == .none {
            contentHash = nil
            content = inner
        } else {
            let h = HashingStream(inner)
            contentHash = h
            content = h
        }
    }

    /// Reads what the tar reader left (end-of-archive padding, trailing bytes) and returns both digests.
    func finish() throws(MinewatchError) -> LayerDigests {
        try drain(content)
        if contentHash != nil { try drain(rawHash) }
        let blob = rawHash.hasher.digest()
        return LayerDigests(blob: blob, content: contentHash?.hasher.digest() ?? blob)
    }

    /// Once `unhashed` is read to its end: reads the stored bytes that follow the compressed data
    /// and returns their digest.
    func finishStored() throws(MinewatchError) -> String {
        if compressed { try drain(rawHash) }
        return rawHash.hasher.digest()
    }

    func drain(_ s: ByteStream) throws(MinewatchError) {
        var buf = [UInt8](repeating: 0, count: 256 * 1024)
        while try buf.withMutableBytes({ (b) throws(MinewatchError) -> Int in try s.read(into: b) }) > 0 {}
    }
}

/// Hashes (SHA-256) every byte read through it.
public final class HashingStream: ByteStream {
    let inner: ByteStream
    public private(set) var hasher = StreamingSHA256()
    public init(_ inner: ByteStream) { self.inner = inner }
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(MinewatchError) -> Int {
        let n = try inner.read(into: buffer)
        if n > 0 { hasher.update(UnsafeRawBufferPointer(rebasing: buffer[0..<n])) }
        return n
    }
}

/// Decides whether a file seen in one layer is still in the final filesystem.
public struct LayerStack {
    public var changes: [LayerChanges]
    public init(changes: [LayerChanges]) { self.changes = changes }

    /// True when a layer above `layer` deletes or replaces `path` (or one of its parent folders).
    public func isHidden(path: String, layer: Int) -> Bool {
        guard layer + 1 < changes.count else { return false }
        var ancestors: [String] = []
        var p = path
        while let slash = p.lastIndex(of: "/"), slash != p.startIndex {
            p = String(p[..<slash])
            ancestors.append(p)
        }
        ancestors.append("/")
        for c in changes[(layer + 1)...] {
            if c.whiteouts.contains(path) || c.written.contains(path) { return true }
            for a in ancestors {
                if c.whiteouts.contains(a) || c.opaqueDirs.contains(a) || c.written.contains(a) { return true }
            }
        }
        return false
    }
}
