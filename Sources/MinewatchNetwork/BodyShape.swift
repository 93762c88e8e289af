import Foundation
import MinewatchCore
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
        return t.hasPrefix("image/") || t.hasPrefix("video/") || t.hasPrefix("audio/")
            || compressedWords.contains { t.containsBytes($0) }
    }
    static let compressedWords = ["zip", "compressed", "x-protobuf", "snappy", "zstd", "x-tar", "encrypted"]

    static func record(size: Int, head: [UInt8], estimated: Bool, headers: HTTPFields, into facts: inout SessionFacts) {
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
        // A body whose media type is compressed by nature (an image, an archive) is neither
        // announcements (sent with no media type of their own) nor judged by its entropy.
        guard !compressedMedia(headers["content-type"]) else { return }
        if announcementRecords(head) > 0 { facts.announcementBodies += 1 }
        guard head.count >= minSample else { return }
        if entropy(head) >= randomBits {
            facts.randomBodies += 1
            if facts.randomBodyDigests.count < SessionFacts.maxBodyDigests { facts.randomBodyDigests.append(digest(Array(head.prefix(minSample)), size: estimated ? 0 : size)) }
        } else {
            facts.structuredBodies += 1
        }
    }

    /// FNV-1a over a body's size and first `minSample` bytes (what every capture keeps of it):
    /// equal for the same body sent twice.
    static func digest(_ head: [UInt8], size: Int) -> UInt64 {
        var h = FNV1a()
        withUnsafeBytes(of: UInt64(size).littleEndian) { h.add($0) }
        h.add(head)
        return h.value
    }

    /// Size of one PacketCrypt announcement, and of its header (`PacketCrypt_AnnounceHdr_t` in
    /// cjdelisle/PacketCrypt include/packetcrypt/PacketCrypt.h: version (1 byte), soft nonce (3),
    /// hard nonce (4), work bits (4, a compact target), parent block height (4), content type
    /// (8), content hash (32), little-endian).
    public static let announcementSize = 1024
    static let announcementHeader = 56

    /// How many of the 1024-byte records in a body's first bytes are PacketCrypt announcements
    /// (0 unless all of them are): version 0 or 1, work bits a valid compact target (exponent
    /// 1-33, mantissa non-zero and positive), parent block heights within 10 of each other and
    /// below 100 million, content type below 2^16. Random bytes pass one record's checks with a
    /// chance below 2^-50 (the content type alone is 48 zero bits), text never (its first byte).
    public static func announcementRecords(_ head: [UInt8]) -> Int {
        func le(_ at: Int, _ n: Int) -> UInt64 {
            var v: UInt64 = 0
            for i in (0..<n).reversed() { v = v << 8 | UInt64(head[at + i]) }
            return v
        }
        var heights: [UInt64] = []
        var at = 0
        while at + announcementHeader <= head.count {
            guard head[at] <= 1 else { return 0 }
            let bits = le(at + 8, 4), exponent = bits >> 24, mantissa = bits & 0x00ff_ffff
            guard (1...33).contains(exponent), mantissa != 0, mantissa & 0x0080_0000 == 0 else { return 0 }
            let height = le(at + 12, 4)
            guard height > 0, height < 100_000_000, le(at + 16, 8) < 0x1_0000 else { return 0 }
            heights.append(height)
            at += announcementSize
        }
        guard let lo = heights.min(), let hi = heights.max(), hi - lo <= 10 else { return 0 }
        return heights.count
    }

    /// Shannon entropy in bits per byte.
    public static func entropy(_ b: [UInt8]) -> Double { ByteHistogram(b).entropy }

    /// What the bodies sent to an upload destination share with honest uploaders: KiB framing
    /// (chunked uploads use round sizes too) or random bytes in clear text (media, archives and
    /// encrypted data). Empty when none were seen (the connection is encrypted, or there is no
    /// capture). Announcement records (`announcementBodies`) are the specific evidence.
    public static func corroboration(_ sessions: [SessionFacts]) -> [String] {
        let exact = sessions.reduce(0) { $0 + $1.exactBodies }, framed = sessions.reduce(0) { $0 + $1.kibFramedBodies }
        let large = sessions.reduce(0) { $0 + $1.largeBodies }
        let random = sessions.reduce(0) { $0 + $1.randomBodies }, structured = sessions.reduce(0) { $0 + $1.structuredBodies }
        var out: [String] = []
        guard large == 0 else { return out }  // backup packs and multipart parts, not announcement batches
        if exact >= 3 && framed * 10 >= exact * 9 {
            out.append("request bodies in whole KiB (\(framed) of \(exact) are whole multiples of 1024 bytes, none over 1 MiB)")
        }
        if random >= 3 && random * 10 >= (random + structured) * 9 {
            out.append("incompressible request bodies in clear text (\(random) of \(random + structured) sampled look random, with no Content-Encoding)")
        }
        return out
    }
}
