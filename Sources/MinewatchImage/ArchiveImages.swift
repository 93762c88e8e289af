import Foundation
import MinewatchCore

func parseJSON(_ bytes: [UInt8], what: String) throws(MinewatchError) -> Any {
    do { return try JSONSerialization.jsonObject(with: Data(bytes)) } catch {
        throw MinewatchError(.format, operation: "parse \(what)", subject: what, message: "not valid JSON")
    }
}

/// The digest a blob path names (`blobs/sha256/<hex>`, as Docker 25+ archives store layers), if any.
func digestNamed(byPath path: String) -> String? {
    let comps = path.split(separator: "/")
    guard comps.count >= 3, comps[comps.count - 3] == "blobs" else { return nil }
    let d = "\(comps[comps.count - 2]):\(comps[comps.count - 1])"
    return ContentDigest.isVerifiableSHA256(d) ? d : nil
}

/// A digest usable as a blob path: `alg:hex` with a known shape (no `/`, no `..`).
func blobPath(_ digest: String, what: String) throws(MinewatchError) -> String {
    let parts = digest.split(separator: ":", maxSplits: 1).map(String.init)
    guard parts.count == 2,
          parts[0].allSatisfy({ $0.isLetter || $0.isNumber || $0 == "+" || $0 == "." || $0 == "_" || $0 == "-" }),
          !parts[0].isEmpty, parts[1].count >= 32, parts[1].count <= 128,
          parts[1].allSatisfy({ $0.isHexDigit }) else {
        throw MinewatchError(.format, operation: "read \(what)", subject: what, message: "invalid digest '\(digest.prefix(80))'")
    }
    return "blobs/\(parts[0])/\(parts[1])"
}

/// An image from `docker save` / `podman save --format docker-archive` (archive or unpacked folder).
public final class DockerArchiveImage: ImageSource {
    public let kind = "docker-archive"
    public let references: [String]
    public let configDigest: String?
    public let config: ImageConfigInfo
    public let layers: [LayerDescriptor]
    public let digestMismatches: [DigestMismatch]
    let store: BlobStore
    let layerPaths: [String]

    /// All images described by the archive's `manifest.json`.
    public static func load(store: BlobStore) throws(MinewatchError) -> [DockerArchiveImage] {
        let what = "\(store.name):manifest.json"
        guard let list = try parseJSON(try store.readSmall("manifest.json"), what: what) as? [[String: Any]], !list.isEmpty else {
            throw MinewatchError(.format, operation: "read manifest.json", subject: store.name, message: "expected a non-empty JSON array")
        }
        var images: [DockerArchiveImage] = []
        for m in list {
            guard let cfgPath = m["Config"] as? String, let layerPaths = m["Layers"] as? [String] else {
                throw MinewatchError(.format, operation: "read manifest.json", subject: store.name, message: "entry without Config or Layers")
            }
            let cfgBytes = try store.readSmall(cfgPath)
            let cfg = try ImageConfigInfo.parse(cfgBytes, name: "\(store.name):\(cfgPath)")
            // The config is named by its digest: `<hex>.json`, or `blobs/sha256/<hex>` (Docker 25+).
            let cfgName = cfgPath.split(separator: "/").last.map { String($0).replacingOccurrences(of: ".json", with: "") } ?? cfgPath
            let claimedConfig = digestNamed(byPath: cfgPath) ?? "sha256:\(cfgName)"
            var mismatches: [DigestMismatch] = []
            if let m = ContentDigest.check(claimedConfig, bytes: cfgBytes, location: "manifest.json:Config") { mismatches.append(m) }
            var layers: [LayerDescriptor] = []
            for (i, p) in layerPaths.enumerated() {
                let digest: String
                let diffID = i < cfg.diffIDs.count ? cfg.diffIDs[i] : nil
                if let diffID { digest = diffID } else {
                    let comps = p.split(separator: "/").map(String.init)
                    let hex = comps.first { $0.count == 64 && $0.allSatisfy(\.isHexDigit) } ?? p
                    digest = "sha256:\(hex)"
                }
                let size: Int64? = (store as? TarIndex)?.items[p]?.size
                layers.append(LayerDescriptor(index: i, digest: digest, mediaType: nil, size: size,
                                              blobDigest: digestNamed(byPath: p), diffID: diffID))
            }
            images.append(DockerArchiveImage(
                store: store, references: (m["RepoTags"] as? [String]) ?? [], configDigest: claimedConfig,
                config: cfg, layers: layers, layerPaths: layerPaths, digestMismatches: mismatches))
        }
        return images
    }

    init(store: BlobStore, references: [String], configDigest: String?, config: ImageConfigInfo,
         layers: [LayerDescriptor], layerPaths: [String], digestMismatches: [DigestMismatch]) {
        self.store = store
        self.references = references
        self.configDigest = configDigest
        self.config = config
        self.layers = layers
        self.layerPaths = layerPaths
        self.digestMismatches = digestMismatches
    }

    public func openLayer(_ layer: LayerDescriptor) throws(MinewatchError) -> ByteStream {
        try store.open(layerPaths[layer.index]).0
    }
}

/// The platform to pick from a multi-platform index (`--platform linux/arm64`).
public struct Platform: Sendable, Hashable, CustomStringConvertible {
    public var os: String
    public var architecture: String
    public var variant: String?
    public init(os: String, architecture: String, variant: String? = nil) {
        self.os = os
        self.architecture = architecture
        self.variant = variant
    }
    public init?(parsing s: String) {
        let p = s.split(separator: "/").map(String.init)
        guard p.count >= 2, p.count <= 3 else { return nil }
        self.init(os: p[0], architecture: p[1], variant: p.count == 3 ? p[2] : nil)
    }
    public static var host: Platform {
        #if arch(arm64)
        return Platform(os: "linux", architecture: "arm64")
        #else
        return Platform(os: "linux", architecture: "amd64")
        #endif
    }
    public var description: String { [os, architecture, variant].compactMap { $0 }.joined(separator: "/") }

    func matches(_ d: [String: Any]) -> Bool {
        guard let p = d["platform"] as? [String: Any] else { return false }
        if (p["os"] as? String) != os || (p["architecture"] as? String) != architecture { return false }
        if let variant, let v = p["variant"] as? String, v != variant { return false }
        return true
    }
}

public enum MediaTypes {
    public static let ociManifest = "application/vnd.oci.image.manifest.v1+json"
    public static let ociIndex = "application/vnd.oci.image.index.v1+json"
    public static let ociConfig = "application/vnd.oci.image.config.v1+json"
    /// Every manifest type `RegistryClient` reads, for an Accept header.
    public static var manifestAccept: String { RegistryClient.manifestAccept }
    static let indexTypes: Set<String> = [
        "application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
}

/// Picks image manifests out of an OCI index (following nested indexes and platforms).
/// Returns (manifest JSON, reference name) pairs. Every manifest fetched by digest is hashed;
/// a mismatch is appended to `mismatches` and the manifest is still used (its layers are scanned).
public func resolveManifests(
    index: [String: Any], platform: Platform?, what: String, depth: Int = 0,
    mismatches: inout [DigestMismatch],
    fetch: (String) throws(MinewatchError) -> [UInt8]
) throws(MinewatchError) -> [([String: Any], String?)] {
    guard depth < 4 else { throw MinewatchError(.format, operation: "read index", subject: what, message: "indexes nested too deep") }
    guard let descs = index["manifests"] as? [[String: Any]] else {
        throw MinewatchError(.format, operation: "read index", subject: what, message: "no 'manifests' list")
    }
    var candidates = descs.filter { ($0["platform"] as? [String: Any])?["architecture"] as? String != "unknown" }
    if descs.count > 1 || platform != nil {
        let want = platform ?? Platform.host
        let withPlatform = candidates.filter { $0["platform"] != nil }
        if !withPlatform.isEmpty {
            candidates = withPlatform.filter { want.matches($0) }
            if candidates.isEmpty {
                let have = withPlatform.compactMap { d -> String? in
                    guard let p = d["platform"] as? [String: Any] else { return nil }
                    return [p["os"] as? String, p["architecture"] as? String, p["variant"] as? String].compactMap { $0 }.joined(separator: "/")
                }
                throw MinewatchError(.notFound, operation: "select platform", subject: what,
                                     message: "no image for \(want); the index has \(have.joined(separator: ", "))")
            }
        }
    }
    var out: [([String: Any], String?)] = []
    for (i, d) in candidates.enumerated() {
        guard let digest = d["digest"] as? String else { continue }
        let ref = (d["annotations"] as? [String: Any])?["org.opencontainers.image.ref.name"] as? String
        let bytes = try fetch(digest)
        if let m = ContentDigest.check(digest, bytes: bytes, location: "index:manifests[\(i)]") { mismatches.append(m) }
        guard let obj = try parseJSON(bytes, what: "\(what) \(digest)") as? [String: Any] else {
            throw MinewatchError(.format, operation: "read manifest", subject: "\(what) \(digest)", message: "not a JSON object")
        }
        let mt = (obj["mediaType"] as? String) ?? (d["mediaType"] as? String) ?? ""
        if MediaTypes.indexTypes.contains(mt) || (obj["manifests"] != nil && obj["layers"] == nil) {
            out += try resolveManifests(index: obj, platform: platform, what: what, depth: depth + 1,
                                        mismatches: &mismatches, fetch: fetch)
        } else {
            out.append((obj, ref))
        }
    }
    return out
}

/// Reads config and layers from an image manifest (OCI or Docker v2 schema 2). Layer
/// descriptors carry the manifest's blob digests and, once the config is known, its diff ids.
func manifestParts(_ m: [String: Any], what: String) throws(MinewatchError) -> (config: String, layers: [LayerDescriptor]) {
    guard let cfg = m["config"] as? [String: Any], let cfgDigest = cfg["digest"] as? String,
          let ls = m["layers"] as? [[String: Any]] else {
        throw MinewatchError(.format, operation: "read manifest", subject: what, message: "no config or layers")
    }
    var layers: [LayerDescriptor] = []
    for (i, l) in ls.enumerated() {
        guard let d = l["digest"] as? String else {
            throw MinewatchError(.format, operation: "read manifest", subject: what, message: "layer \(i) has no digest")
        }
        let size = (l["size"] as? NSNumber)?.int64Value
        layers.append(LayerDescriptor(index: i, digest: d, mediaType: l["mediaType"] as? String, size: size, blobDigest: d))
    }
    return (cfgDigest, layers)
}

/// The config's diff ids attached to manifest layers (by position).
func withDiffIDs(_ layers: [LayerDescriptor], _ cfg: ImageConfigInfo) -> [LayerDescriptor] {
    layers.map { l in
        var l = l
        if l.index < cfg.diffIDs.count { l.diffID = cfg.diffIDs[l.index] }
        return l
    }
}

/// An image in an OCI archive (`podman save --format oci-archive`) or OCI layout folder.
public final class OCIImage: ImageSource {
    public let kind: String
    public let references: [String]
    public let configDigest: String?
    public let config: ImageConfigInfo
    public let layers: [LayerDescriptor]
    public let digestMismatches: [DigestMismatch]
    let store: BlobStore

    public static func load(store: BlobStore, kind: String, platform: Platform?) throws(MinewatchError) -> [OCIImage] {
        let what = store.name
        guard let index = try parseJSON(try store.readSmall("index.json"), what: "\(what):index.json") as? [String: Any] else {
            throw MinewatchError(.format, operation: "read index.json", subject: what, message: "not a JSON object")
        }
        var indexMismatches: [DigestMismatch] = []
        let manifests = try resolveManifests(index: index, platform: platform, what: what, mismatches: &indexMismatches) {
            (digest) throws(MinewatchError) -> [UInt8] in
            try store.readSmall(try blobPath(digest, what: what))
        }
        var out: [OCIImage] = []
        for (m, ref) in manifests {
            let (cfgDigest, layers) = try manifestParts(m, what: what)
            let cfgBytes = try store.readSmall(try blobPath(cfgDigest, what: what))
            let cfg = try ImageConfigInfo.parse(cfgBytes, name: "\(what) config")
            var mismatches = indexMismatches
            if let mm = ContentDigest.check(cfgDigest, bytes: cfgBytes, location: "manifest:config") { mismatches.append(mm) }
            out.append(OCIImage(kind: kind, store: store, references: ref.map { [$0] } ?? [],
                                configDigest: cfgDigest, config: cfg, layers: withDiffIDs(layers, cfg), digestMismatches: mismatches))
        }
        return out
    }

    init(kind: String, store: BlobStore, references: [String], configDigest: String, config: ImageConfigInfo,
         layers: [LayerDescriptor], digestMismatches: [DigestMismatch]) {
        self.kind = kind
        self.store = store
        self.references = references
        self.configDigest = configDigest
        self.config = config
        self.layers = layers
        self.digestMismatches = digestMismatches
    }

    public func openLayer(_ layer: LayerDescriptor) throws(MinewatchError) -> ByteStream {
        try store.open(try blobPath(layer.digest, what: store.name)).0
    }
}
