import Crypto
import Foundation
import MinewatchCore

/// An ECDSA P-256 signing key (the key type `cosign generate-key-pair` makes), read from a PEM
/// file: PKCS#8 `PRIVATE KEY` or SEC1 `EC PRIVATE KEY` (what `openssl ecparam -genkey` and
/// `openssl genpkey -algorithm EC` write). Signatures are ASN.1 DER over SHA-256, as cosign's.
public struct AttestationSigner: Sendable {
    let key: P256.Signing.PrivateKey
    public let name: String

    public init(pemFile path: String) throws(MinewatchError) {
        let text = try KeyFiles.read(path)
        if text.contains("ENCRYPTED") {
            throw MinewatchError(.unsupported, operation: "read signing key", subject: path,
                                 message: "the key is encrypted; give an unencrypted PKCS#8 or SEC1 P-256 key (openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256)")
        }
        do { key = try P256.Signing.PrivateKey(pemRepresentation: text) } catch {
            throw MinewatchError(.format, operation: "read signing key", subject: path, message: "not an ECDSA P-256 private key in PEM (\(error))")
        }
        name = path
    }

    public var publicKey: TrustedKey { TrustedKey(key: key.publicKey, name: name) }

    public func sign(_ message: [UInt8]) throws(MinewatchError) -> [UInt8] {
        do { return Array(try key.signature(for: message).derRepresentation) } catch {
            throw MinewatchError(.io, operation: "sign", subject: name, message: "\(error)")
        }
    }

    /// Signs the envelope's PAE and appends the signature (keyid empty, as cosign writes).
    public func sign(_ envelope: inout DSSEEnvelope) throws(MinewatchError) {
        envelope.signatures.append(.init(keyid: "", sig: try sign(envelope.pae)))
    }
}

/// A public key trusted to sign attestations (PEM `PUBLIC KEY`, a cosign.pub works).
public struct TrustedKey: Sendable {
    let key: P256.Signing.PublicKey
    /// Where it came from (a file name), for messages.
    public let name: String

    init(key: P256.Signing.PublicKey, name: String) {
        self.key = key
        self.name = name
    }

    public init(pemFile path: String) throws(MinewatchError) {
        try self.init(pem: try KeyFiles.read(path), name: path)
    }

    public init(pem: String, name: String) throws(MinewatchError) {
        do { key = try P256.Signing.PublicKey(pemRepresentation: pem) } catch {
            throw MinewatchError(.format, operation: "read public key", subject: name, message: "not an ECDSA P-256 public key in PEM (\(error))")
        }
        self.name = name
    }

    /// The key's SubjectPublicKeyInfo in PEM.
    public var pem: String { key.pemRepresentation }

    /// SHA-256 of the key's SubjectPublicKeyInfo, hex: how reports name the key.
    public var fingerprint: String { SHA256Digest.hex(Array(key.derRepresentation)) }

    /// True when `sig` (ASN.1 DER, or raw r||s) is this key's signature of `message`.
    public func verifies(_ sig: [UInt8], of message: [UInt8]) -> Bool {
        if let s = try? P256.Signing.ECDSASignature(derRepresentation: sig) { return key.isValidSignature(s, for: message) }
        if sig.count == 64, let s = try? P256.Signing.ECDSASignature(rawRepresentation: sig) { return key.isValidSignature(s, for: message) }
        return false
    }
}

enum KeyFiles {
    static func read(_ path: String) throws(MinewatchError) -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw MinewatchError(.io, operation: "read key", subject: path, message: "cannot read the file")
        }
        guard data.count < 64 << 10 else { throw MinewatchError(.limit, operation: "read key", subject: path, message: "larger than 64 KiB") }
        return String(decoding: data, as: UTF8.self)
    }
}
