import Foundation
import MinewatchCore

/// One layer of an image, in order from the base.
public struct LayerDescriptor: Sendable, Hashable {
    public var index: Int
    /// `sha256:...`: how reports name the layer. The blob digest for OCI and registries, the
    /// diff id for docker-archive. A claim of the image until the bytes were hashed.
    public var digest: String
    public var mediaType: String?
    /// Stored (possibly compressed) size when known.
    public var size: Int64?
    /// The digest the image claims for the stored (possibly compressed) bytes: the OCI or
    /// registry descriptor's digest, or the `blobs/sha256/<hex>` name of a docker-archive layer.
    public var blobDigest: String?
    /// The digest the image config claims for the uncompressed tar (`rootfs.diff_ids[index]`).
    public var diffID: String?
    public init(index: Int, digest: String, mediaType: String? = nil, size: Int64? = nil,
                blobDigest: String? = nil, diffID: String? = nil) {
        self.index = index
        self.digest = digest
        self.mediaType = mediaType
        self.size = size
        self.blobDigest = blobDigest
        self.diffID = diffID
    }
}

/// A digest an image claims for some content, and the digest of the content actually read.
public struct DigestMismatch: Sendable, Hashable, Codable {
    /// What the claim is about: `manifest:config`, `index:manifests[0]`, `manifest:layers[1]`,
    /// `config:rootfs.diff_ids[1]`.
    public var location: String
    public var claimed: String
    public var actual: String
    /// The layer digest the report names, when the claim is about a layer.
    public var layer: String?
    public init(location: String, claimed: String, actual: String, layer: String? = nil) {
        self.location = location
        self.claimed = claimed
        self.actual = actual
        self.layer = layer
    }
}

/// Digests of the form `sha256:<64 hex>`, the only algorithm images use in practice.
public enum ContentDigest {
    /// True for a well-formed SHA-256 digest (lower-case hex), which this reader can verify.
    public static func isVerifiableSHA256(_ d: String) -> Bool {
        guard d.hasPrefix("sha256:") else { return false }
        let hex = d.utf8.dropFirst(7)
        return hex.count == 64 && hex.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }
    }

    /// `sha256:<hex>` of `bytes`.
    public static func of(_ bytes: [UInt8]) -> String { "sha256:" + SHA256Digest.hex(bytes) }

    /// A mismatch when `claimed` is a SHA-256 digest that `bytes` do not have; nil when it holds
    /// or cannot be checked (another algorithm: reported as unverified by the caller's policy).
    public static func check(_ claimed: String, bytes: [UInt8], location: String) -> DigestMismatch? {
        guard isVerifiableSHA256(claimed) else { return nil }
        let actual = of(bytes)
        return actual == claimed ? nil : DigestMismatch(location: location, claimed: claimed, actual: actual)
    }
}

/// The parts of an image config that are scanned as text.
public struct ImageConfigInfo: Sendable, Hashable {
    public var entrypoint: [String] = []
    public var cmd: [String] = []
    public var env: [String] = []
    public var labels: [String: String] = [:]
    /// `created_by` of each history entry (the Dockerfile instructions).
    public var history: [String] = []
    public var diffIDs: [String] = []
    public var os: String?
    public var architecture: String?
    public var workingDir: String?
    public init() {}

    static let shells: Set<String> = ["sh", "bash", "ash", "dash", "zsh", "busybox"]
    static let initWrappers: Set<String> = ["tini", "dumb-init", "catatonit", "s6-svscan", "gosu", "su-exec", "exec", "env", "nohup", "xvfb-run"]
    static let interpreters: Set<String> = ["node", "nodejs", "python", "python2", "python3", "perl", "ruby", "php", "bun", "deno", "dotnet", "java"]

    /// The files that the image's Entrypoint/Cmd runs, as absolute paths in the image: the
    /// program (through WorkingDir for a relative path, through PATH for a bare name) and, for
    /// an interpreter, its script; through init wrappers (tini, dumb-init) and `sh -c "..."`.
    /// Best effort: candidates for every PATH directory.
    public var runPaths: Set<String> {
        var argv = entrypoint + cmd
        var out = Set<String>()
        let path = env.first { $0.hasPrefix("PATH=") }.map { String($0.dropFirst(5)) } ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        let dirs = path.split(separator: ":").map(String.init).filter { $0.hasPrefix("/") }
        let wd = workingDir.flatMap { $0.hasPrefix("/") ? $0 : nil } ?? "/"
        func resolve(_ p: String, searchPath: Bool) -> [String] {
            if p.hasPrefix("/") { return [Self.normalize(p)] }
            if p.contains("/") || !searchPath { return [Self.normalize(wd + "/" + p)] }
            return dirs.map { Self.normalize($0 + "/" + p) }
        }
        var hops = 0
        while let first = argv.first, hops < 4 {
            hops += 1
            let base = String(first.split(separator: "/").last ?? "")
            if Self.shells.contains(base), let c = argv.firstIndex(of: "-c"), c + 1 < argv.count {
                // sh -c "exec ./app --flag": the script's first command word.
                argv = argv[c + 1].split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == ";" || $0 == "&" }).map(String.init)
                continue
            }
            if Self.initWrappers.contains(base) {
                argv = Array(argv.dropFirst().drop { $0.hasPrefix("-") || $0.contains("=") })
                continue
            }
            out.formUnion(resolve(first, searchPath: true))
            if Self.interpreters.contains(base) || base.hasPrefix("python3."),
               let script = argv.dropFirst().first(where: { !$0.hasPrefix("-") }) {
                out.formUnion(resolve(script, searchPath: false))
            }
            break
        }
        return out
    }

    /// `/app/./x/../y` as `/app/y`.
    static func normalize(_ p: String) -> String {
        var parts: [Substring] = []
        for c in p.split(separator: "/") {
            if c == "." || c.isEmpty { continue }
            if c == ".." { _ = parts.popLast(); continue }
            parts.append(c)
        }
        return "/" + parts.joined(separator: "/")
    }

    /// Parses an OCI or Docker image config. Unknown or oddly typed fields are ignored.
    public static func parse(_ data: [UInt8], name: String) throws(MinewatchError) -> ImageConfigInfo {
        let obj: Any
        do { obj = try JSONSerialization.jsonObject(with: Data(data)) } catch {
            throw MinewatchError(.format, operation: "parse image config", subject: name, message: "not valid JSON")
        }
        guard let top = obj as? [String: Any] else {
            throw MinewatchError(.format, operation: "parse image config", subject: name, message: "not a JSON object")
        }
        var info = ImageConfigInfo()
        let cfg = (top["config"] as? [String: Any]) ?? (top["container_config"] as? [String: Any]) ?? [:]
        func strings(_ v: Any?) -> [String] {
            if let a = v as? [Any] { return a.compactMap { $0 as? String } }
            if let s = v as? String { return [s] }
            return []
        }
        info.entrypoint = strings(cfg["Entrypoint"])
        info.cmd = strings(cfg["Cmd"])
        info.env = strings(cfg["Env"])
        info.workingDir = cfg["WorkingDir"] as? String
        if let l = cfg["Labels"] as? [String: Any] {
            for (k, v) in l { if let s = v as? String { info.labels[k] = s } }
        }
        if let h = top["history"] as? [[String: Any]] {
            info.history = h.map { ($0["created_by"] as? String) ?? "" }
        }
        if let r = top["rootfs"] as? [String: Any] { info.diffIDs = strings(r["diff_ids"]) }
        info.os = top["os"] as? String
        info.architecture = top["architecture"] as? String
        return info
    }
}

/// A container image whose layers can be opened one at a time.
public protocol ImageSource: AnyObject {
    /// docker-archive, oci-archive, oci-layout, engine-image, registry-image
    var kind: String { get }
    var references: [String] { get }
    var configDigest: String? { get }
    var config: ImageConfigInfo { get }
    var layers: [LayerDescriptor] { get }
    /// Digest claims about the manifest and config that did not hold when they were read
    /// (layer digests are checked by whoever streams the layers).
    var digestMismatches: [DigestMismatch] { get }
    /// True when layers are fetched by their blob digest from a store that conforming clients
    /// verify (a registry): a result known for that digest may stand for the layer without
    /// fetching it. False for archives and folders, whose bytes must be hashed to be trusted.
    var contentAddressed: Bool { get }
    /// The digest of the manifest or index the reference named, computed from its bytes; nil
    /// where the source has none that a registry would know it by (archives, folders, engines).
    var manifestDigest: String? { get }
    /// The layer's stored bytes (possibly gzip or zstd compressed).
    func openLayer(_ layer: LayerDescriptor) throws(MinewatchError) -> ByteStream
}

extension ImageSource {
    public var contentAddressed: Bool { false }
    public var manifestDigest: String? { nil }
}

/// Where blobs of an archive or layout live: a tar file's entries or a folder's files.
public protocol BlobStore: AnyObject {
    var name: String { get }
    func contains(_ path: String) -> Bool
    func open(_ path: String) throws(MinewatchError) -> (ByteStream, Int64)
}

extension BlobStore {
    func readSmall(_ path: String, limit: Int = 16 << 20) throws(MinewatchError) -> [UInt8] {
        let (s, _) = try open(path)
        return try s.readAll(limit: limit, what: "\(name):\(path)")
    }
}

/// The entries of an uncompressed tar file, indexed in one pass of header reads and seeks.
public final class TarIndex: BlobStore {
    public struct Item: Sendable { public var offset: Int64; public var size: Int64; public var kind: TarEntry.Kind; public var link: String }
    public let source: ByteSource
    public private(set) var items: [String: Item] = [:]
    public var name: String { source.name }
    public static let maxEntries = 1_000_000

    public init(source: ByteSource) throws(MinewatchError) {
        self.source = source
        let reader = TarReader(stream: SectionStream(source: source, offset: 0, length: source.size), name: source.name)
        var count = 0
        while let e = try reader.next() {
            count += 1
            if count > Self.maxEntries {
                throw MinewatchError(.limit, operation: "index archive", subject: source.name, message: "more than \(Self.maxEntries) entries")
            }
            let key = String(e.path.dropFirst())
            items[key] = Item(offset: e.dataOffset, size: e.size, kind: e.kind, link: e.linkTarget)
        }
    }

    public func contains(_ path: String) -> Bool { resolve(path) != nil }

    func resolve(_ path: String, depth: Int = 0) -> Item? {
        let key = String(TarReader.normalize(path).dropFirst())
        guard let item = items[key] else { return nil }
        // Docker archives sometimes store a layer as a link to an identical one.
        if (item.kind == .symlink || item.kind == .hardlink) && depth < 8 {
            let target: String
            if item.kind == .symlink && !item.link.hasPrefix("/") {
                let dir = key.split(separator: "/").dropLast().joined(separator: "/")
                target = dir.isEmpty ? item.link : dir + "/" + item.link
            } else {
                target = item.link
            }
            if TarReader.normalize(target).split(separator: "/").contains("..") { return nil }
            return resolve(target, depth: depth + 1)
        }
        return item.kind == .regular ? item : nil
    }

    public func open(_ path: String) throws(MinewatchError) -> (ByteStream, Int64) {
        guard let item = resolve(path) else {
            throw MinewatchError(.notFound, operation: "open blob", subject: "\(source.name):\(path)", message: "no such entry in the archive")
        }
        return (SectionStream(source: source, offset: item.offset, length: item.size), item.size)
    }
}

/// Blobs in a folder (OCI layout, unpacked docker save), opened without following symlinks.
public final class DirectoryBlobStore: BlobStore {
    let dir: ConfinedRoot
    public var name: String { dir.path }
    public init(path: String) throws(MinewatchError) {
        do { dir = try ConfinedRoot(path: path, links: .refused) } catch { throw error.error }
    }

    public func contains(_ path: String) -> Bool { (try? dir.openFile(path)) != nil }

    public func open(_ path: String) throws(MinewatchError) -> (ByteStream, Int64) {
        let h: FileHandleFD
        do { h = try dir.openFile(path) } catch { throw error.error }
        let src = try FileByteSource(handle: h)
        return (SectionStream(source: src, offset: 0, length: src.size), src.size)
    }
}
