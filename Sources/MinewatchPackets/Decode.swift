import Foundation
import MinewatchCore

/// What the decoder gets out of one packet: addresses, ports and where the transport payload is.
public struct DecodedPacket: Sendable {
    public enum Transport: UInt8, Sendable { case tcp = 6, udp = 17 }
    public var transport: Transport
    public var src: IPAddress
    public var dst: IPAddress
    public var srcPort: UInt16
    public var dstPort: UInt16
    /// TCP only.
    public var seq: UInt32 = 0
    public var ack: UInt32 = 0
    public var flags: UInt8 = 0
    /// Payload range within the packet bytes (clipped to what was captured).
    public var payloadOffset: Int
    public var payloadLength: Int
    /// Payload bytes the packet carried on the wire (may exceed what the snap length kept).
    public var wirePayloadLength: Int

    public var syn: Bool { flags & 0x02 != 0 }
    public var ackFlag: Bool { flags & 0x10 != 0 }
    public var fin: Bool { flags & 0x01 != 0 }
    public var rst: Bool { flags & 0x04 != 0 }
}

/// Decodes link layer, IPv4/IPv6 (extension headers) and TCP/UDP, bounds-checked; anything else
/// (ARP, ICMP, non-first fragments, malformed headers) is nil and counted by the caller.
public enum PacketDecoder {
    public static let ethernet: UInt16 = 1, null: UInt16 = 0, raw: UInt16 = 101, loop: UInt16 = 108
    public static let linuxSLL: UInt16 = 113, linuxSLL2: UInt16 = 276, ipv4: UInt16 = 228, ipv6: UInt16 = 229

    @inline(__always) static func be16(_ b: UnsafeRawBufferPointer, _ o: Int) -> UInt16 { UInt16(b[o]) << 8 | UInt16(b[o + 1]) }
    @inline(__always) static func be32(_ b: UnsafeRawBufferPointer, _ o: Int) -> UInt32 {
        UInt32(b[o]) << 24 | UInt32(b[o + 1]) << 16 | UInt32(b[o + 2]) << 8 | UInt32(b[o + 3])
    }

    public static func decode(linkType: UInt16, _ b: UnsafeRawBufferPointer, originalLength: Int? = nil) -> DecodedPacket? {
        var o = 0
        var etherType: UInt16
        switch linkType {
        case ethernet:
            guard b.count >= 14 else { return nil }
            etherType = be16(b, 12)
            o = 14
            // 802.1Q / 802.1ad tags, stacked.
            var tags = 0
            while (etherType == 0x8100 || etherType == 0x88A8 || etherType == 0x9100) && tags < 4 {
                guard b.count >= o + 4 else { return nil }
                etherType = be16(b, o + 2)
                o += 4
                tags += 1
            }
        case linuxSLL:
            guard b.count >= 16 else { return nil }
            etherType = be16(b, 14)
            o = 16
        case linuxSLL2:
            guard b.count >= 20 else { return nil }
            etherType = be16(b, 0)
            o = 20
        case raw, 12, 14:
            guard b.count >= 1 else { return nil }
            etherType = b[0] >> 4 == 6 ? 0x86DD : 0x0800
        case ipv4: etherType = 0x0800
        case ipv6: etherType = 0x86DD
        case null, loop:
            guard b.count >= 4 else { return nil }
            // Address family, host order for null (little-endian captures are the norm), network order for loop.
            let le = UInt32(b[0]) | UInt32(b[1]) << 8 | UInt32(b[2]) << 16 | UInt32(b[3]) << 24
            let family = linkType == loop ? be32(b, 0) : (le > 0xFFFF ? be32(b, 0) : le)
            switch family {
            case 2: etherType = 0x0800
            case 10, 24, 28, 30: etherType = 0x86DD
            default: return nil
            }
            o = 4
        default:
            return nil
        }
        switch etherType {
        case 0x0800: return ipv4(b, o, originalLength: originalLength)
        case 0x86DD: return ipv6(b, o, originalLength: originalLength)
        default: return nil
        }
    }

    static func ipv4(_ b: UnsafeRawBufferPointer, _ o: Int, originalLength: Int?) -> DecodedPacket? {
        guard b.count >= o + 20, b[o] >> 4 == 4 else { return nil }
        let ihl = Int(b[o] & 0x0F) * 4
        let total = Int(be16(b, o + 2))
        guard ihl >= 20, total >= ihl, b.count >= o + ihl else { return nil }
        let frag = be16(b, o + 6)
        if frag & 0x1FFF != 0 { return nil }  // not the first fragment
        let proto = b[o + 9]
        let src = IPAddress(v4: b, at: o + 12), dst = IPAddress(v4: b, at: o + 16)
        return transport(b, proto: proto, at: o + ihl, end: o + total, src: src, dst: dst)
    }

    static func ipv6(_ b: UnsafeRawBufferPointer, _ o: Int, originalLength: Int?) -> DecodedPacket? {
        guard b.count >= o + 40, b[o] >> 4 == 6 else { return nil }
        let payload = Int(be16(b, o + 4))
        var next = b[o + 6]
        let src = IPAddress(v6: b, at: o + 8), dst = IPAddress(v6: b, at: o + 24)
        var p = o + 40
        let end = o + 40 + payload
        // Extension headers: hop-by-hop 0, routing 43, fragment 44, destination options 60, AH 51.
        var hops = 0
        while hops < 8 {
            hops += 1
            switch next {
            case 0, 43, 60:
                guard b.count >= p + 2 else { return nil }
                next = b[p]
                p += (Int(b[p + 1]) + 1) * 8
            case 44:
                guard b.count >= p + 8 else { return nil }
                if be16(b, p + 2) & 0xFFF8 != 0 { return nil }  // not the first fragment
                next = b[p]
                p += 8
            case 51:
                guard b.count >= p + 2 else { return nil }
                next = b[p]
                p += (Int(b[p + 1]) + 2) * 4
            default:
                return transport(b, proto: next, at: p, end: end, src: src, dst: dst)
            }
        }
        return nil
    }

    static func transport(_ b: UnsafeRawBufferPointer, proto: UInt8, at o: Int, end declaredEnd: Int, src: IPAddress, dst: IPAddress) -> DecodedPacket? {
        switch proto {
        case 6:
            guard b.count >= o + 20 else { return nil }
            let off = Int(b[o + 12] >> 4) * 4
            guard off >= 20, declaredEnd >= o + off else { return nil }
            let start = o + off
            let captured = max(0, min(b.count, declaredEnd) - start)
            var d = DecodedPacket(transport: .tcp, src: src, dst: dst, srcPort: be16(b, o), dstPort: be16(b, o + 2),
                                  payloadOffset: min(start, b.count), payloadLength: captured, wirePayloadLength: declaredEnd - start)
            d.seq = be32(b, o + 4)
            d.ack = be32(b, o + 8)
            d.flags = b[o + 13]
            return d
        case 17:
            guard b.count >= o + 8 else { return nil }
            let ulen = Int(be16(b, o + 4))
            guard ulen >= 8 else { return nil }
            let end = min(declaredEnd, o + ulen)
            let start = o + 8
            let captured = max(0, min(b.count, end) - start)
            return DecodedPacket(transport: .udp, src: src, dst: dst, srcPort: be16(b, o), dstPort: be16(b, o + 2),
                                 payloadOffset: min(start, b.count), payloadLength: captured, wirePayloadLength: max(0, end - start))
        default:
            return nil
        }
    }
}
