import Foundation
import MinewatchCore

/// Writing to a registry through the OCI distribution API (what storing an attestation needs):
/// blobs uploaded monolithically (POST then PUT with the digest), manifests PUT by tag or digest,
/// raw manifests read back by tag, and whether the registry answers the referrers API.
extension RegistryClient {
    /// The bytes and media type of the manifest `reference` names, or nil when the registry has
    /// none (404). `accept` is the media types asked for.
    public func rawManifest(_ reference: String, accept: String) throws(MinewatchError) -> (bytes: [UInt8], mediaType: String)? {
        let (status, headers, body) = try get("/v2/\(ref.repository)/manifests/\(reference)", accept: accept)
        let data = try body.readAll(limit: 4 << 20, what: "manifest")
        if status == 404 { return nil }
        guard status == 200 else {
            throw MinewatchError(.network, operation: "get manifest", subject: "\(ref.registry)/\(ref.repository):\(reference)",
                                 message: "registry answered \(status): \(String(decoding: data.prefix(200), as: UTF8.self))")
        }
        if reference.hasPrefix("sha256:"), let mm = ContentDigest.check(reference, bytes: data, location: "manifest \(reference)") {
            throw MinewatchError(.format, operation: "get manifest", subject: ref.description, message: "manifest hashes to \(mm.actual), not \(reference)")
        }
        return (data, headers["content-type"] ?? "")
    }

    /// Uploads `bytes` as a blob unless the repository has it already; returns its digest.
    @discardableResult
    public func pushBlob(_ bytes: [UInt8]) throws(MinewatchError) -> String {
        let digest = ContentDigest.of(bytes)
        let subject = "\(ref.registry)/\(ref.repository) \(digest)"
        let (have, _, _) = try send("HEAD", "/v2/\(ref.repository)/blobs/\(digest)")
        if have == 200 { return digest }
        let (status, headers, body) = try send("POST", "/v2/\(ref.repository)/blobs/uploads/")
        let answer = try body.readAll(limit: 1 << 20, what: "upload")
        guard status == 202, let location = headers["location"] else {
            throw MinewatchError(.network, operation: "start upload", subject: subject,
                                 message: "registry answered \(status): \(String(decoding: answer.prefix(200), as: UTF8.self))")
        }
        let sep = location.contains("?") ? "&" : "?"
        let (done, _, doneBody) = try send("PUT", location + "\(sep)digest=\(digest)", headers: ["Content-Type": "application/octet-stream"], body: bytes)
        let doneText = try doneBody.readAll(limit: 1 << 20, what: "upload")
        guard done == 201 else {
            throw MinewatchError(.network, operation: "upload blob", subject: subject,
                                 message: "registry answered \(done): \(String(decoding: doneText.prefix(200), as: UTF8.self))")
        }
        return digest
    }

    /// Stores a manifest under `reference` (a tag, or its own digest); returns its digest.
    @discardableResult
    public func pushManifest(_ bytes: [UInt8], mediaType: String, reference: String) throws(MinewatchError) -> String {
        let (status, _, body) = try send("PUT", "/v2/\(ref.repository)/manifests/\(reference)", headers: ["Content-Type": mediaType], body: bytes)
        let text = try body.readAll(limit: 1 << 20, what: "manifest")
        guard status == 201 || status == 200 else {
            throw MinewatchError(.network, operation: "put manifest", subject: "\(ref.registry)/\(ref.repository):\(reference)",
                                 message: "registry answered \(status): \(String(decoding: text.prefix(300), as: UTF8.self))")
        }
        return ContentDigest.of(bytes)
    }

    /// The manifests that name `digest` as their subject, from OCI 1.1's referrers API; nil when
    /// the registry does not serve it (distribution 2.8 answers 404).
    public func referrers(_ digest: String) -> [String]? {
        guard let (status, headers, body) = try? get("/v2/\(ref.repository)/referrers/\(digest)", accept: MediaTypes.ociIndex),
              let bytes = try? body.readAll(limit: 4 << 20, what: "referrers"),
              status == 200, (headers["content-type"] ?? "").hasPrefix(MediaTypes.ociIndex),
              let index = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] else { return nil }
        return ((index["manifests"] as? [[String: Any]]) ?? []).compactMap { $0["digest"] as? String }.filter(ContentDigest.isVerifiableSHA256)
    }
}
