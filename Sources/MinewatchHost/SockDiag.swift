import CShims
import Foundation
import MinewatchCore
#if canImport(Glibc)
import Glibc
#endif

/// TCP sockets with byte counters, per network namespace. The real source asks the kernel over
/// NETLINK_SOCK_DIAG inside each namespace; tests substitute recorded values.
public protocol SocketStatsSource: AnyObject {
    /// TCP sockets (IPv4 and IPv6, listeners included) of the namespace `pid` lives in, with
    /// counters; nil when the namespace cannot be queried (not root, process gone).
    func tcpSockets(pid: Int32, netns: UInt64) -> [SocketEntry]?
    /// Namespaces still in use; others are released.
    func retain(namespaces: Set<UInt64>)
    /// The same sockets asked for again one by one (no walk of the kernel's TCP table): fresh
    /// counters, closed ones dropped. nil when that is not possible (then dump).
    func refresh(_ sockets: [SocketEntry], pid: Int32, netns: UInt64) -> [SocketEntry]?
}

extension SocketStatsSource {
    public func refresh(_ sockets: [SocketEntry], pid: Int32, netns: UInt64) -> [SocketEntry]? { nil }
}

/// Bounds-checked parsing of sock_diag replies (netlink messages carrying inet_diag_msg and a
/// tcp_info attribute). Pure: tested with bytes captured from a real kernel and with hostile ones.
public enum SockDiagParser {
    static let nlmsgDone: UInt16 = 3
    static let nlmsgError: UInt16 = 2
    static let sockDiagByFamily: UInt16 = 20
    static let inetDiagInfo: UInt16 = 2
    /// Every state but TIME_WAIT (6) and SYN_RECV (3): those are mini-sockets without tcp_info.
    static let states: UInt32 = (1 << 1) | (1 << 2) | (1 << 4) | (1 << 5) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11)

    /// A request for one socket by its id (family + sockid from a dump), without dumping.
    public static func exactRequest(diagID: [UInt8], sequence: UInt32) -> [UInt8]? {
        guard diagID.count == 49 else { return nil }
        var b: [UInt8] = []
        func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { b += $0 } }
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { b += $0 } }
        u32(72)
        u16(sockDiagByFamily)
        u16(0x0001)  // NLM_F_REQUEST only
        u32(sequence)
        u32(0)
        b += [diagID[0], 6, UInt8(1 << (inetDiagInfo - 1)), 0]
        u32(0xFFFF_FFFF)
        b += diagID[1...]
        return b
    }

    /// The dump request for one address family.
    public static func request(family: UInt8, sequence: UInt32) -> [UInt8] {
        var b: [UInt8] = []
        func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { b += $0 } }
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { b += $0 } }
        u32(72)                       // nlmsg_len
        u16(sockDiagByFamily)         // nlmsg_type
        u16(0x0001 | 0x0300)          // NLM_F_REQUEST | NLM_F_DUMP
        u32(sequence)
        u32(0)                        // port id: the kernel fills it in
        b += [family, 6, UInt8(1 << (inetDiagInfo - 1)), 0]  // family, IPPROTO_TCP, ext: INET_DIAG_INFO, pad
        u32(states)
        b += [UInt8](repeating: 0, count: 48)  // inet_diag_sockid: all zero for a dump
        return b
    }

    public enum Part: Equatable { case more, done }

    /// Parses one datagram of the reply. Appends sockets; says whether the dump is complete.
    /// Throws on an error message or on a malformed message (naming the offset).
    public static func parse(_ bytes: [UInt8], into out: inout [SocketEntry]) throws(MinewatchError) -> Part {
        var off = 0
        func u16(_ o: Int) -> UInt16 { UInt16(bytes[o]) | UInt16(bytes[o + 1]) << 8 }
        func u32(_ o: Int) -> UInt32 { UInt32(u16(o)) | UInt32(u16(o + 2)) << 16 }
        func u64(_ o: Int) -> UInt64 { UInt64(u32(o)) | UInt64(u32(o + 4)) << 32 }
        while off + 16 <= bytes.count {
            let len = Int(u32(off)), type = u16(off + 4)
            guard len >= 16, off + len <= bytes.count else {
                throw MinewatchError(.format, operation: "parse sock_diag reply", subject: "netlink", offset: Int64(off),
                                     message: "message length \(len) runs past the \(bytes.count)-byte datagram")
            }
            if type == nlmsgDone { return .done }
            if type == nlmsgError {
                let code = len >= 20 ? Int32(bitPattern: u32(off + 16)) : 0
                if code == 0 { off += align(len); continue }
                // The kernel sends -errno; a code that is no negated errno (Int32.min has no negation) is malformed.
                guard code < 0, code > -4096 else {
                    throw MinewatchError(.format, operation: "parse sock_diag reply", subject: "netlink", offset: Int64(off),
                                         message: "error message with code \(code), not a negated errno")
                }
                throw MinewatchError.posix("sock_diag dump", subject: "netlink", errno: -code)
            }
            if type == sockDiagByFamily {
                let m = off + 16
                guard len >= 16 + 72 else {
                    throw MinewatchError(.format, operation: "parse sock_diag reply", subject: "netlink", offset: Int64(off),
                                         message: "inet_diag_msg of \(len - 16) bytes, expected at least 72")
                }
                let family = bytes[m], state = bytes[m + 1]
                let sport = UInt16(bytes[m + 4]) << 8 | UInt16(bytes[m + 5])
                let dport = UInt16(bytes[m + 6]) << 8 | UInt16(bytes[m + 7])
                let alen = family == 2 ? 4 : 16
                let src = Array(bytes[(m + 8)..<(m + 8 + alen)])
                let dst = Array(bytes[(m + 24)..<(m + 24 + alen)])
                let inode = u32(m + 68)
                var counters: TCPCounters?
                var a = m + 72
                while a + 4 <= off + len {
                    let alen = Int(u16(a)), atype = u16(a + 2)
                    guard alen >= 4, a + alen <= off + len else {
                        throw MinewatchError(.format, operation: "parse sock_diag reply", subject: "netlink", offset: Int64(a),
                                             message: "attribute length \(alen) runs past its message")
                    }
                    // tcp_info: bytes_acked at 120, bytes_received at 128, data_segs_in/out at 152/156,
                    // bytes_sent and bytes_retrans at 200/208 (Linux 4.19). bytes_acked counts the SYN
                    // on the active side only, so bytes_sent - bytes_retrans is used when present.
                    if atype == inetDiagInfo, alen - 4 >= 136 {
                        let p = a + 4
                        let segs = alen - 4 >= 160
                        var sent = u64(p + 120)
                        if alen - 4 >= 216 {
                            let total = u64(p + 200), retrans = u64(p + 208)
                            sent = total >= retrans ? total - retrans : 0
                        }
                        counters = TCPCounters(bytesSent: sent, bytesReceived: u64(p + 128),
                                               dataSegsIn: segs ? u32(p + 152) : 0, dataSegsOut: segs ? u32(p + 156) : 0)
                    }
                    a += align(alen)
                }
                var entry = SocketEntry(proto: .tcp, localAddress: NetParsers.address(src), localPort: sport,
                                        remoteAddress: NetParsers.address(dst), remotePort: dport, state: state,
                                        inode: UInt64(inode), counters: counters)
                entry.diagID = [family] + Array(bytes[(m + 4)..<(m + 52)])
                out.append(entry)
            }
            off += align(len)
        }
        return .more
    }

    static func align(_ n: Int) -> Int { (n + 3) & ~3 }
}

/// Asks the kernel for TCP sockets with tcp_info inside each container's network namespace: one
/// netlink socket per namespace, created there (setns on the calling thread, then back) and
/// reused every pass. Needs CAP_SYS_ADMIN for other namespaces; without it every query is nil and
/// the caller falls back to /proc/<pid>/net/tcp (no byte counters).
/// Used from the sampler's thread only.
public final class SockDiagReader: SocketStatsSource {
    let procRoot: String
    var sockets: [UInt64: Int32] = [:]
    var sequence: UInt32 = 1
    /// The first failure, for one log line (the caller decides where it goes).
    public private(set) var firstError: MinewatchError?

    public init(procRoot: String = "/proc") { self.procRoot = procRoot }
    deinit { for fd in sockets.values { close(fd) } }

    func socketFor(pid: Int32, netns: UInt64) throws(MinewatchError) -> Int32 {
        if let fd = sockets[netns] { return fd }
        let path = "\(procRoot)/\(pid)/ns/net"
        // Only in the namespace asked about (see `NetworkNamespaceFile`).
        let nsfd = try NetworkNamespaceFile.open(procRoot: procRoot, pid: pid, expected: netns, operation: "enter network namespace for sock_diag")
        defer { close(nsfd) }
        let fd = mw_socket_in_netns(nsfd, AF_NETLINK, Int32(SOCK_DGRAM.rawValue), 4 /* NETLINK_SOCK_DIAG */)
        if fd < 0 { throw .posix("enter network namespace for sock_diag", subject: path, errno: -fd) }
        var tv = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        sockets[netns] = fd
        return fd
    }

    public func tcpSockets(pid: Int32, netns: UInt64) -> [SocketEntry]? {
        do {
            let fd = try socketFor(pid: pid, netns: netns)
            var out: [SocketEntry] = []
            // A dump walks the kernel's whole (host-wide) TCP hash table, so families with no
            // TCP socket in this namespace (per-namespace counts in sockstat) are skipped.
            var families: [UInt8] = []
            if ProcfsReader(root: procRoot).socketsInUse(pid, file: "sockstat", label: "TCP:") != 0 { families.append(UInt8(AF_INET)) }
            if ProcfsReader(root: procRoot).socketsInUse(pid, file: "sockstat6", label: "TCP6:") != 0 { families.append(UInt8(AF_INET6)) }
            for family in families {
                sequence &+= 1
                let req = SockDiagParser.request(family: family, sequence: sequence)
                let sent = req.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
                if sent != req.count { throw MinewatchError.posix("send sock_diag request", subject: "netns \(netns)", errno: errno) }
                var buf = [UInt8](repeating: 0, count: 65536)
                var part = SockDiagParser.Part.more
                var rounds = 0
                while part == .more {
                    rounds += 1
                    if rounds > 10_000 { throw MinewatchError(.limit, operation: "sock_diag dump", subject: "netns \(netns)", message: "no end after 10000 datagrams") }
                    let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                    if n <= 0 { throw MinewatchError.posix("recv sock_diag reply", subject: "netns \(netns)", errno: n < 0 ? errno : EIO) }
                    part = try SockDiagParser.parse(Array(buf[0..<n]), into: &out)
                }
            }
            return out
        } catch {
            // A broken socket is dropped so the next pass opens a new one.
            if let fd = sockets.removeValue(forKey: netns) { close(fd) }
            // A process gone, or no longer in the namespace, is not sock_diag failing.
            if firstError == nil, let e = error as? MinewatchError, e.code != .notFound, e.errno != ENOENT { firstError = e }
            return nil
        }
    }

    public func refresh(_ sockets: [SocketEntry], pid: Int32, netns: UInt64) -> [SocketEntry]? {
        guard let fd = try? socketFor(pid: pid, netns: netns) else { return nil }
        var out: [SocketEntry] = []
        var buf = [UInt8](repeating: 0, count: 8192)
        for s in sockets {
            // Listeners keep their entry; connections are asked for by id.
            if s.isListening || s.proto != .tcp { out.append(s); continue }
            sequence &+= 1
            guard let id = s.diagID, let req = SockDiagParser.exactRequest(diagID: id, sequence: sequence) else { return nil }
            let sent = req.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
            if sent != req.count { return nil }
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return nil }
            var got: [SocketEntry] = []
            do {
                _ = try SockDiagParser.parse(Array(buf[0..<n]), into: &got)
            } catch {
                continue  // ENOENT: the connection is gone
            }
            out += got.filter { $0.state != 6 && $0.counters != nil }  // a TIME_WAIT leftover is a closed connection
        }
        return out
    }

    /// "TCP: inuse N ..." from /proc/<pid>/net/sockstat(6); nil when unreadable (then dump anyway).
    public func retain(namespaces: Set<UInt64>) {
        for (ns, fd) in sockets where !namespaces.contains(ns) {
            close(fd)
            sockets[ns] = nil
        }
    }
}

extension ProcfsReader {
    /// Inodes of the sockets a process holds open (/proc/<pid>/fd links "socket:[N]"), so socket
    /// traffic can be attributed to the process and its container even in a shared namespace.
    public func socketInodes(_ pid: Int32) -> Set<UInt64> {
        var out: Set<UInt64> = []
        for n in numberedEntries("\(pid)/fd") {
            // "socket:[N]" fits in 64 bytes; a longer target (a file's path) is cut short and is
            // not a socket.
            guard let l = link("\(pid)/fd/\(n)", size: 64), l.hasPrefix("socket:["), l.hasSuffix("]") else { continue }
            if let v = UInt64(l.dropFirst(8).dropLast()) { out.insert(v) }
        }
        return out
    }
}
