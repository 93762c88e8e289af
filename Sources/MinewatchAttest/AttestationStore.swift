import Foundation
import MinewatchCore
import MinewatchImage

/// Attestations in an image's registry, where cosign keeps them: an OCI manifest tagged
/// `sha256-<hex>.att` in the image's repository whose layers are DSSE envelopes
/// (`application/vnd.dsse.envelope.v1+json`, annotated with their predicate type). The manifest
/// also names the image as its OCI 1.1 `subject`, so a registry with the referrers API lists it
/// as a referrer; registries without it (distribution 2.8) ignore the field.
public struct AttestationStore {
    public let client: RegistryClient
    public static let signatureAnnotation = "dev.cosignproject.cosign/signature"
    public static let predicateAnnotation = "predicateType"

    public init(client: RegistryClient) {
        self.client = client
    }

    /// `sha256-<hex>.att`, the tag cosign reads.
    public static func tag(for digest: String) -> String { digest.replacingOccurrences(of: ":", with: "-") + ".att" }

    static let manifestAccept = [MediaTypes.ociManifest, "application/vnd.docker.distribution.manifest.v2+json"].joined(separator: ", ")

    /// Stores `envelope` for the image `digest`, replacing an earlier attestation of the same
    /// predicate type and keeping others (cosign's, say). Returns the `.att` manifest's digest.
    @discardableResult
    public func push(_ envelope: DSSEEnvelope, predicateType: String, digest: String) throws(MinewatchError) -> String {
        guard let subject = try client.rawManifest(digest, accept: MediaTypes.manifestAccept) else {
            throw MinewatchError(.notFound, operation: "attach attestation", subject: "\(client.ref.registry)/\(client.ref.repository)@\(digest)",
                                 message: "the registry has no such image")
        }
        let tag = Self.tag(for: digest)
        var layers: [[String: Any]] = []
        if let existing = try client.rawManifest(tag, accept: Self.manifestAccept),
           let obj = try? JSONSerialization.jsonObject(with: Data(existing.bytes)) as? [String: Any],
           let old = obj["layers"] as? [[String: Any]] {
            layers = old.filter { (($0["annotations"] as? [String: Any])?[Self.predicateAnnotation] as? String) != predicateType }
        }
        let body = envelope.encoded()
        let blob = try client.pushBlob(body)
        layers.append([
            "mediaType": DSSEEnvelope.mediaType, "size": body.count, "digest": blob,
            "annotations": [Self.signatureAnnotation: "", Self.predicateAnnotation: predicateType],
        ])
        let diffIDs = layers.compactMap { $0["digest"] as? String }
        let config: [String: Any] = [
            "architecture": "", "os": "", "created": "0001-01-01T00:00:00Z", "config": [String: Any](),
            "rootfs": ["type": "layers", "diff_ids": diffIDs],
        ]
        let configBytes = try Self.json(config)
        let configDigest = try client.pushBlob(configBytes)
        let manifest: [String: Any] = [
            "schemaVersion": 2, "mediaType": MediaTypes.ociManifest,
            "config": ["mediaType": MediaTypes.ociConfig, "size": configBytes.count, "digest": configDigest],
            "layers": layers,
            "subject": ["mediaType": subject.mediaType.isEmpty ? MediaTypes.ociManifest : subject.mediaType, "size": subject.bytes.count, "digest": digest],
        ]
        return try client.pushManifest(try Self.json(manifest), mediaType: MediaTypes.ociManifest, reference: tag)
    }

    /// The envelopes stored for `digest` (each blob checked against its digest), from the `.att`
    /// tag, else from the referrers API where the registry serves it. Empty when there are none.
    public func envelopes(for digest: String) throws(MinewatchError) -> [(bytes: [UInt8], name: String)] {
        var manifests: [(bytes: [UInt8], name: String)] = []
        if let att = try client.rawManifest(Self.tag(for: digest), accept: Self.manifestAccept) {
            manifests.append((att.bytes, Self.tag(for: digest)))
        }
        // The referrers API is asked only when cosign's tag holds nothing (one round trip fewer on
        // the common path; what minewatch stores is always under the tag too).
        let referrers = manifests.isEmpty ? (client.referrers(digest) ?? []) : []
        for md in referrers.prefix(32) where !manifests.contains(where: { ContentDigest.of($0.bytes) == md }) {
            guard let m = try client.rawManifest(md, accept: Self.manifestAccept) else { continue }
            manifests.append((m.bytes, "referrer \(md)"))
        }
        var out: [(bytes: [UInt8], name: String)] = []
        for (bytes, name) in manifests {
            guard let obj = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any],
                  let layers = obj["layers"] as? [[String: Any]] else {
                throw MinewatchError(.format, operation: "read attestation manifest", subject: name, message: "not an image manifest with layers")
            }
            for (i, l) in layers.prefix(64).enumerated() where (l["mediaType"] as? String) == DSSEEnvelope.mediaType {
                guard let d = l["digest"] as? String, ContentDigest.isVerifiableSHA256(d) else { continue }
                let blob = try client.blob(d, declaredSize: min((l["size"] as? Int).map(Int64.init) ?? (16 << 20), 16 << 20)).readAll(limit: 16 << 20, what: "attestation")
                if ContentDigest.check(d, bytes: blob, location: "\(name) layers[\(i)]") != nil { continue }
                out.append((blob, "\(client.ref.registry)/\(client.ref.repository):\(name) layers[\(i)]"))
            }
        }
        return out
    }

    static func json(_ obj: [String: Any]) throws(MinewatchError) -> [UInt8] {
        guard let d = try? JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys, .withoutEscapingSlashes]) else {
            throw MinewatchError(.format, operation: "encode manifest", message: "not JSON")
        }
        return Array(d)
    }
}
