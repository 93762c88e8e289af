import Crypto

/// SHA-256 from swift-crypto (BoringSSL, with the CPU's SHA extensions where it has them):
/// whole messages (wallet checksums, test blobs) and streams (layer and blob digests, hashed
/// while they are read).
public enum SHA256Digest {
    public static func hash(_ message: [UInt8]) -> [UInt8] { Array(Crypto.SHA256.hash(data: message)) }

    public static func hex(_ message: [UInt8]) -> String { hexString(hash(message)) }

    public static func hexString(_ bytes: some Sequence<UInt8>) -> String {
        let digits: [UInt8] = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// A SHA-256 fed piece by piece.
public struct StreamingSHA256: Sendable {
    var hasher = Crypto.SHA256()
    public private(set) var count: Int64 = 0
    public init() {}

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        hasher.update(bufferPointer: bytes)
        count += Int64(bytes.count)
    }

    /// `sha256:<hex>` of everything fed so far.
    public func digest() -> String {
        "sha256:" + SHA256Digest.hexString(hasher.finalize())
    }
}
