import Foundation
import MinewatchCore

/// A DSSE envelope (secure-systems-lab/dsse v1.0): a payload, its type, and signatures over the
/// pre-authentication encoding of the two. JSON as cosign, Kyverno and securesystemslib read it:
/// standard padded base64, `keyid` present (empty: it is only a hint, never trusted).
public struct DSSEEnvelope: Sendable, Equatable {
    public struct Signature: Sendable, Equatable {
        public var keyid: String
        public var sig: [UInt8]
        public init(keyid: String, sig: [UInt8]) {
            self.keyid = keyid
            self.sig = sig
        }
    }

    public static let mediaType = "application/vnd.dsse.envelope.v1+json"
    public var payload: [UInt8]
    public var payloadType: String
    public var signatures: [Signature]

    public init(payload: [UInt8], payloadType: String, signatures: [Signature] = []) {
        self.payload = payload
        self.payloadType = payloadType
        self.signatures = signatures
    }

    /// PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body, lengths in ASCII
    /// decimal bytes: what is signed.
    public static func pae(payloadType: String, payload: [UInt8]) -> [UInt8] {
        let type = Array(payloadType.utf8)
        return Array("DSSEv1 \(type.count) ".utf8) + type + Array(" \(payload.count) ".utf8) + payload
    }

    public var pae: [UInt8] { Self.pae(payloadType: payloadType, payload: payload) }

    /// The envelope's JSON (keys in the order the spec lists them).
    public func encoded() -> [UInt8] {
        let q = JSONText.string
        let sigs = signatures.map { "{\"keyid\":\(q($0.keyid)),\"sig\":\(q(Data($0.sig).base64EncodedString()))}" }
        let text = "{\"payload\":\(q(Data(payload).base64EncodedString())),\"payloadType\":\(q(payloadType)),\"signatures\":[\(sigs.joined(separator: ","))]}"
        return Array(text.utf8)
    }

    /// Parses an envelope; the error names the field that is missing or malformed.
    public static func decode(_ bytes: [UInt8], name: String) throws(MinewatchError) -> DSSEEnvelope {
        func bad(_ field: String, _ why: String) -> MinewatchError {
            MinewatchError(.format, operation: "read DSSE envelope", subject: name, message: "\(field): \(why)")
        }
        guard bytes.count <= 16 << 20 else { throw bad("envelope", "larger than 16 MiB") }
        guard let obj = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] else { throw bad("envelope", "not a JSON object") }
        guard let p = obj["payload"] as? String else { throw bad("payload", "missing or not a string") }
        guard let payload = base64(p) else { throw bad("payload", "not base64") }
        guard let type = obj["payloadType"] as? String else { throw bad("payloadType", "missing or not a string") }
        guard let sigs = obj["signatures"] as? [Any] else { throw bad("signatures", "missing or not an array") }
        var out: [Signature] = []
        for (i, s) in sigs.enumerated() {
            guard let d = s as? [String: Any] else { throw bad("signatures[\(i)]", "not an object") }
            guard let sigText = d["sig"] as? String, let sig = base64(sigText) else { throw bad("signatures[\(i)].sig", "missing or not base64") }
            out.append(Signature(keyid: (d["keyid"] as? String) ?? "", sig: sig))
        }
        return DSSEEnvelope(payload: payload, payloadType: type, signatures: out)
    }

    /// Standard or URL-safe base64, padded or not (verifiers must accept either alphabet).
    static func base64(_ s: String) -> [UInt8]? {
        var t = s.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while t.utf8.count % 4 != 0 { t += "=" }
        return Data(base64Encoded: t).map(Array.init)
    }
}
