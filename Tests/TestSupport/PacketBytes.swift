/// Packets and capture files built byte by byte, for the packet and capture tests.
public enum PacketBytes {
    /// A little-endian microsecond pcap header.
    public static func pcapHeader(link: UInt32 = 1, snap: UInt32 = 65535) -> [UInt8] {
        var b: [UInt8] = []
        for v in [UInt32(0xA1B2_C3D4)] { withUnsafeBytes(of: v.littleEndian) { b += $0 } }
        for v in [UInt16(2), UInt16(4)] { withUnsafeBytes(of: v.littleEndian) { b += $0 } }
        for v in [UInt32(0), UInt32(0), snap, link] { withUnsafeBytes(of: v.littleEndian) { b += $0 } }
        return b
    }

    /// One pcap record.
    public static func record(_ data: [UInt8], caplen: UInt32? = nil, time: UInt32 = 1_700_000_000) -> [UInt8] {
        var b: [UInt8] = []
        for v in [time, UInt32(0), caplen ?? UInt32(data.count), UInt32(data.count)] { withUnsafeBytes(of: v.littleEndian) { b += $0 } }
        return b + data
    }

    /// An Ethernet/IPv4/TCP packet carrying `payload`, optionally VLAN-tagged.
    public static func tcp(src: [UInt8] = [10, 0, 0, 2], dst: [UInt8] = [10, 0, 0, 9], sport: UInt16 = 40000, dport: UInt16 = 3333,
                           seq: UInt32, flags: UInt8 = 0x18, payload: [UInt8], vlan: UInt16? = nil) -> [UInt8] {
        var eth: [UInt8] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
        if let vlan { eth += [0x81, 0x00, UInt8(vlan >> 8), UInt8(vlan & 0xFF)] }
        eth += [0x08, 0x00]
        let total = 20 + 20 + payload.count
        let ip: [UInt8] = [0x45, 0, UInt8(total >> 8), UInt8(total & 0xFF), 0, 0, 0x40, 0, 64, 6, 0, 0] + src + dst
        var tcp: [UInt8] = [UInt8(sport >> 8), UInt8(sport & 0xFF), UInt8(dport >> 8), UInt8(dport & 0xFF)]
        tcp += [UInt8(seq >> 24), UInt8(seq >> 16 & 0xFF), UInt8(seq >> 8 & 0xFF), UInt8(seq & 0xFF), 0, 0, 0, 0, 0x50, flags, 0xFF, 0xFF, 0, 0, 0, 0]
        return eth + ip + tcp + payload
    }

    /// A UDP/IPv4 packet over Ethernet.
    public static func udp(src: [UInt8], dst: [UInt8], sport: UInt16, dport: UInt16, payload: [UInt8]) -> [UInt8] {
        let eth: [UInt8] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x08, 0x00]
        let total = 20 + 8 + payload.count
        let ip: [UInt8] = [0x45, 0, UInt8(total >> 8), UInt8(total & 0xFF), 0, 0, 0x40, 0, 64, 17, 0, 0] + src + dst
        let ulen = 8 + payload.count
        let udp: [UInt8] = [UInt8(sport >> 8), UInt8(sport & 0xFF), UInt8(dport >> 8), UInt8(dport & 0xFF), UInt8(ulen >> 8), UInt8(ulen & 0xFF), 0, 0]
        return eth + ip + udp + payload
    }
}
