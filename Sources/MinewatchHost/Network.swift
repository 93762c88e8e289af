import Foundation
import MinewatchCore

/// Interface counters of one network namespace (/proc/<pid>/net/dev), loopback excluded.
public struct NetCounters: Sendable, Hashable {
    public var rxBytes: UInt64 = 0
    public var rxPackets: UInt64 = 0
    public var txBytes: UInt64 = 0
    public var txPackets: UInt64 = 0
    /// Packets over loopback (not part of the totals above): traffic inside the namespace.
    public var loopbackPackets: UInt64 = 0
    public init() {}

    /// Changes whenever any packet moved, loopback included.
    public var activity: UInt64 { rxPackets &+ txPackets &+ loopbackPackets }
}

/// One TCP or UDP socket from /proc/<pid>/net/{tcp,tcp6,udp,udp6}.
public struct SocketEntry: Sendable, Hashable {
    public enum Proto: String, Sendable, Hashable { case tcp, udp }
    public var proto: Proto
    public var localAddress: String
    public var localPort: UInt16
    public var remoteAddress: String
    public var remotePort: UInt16
    /// Kernel TCP state (1 established, 10 listen, ...).
    public var state: UInt8
    public var inode: UInt64
    /// Byte and segment counters from the kernel's tcp_info (sock_diag); nil when read from
    /// /proc/net/tcp, which has none.
    public var counters: TCPCounters?
    /// The kernel's id of the socket (address family, then the 48-byte inet_diag_sockid with its
    /// cookie), kept from a sock_diag dump so the socket can be asked for again directly.
    public var diagID: [UInt8]?

    /// A TCP connection to ask sock_diag for by its addresses (any interface, no cookie:
    /// INET_DIAG_NOCOOKIE), as this namespace's socket has them; nil for addresses that do not
    /// parse or mix families.
    public static func lookup(localAddress: String, localPort: UInt16, remoteAddress: String, remotePort: UInt16) -> SocketEntry? {
        guard let l = IPAddress(localAddress), let r = IPAddress(remoteAddress), l.isV4 == r.isV4 else { return nil }
        func be(_ v: UInt64, _ n: Int) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: v >> (8 * UInt64(n - 1 - $0))) } }
        func addr(_ a: IPAddress) -> [UInt8] { a.isV4 ? be(a.lo, 4) + [UInt8](repeating: 0, count: 12) : be(a.hi, 8) + be(a.lo, 8) }
        var e = SocketEntry(proto: .tcp, localAddress: localAddress, localPort: localPort, remoteAddress: remoteAddress, remotePort: remotePort,
                            state: 1, inode: 0)
        e.diagID = [l.isV4 ? 2 : 10] + be(UInt64(localPort), 2) + be(UInt64(remotePort), 2) + addr(l) + addr(r)
            + [0, 0, 0, 0] + [UInt8](repeating: 0xff, count: 8)
        return e
    }

    public init(proto: Proto, localAddress: String, localPort: UInt16, remoteAddress: String, remotePort: UInt16,
                state: UInt8, inode: UInt64, counters: TCPCounters? = nil) {
        self.proto = proto
        self.localAddress = localAddress
        self.localPort = localPort
        self.remoteAddress = remoteAddress
        self.remotePort = remotePort
        self.state = state
        self.inode = inode
        self.counters = counters
    }

    public var isListening: Bool { proto == .tcp ? state == 10 : remotePort == 0 }
    public var isEstablished: Bool { proto == .tcp && state == 1 }
}

/// Per-connection counters from `struct tcp_info` (Linux 4.6 and later for all fields).
public struct TCPCounters: Sendable, Hashable {
    /// Bytes the peer acknowledged (tcpi_bytes_acked): what this side sent.
    public var bytesSent: UInt64
    /// tcpi_bytes_received.
    public var bytesReceived: UInt64
    /// Segments carrying data, each way (tcpi_data_segs_in/out).
    public var dataSegsIn: UInt32
    public var dataSegsOut: UInt32
    public init(bytesSent: UInt64, bytesReceived: UInt64, dataSegsIn: UInt32 = 0, dataSegsOut: UInt32 = 0) {
        self.bytesSent = bytesSent
        self.bytesReceived = bytesReceived
        self.dataSegsIn = dataSegsIn
        self.dataSegsOut = dataSegsOut
    }
}

public enum NetParsers {
    /// (connection events: ActiveOpens + PassiveOpens + AttemptFails + EstabResets; segments:
    /// InSegs + OutSegs; established: CurrEstab) from the two "Tcp:" lines (names, then values)
    /// of /proc/net/snmp.
    public static func tcpCounters(_ b: [UInt8]) -> (connections: UInt64, segments: UInt64, established: UInt64)? {
        // The "Tcp:" header line (field names) and the line of values after it.
        var lines: [ArraySlice<UInt8>] = []
        var start = b.startIndex
        while start < b.endIndex, lines.count < 2 {
            let end = b[start...].firstIndex(of: 10) ?? b.endIndex
            if b[start..<end].starts(with: tcpLabel) { lines.append(b[start..<end]) }
            start = end + 1
        }
        guard lines.count == 2 else { return nil }
        let names = lines[0].split(separator: 32), values = lines[1].split(separator: 32)
        guard names.count == values.count else { return nil }
        var conn: UInt64 = 0, segs: UInt64 = 0, established: UInt64 = 0
        var found = 0
        for (n, v) in zip(names, values) {
            guard let field = tcpFields.firstIndex(where: { n.elementsEqual($0) }) else { continue }
            guard let x = UInt64(String(decoding: v, as: UTF8.self)) else { return nil }
            switch field {
            case 0...3: conn &+= x
            case 4: established = x
            default: segs &+= x
            }
            found += 1
        }
        return found == tcpFields.count ? (conn, segs, established) : nil
    }

    static let tcpLabel = Array("Tcp:".utf8)
    /// Opens, failures and resets (connections), CurrEstab, and segments in and out, in that order.
    static let tcpFields = ["ActiveOpens", "PassiveOpens", "AttemptFails", "EstabResets", "CurrEstab", "InSegs", "OutSegs"].map { Array($0.utf8) }

    /// The "inuse" count of a sockstat line ("TCP: inuse 3 orphan 0 tw 1 alloc 5 mem 1"), or nil
    /// when the line or the number is missing.
    public static func inUse(_ b: [UInt8], label: String) -> Int? {
        let want = Array(label.utf8)
        for line in b.split(separator: 10) where line.starts(with: want) {
            let f = line.split(separator: 32)
            guard let i = f.firstIndex(where: { $0.elementsEqual("inuse".utf8) }), i + 1 < f.count else { return nil }
            return Int(String(decoding: f[i + 1], as: UTF8.self))
        }
        return nil
    }

    /// An address in network byte order: dotted IPv4 (also for v4-mapped IPv6) or eight hex groups.
    public static func address(_ ordered: [UInt8]) -> String { IPAddress(bytes: ordered)?.description ?? "?" }

    public static func dev(_ text: String) -> NetCounters { dev(Array(text.utf8)) }

    /// /proc/<pid>/net/dev over bytes: two header lines, then "name: rx-bytes rx-packets ... (8
    /// rx fields) tx-bytes tx-packets ...". Loopback is counted apart.
    public static func dev(_ b: [UInt8]) -> NetCounters {
        var c = NetCounters()
        var line = 0
        var i = 0
        while i < b.count {
            var end = i
            while end < b.count && b[end] != 10 { end += 1 }
            defer { i = end + 1; line += 1 }
            guard line >= 2, let colon = b[i..<end].firstIndex(of: UInt8(ascii: ":")) else { continue }
            var nameStart = i
            while nameStart < colon && b[nameStart] == 32 { nameStart += 1 }
            let isLoopback = colon - nameStart == 2 && b[nameStart] == UInt8(ascii: "l") && b[nameStart + 1] == UInt8(ascii: "o")
            var fields: [UInt64] = []
            fields.reserveCapacity(16)
            var j = colon + 1
            while j < end && fields.count < 10 {
                while j < end && b[j] == 32 { j += 1 }
                if j >= end { break }
                var v: UInt64 = 0
                var ok = true
                while j < end && b[j] != 32 {
                    let d = b[j] &- 48
                    if d < 10 { v = v &* 10 &+ UInt64(d) } else { ok = false }
                    j += 1
                }
                if !ok { break }
                fields.append(v)
            }
            guard fields.count >= 10 else { continue }
            if isLoopback {
                c.loopbackPackets += fields[1] &+ fields[9]
            } else {
                c.rxBytes += fields[0]; c.rxPackets += fields[1]; c.txBytes += fields[8]; c.txPackets += fields[9]
            }
        }
        return c
    }

    /// "0100007F:1F90" (IPv4, little-endian words) or 32 hex digits (IPv6) -> (address, port).
    static func endpoint(_ s: Substring) -> (String, UInt16)? {
        let parts = s.split(separator: ":")
        guard parts.count == 2, let port = UInt16(parts[1], radix: 16) else { return nil }
        let hex = parts[0]
        var bytes: [UInt8] = []
        var i = hex.startIndex
        while i < hex.endIndex {
            let j = hex.index(i, offsetBy: 2, limitedBy: hex.endIndex) ?? hex.endIndex
            guard let b = UInt8(hex[i..<j], radix: 16) else { return nil }
            bytes.append(b)
            i = j
        }
        if bytes.count == 4 { return (address(bytes.reversed()), port) }
        guard bytes.count == 16 else { return nil }
        // Four 32-bit words, each little-endian.
        var ordered: [UInt8] = []
        for w in 0..<4 { ordered += bytes[(w * 4)..<(w * 4 + 4)].reversed() }
        return (address(ordered), port)
    }

    public static func sockets(_ text: String, proto: SocketEntry.Proto) -> [SocketEntry] {
        var out: [SocketEntry] = []
        for line in text.split(separator: "\n").dropFirst() {
            let f = line.split(separator: " ")
            guard f.count >= 10, let l = endpoint(f[1]), let r = endpoint(f[2]), let st = UInt8(f[3], radix: 16),
                  let inode = UInt64(f[9]) else { continue }
            out.append(SocketEntry(proto: proto, localAddress: l.0, localPort: l.1, remoteAddress: r.0, remotePort: r.1, state: st, inode: inode))
        }
        return out
    }
}
