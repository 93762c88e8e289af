import CShims
import Foundation
import MinewatchCore
#if canImport(Glibc)
import Glibc
#endif

/// Live packets of one network namespace: an AF_PACKET socket created inside it (all its
/// interfaces), a TPACKET_V3 ring the kernel fills without a system call per packet, and every
/// packet cut to `snapLength` bytes in the kernel. Needs CAP_NET_RAW and CAP_SYS_ADMIN.
public final class PacketRing {
    public let fd: Int32
    let ring: UnsafeMutableRawPointer
    public let blockSize: Int
    public let blockCount: Int
    var current = 0
    /// Whether the last `drain` read a block the kernel handed over because it was full (rather
    /// than because `retireMilliseconds` passed): traffic is filling the ring by size.
    public private(set) var filledBlock = false

    /// Where a packet's sockaddr_ll sits after its tpacket3_hdr (TPACKET_ALIGN(48)), and where
    /// the fields read of it end (its type at +8, its packet type at +10).
    static let linkAddress = 48
    static let linkAddressEnd = linkAddress + 12

    /// TP_STATUS_BLK_TMO: the kernel retired the block on its timer, not full.
    static let retiredOnTimer: UInt32 = 1 << 5

    /// Whether a block with this status was handed over full.
    static func handedOverFull(status: UInt32) -> Bool { status & retiredOnTimer == 0 }

    /// `pid`: a process in the namespace (its /proc/<pid>/ns/net is entered). `netns`: the
    /// namespace's inode number when the caller knows which one it means: the ring is opened
    /// only if the pid is in it now (a pid reused since it was read would otherwise give a ring,
    /// and so packets, of another namespace under this one's number).
    public init(pid: Int32, netns: UInt64? = nil, procRoot: String = "/proc", snapLength: Int = 384, blockSize: Int = 128 * 1024,
                blocks: Int = 4, retireMilliseconds: Int = 100) throws(MinewatchError) {
        let path = "\(procRoot)/\(pid)/ns/net"
        let ns = try NetworkNamespaceFile.open(procRoot: procRoot, pid: pid, expected: netns, operation: "open a packet ring")
        defer { close(ns) }
        let fd = mw_socket_in_netns(ns, AF_PACKET, Int32(SOCK_RAW.rawValue), Int32(UInt16(0x0003).bigEndian))  // ETH_P_ALL
        if fd < 0 { throw .posix("open a packet socket in the namespace", subject: path, errno: -fd) }
        var ring: UnsafeMutableRawPointer?
        let rc = mw_packet_ring(fd, UInt32(blockSize), UInt32(blocks), UInt32(retireMilliseconds), UInt32(snapLength), &ring)
        guard rc == 0, let ring else {
            close(fd)
            throw .posix("set up the packet ring", subject: path, errno: -rc)
        }
        self.fd = fd
        self.ring = ring
        self.blockSize = blockSize
        self.blockCount = blocks
    }

    deinit {
        _ = mw_packet_ring_unmap(ring, blockSize * blockCount)
        close(fd)
    }

    /// Packets the kernel dropped because the ring was full, since the last call.
    public func drops() -> Int { max(0, mw_packet_drops(fd)) }

    /// Hands every packet of the blocks the kernel has filled to `body`, then gives the blocks
    /// back. Returns the number of packets.
    @discardableResult
    public func drain(_ body: (PacketInfo, UnsafeRawBufferPointer) -> Void) -> Int {
        var n = 0
        filledBlock = false
        for _ in 0..<blockCount {
            let block = ring + current * blockSize
            let status = mw_block_status(block)
            guard status & 1 != 0 else { break }  // TP_STATUS_USER
            if Self.handedOverFull(status: status) { filledBlock = true }
            let count = Int(block.load(fromByteOffset: 12, as: UInt32.self))
            var p = Int(block.load(fromByteOffset: 16, as: UInt32.self))
            for _ in 0..<count {
                guard p >= 48, p + 28 <= blockSize else { break }
                let h = block + p
                let next = Int(h.load(fromByteOffset: 0, as: UInt32.self))
                let sec = h.load(fromByteOffset: 4, as: UInt32.self), nsec = h.load(fromByteOffset: 8, as: UInt32.self)
                let snap = Int(h.load(fromByteOffset: 12, as: UInt32.self)), len = Int(h.load(fromByteOffset: 16, as: UInt32.self))
                let mac = Int(h.load(fromByteOffset: 24, as: UInt16.self)), net = Int(h.load(fromByteOffset: 26, as: UInt16.self))
                if mac >= Self.linkAddressEnd, p + mac + snap <= blockSize {
                    // Ethernet (veth, loopback's zeroed header) or raw IP (tun devices).
                    let link: UInt16 = net - mac >= 14 ? 1 : 101
                    // The sockaddr_ll after the header: PACKET_HOST (0) on a device that is not
                    // loopback (ARPHRD_LOOPBACK, 772) came in from another host.
                    let pktType = h.load(fromByteOffset: Self.linkAddress + 10, as: UInt8.self)
                    let hwType = h.load(fromByteOffset: Self.linkAddress + 8, as: UInt16.self)
                    let info = PacketInfo(time: Double(sec) + Double(nsec) / 1e9, linkType: link, capturedLength: snap, originalLength: len, fileOffset: 0,
                                          received: pktType == 0 && hwType != 772)
                    body(info, UnsafeRawBufferPointer(start: h + mac, count: snap))
                    n += 1
                }
                if next == 0 { break }
                p += next
            }
            mw_block_release(block)
            current = (current + 1) % blockCount
        }
        return n
    }
}
