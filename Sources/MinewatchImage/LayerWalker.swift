import MinewatchCore

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

    public init(limits: DecompressionLimits = DecompressionLimits()) { self.limits = limits }

    public struct Visit {
        public var entry: TarEntry
        /// Reads the next bytes of the entry; 0 at its end.
        public let read: (UnsafeMutableRawBufferPointer) throws(MinewatchError) -> Int
    }

    /// Walks a (possibly compressed) layer. Entry-level problems are reported through `issue`
    /// and the walk goes on; a problem that leaves the stream unreadable ends the walk with an issue.
    /// Returns the layer's changes and the number of uncompressed bytes walked.
    public func walk(
        _ raw: ByteStream, name: String,
        visit: (Visit) throws(MinewatchError) -> Void,
        issue: (ScanIssue) -> Void
    ) -> (LayerChanges, Int64) {
        var changes = LayerChanges()
        let stream: ByteStream
        do {
            stream = try autoDecompress(raw, limits: limits, name: name).0
        } catch {
            issue(ScanIssue(message: error.description))
            return (changes, 0)
        }
        let reader = TarReader(stream: stream, name: name)
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
        }
        return (changes, reader.position)
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
