import Foundation
import MinewatchModel

/// What HTTP request bodies look like, for the bandwidth model's corroboration: PacketCrypt
/// posts batches of 1024-byte announcements (random bytes) with no Content-Encoding; log
/// shippers post text, metrics clients post bodies with a Content-Encoding (snappy, gzip), backup
/// tools post multi-MiB packs or parts.
public enum BodyShape {
    /// Largest body that counts as a batch of announcements (1024 of them), with room for framing.
    public static let maxBatch = (1 << 20) + 4096
    /// Bits per byte above which a body's first bytes look random (1 KiB of random bytes
    /// measures about 7.8, text 4-6, JSON and protobuf under 7).
    public static let randomBits = 7.2
    /// Fewest bytes of a body's start that are judged.
    public static let minSample = 512

    /// Media types whose content is compressed by nature (an upload of images or archives).
    static func compressedMedia(_ type: String?) -> Bool {
        guard let t = type?.lowercased() else { return false }
        if t.hasPrefix("application/octet-stream") { return false }
        return t.hasPrefix("image/") || t.hasPrefix("video/") || t.hasPrefix("audio/") || t.contains("zip") || t.contains("compressed")
            || t.contains("x-protobuf") || t.contains("snappy") || t.contains("zstd") || t.contains("x-tar") || t.contains("encrypted")
    }

    static func record(size: Int, head: [UInt8], estimated: Bool, headers: [String: String], into facts: inout SessionFacts) {
        guard size > 0 else { return }
        if !estimated {
            facts.exactBodies += 1
            if size % 1024 == 0 && size <= maxBatch { facts.kibFramedBodies += 1 }
        }
        if size > maxBatch { facts.largeBodies += 1 }
        if let enc = headers["content-encoding"], !enc.isEmpty, enc.lowercased() != "identity" {
            facts.encodedBodies += 1
            return
        }
        guard head.count >= minSample, !compressedMedia(headers["content-type"]) else { return }
        if entropy(head) >= randomBits { facts.randomBodies += 1 } else { facts.structuredBodies += 1 }
    }

    /// Shannon entropy in bits per byte.
    public static func entropy(_ b: [UInt8]) -> Double {
        guard !b.isEmpty else { return 0 }
        var counts = [Int](repeating: 0, count: 256)
        for x in b { counts[Int(x)] += 1 }
        let n = Double(b.count)
        var h = 0.0
        for c in counts where c > 0 {
            let p = Double(c) / n
            h -= p * log2(p)
        }
        return h
    }

    /// Reasons the bodies sent to an upload destination say a miner is behind the upload:
    /// announcement framing, or random bodies in clear text. Empty when they do not (or when
    /// none were seen: the connection is encrypted, or there is no capture).
    public static func corroboration(_ sessions: [SessionFacts]) -> [String] {
        let exact = sessions.reduce(0) { $0 + $1.exactBodies }, framed = sessions.reduce(0) { $0 + $1.kibFramedBodies }
        let large = sessions.reduce(0) { $0 + $1.largeBodies }
        let random = sessions.reduce(0) { $0 + $1.randomBodies }, structured = sessions.reduce(0) { $0 + $1.structuredBodies }
        var out: [String] = []
        guard large == 0 else { return out }  // backup packs and multipart parts, not announcement batches
        if exact >= 3 && framed * 10 >= exact * 9 {
            out.append("request bodies framed as announcements (\(framed) of \(exact) are whole multiples of 1024 bytes, none over 1 MiB)")
        }
        if random >= 3 && random * 10 >= (random + structured) * 9 {
            out.append("incompressible request bodies in clear text (\(random) of \(random + structured) sampled look random, with no Content-Encoding)")
        }
        return out
    }
}
