import Foundation
import MinewatchCore
import MinewatchPackets
#if canImport(Glibc)
import Glibc
#endif

/// A mining session seen live in a namespace.
public struct LiveSession: Sendable, Hashable {
    public var client: String
    public var clientPort: UInt16
    public var serverPort: UInt16
    public var server: String
    public var first: Date
    public var facts: SessionFacts
}

/// Protocol evidence for `watch`: one packet ring per container network namespace, drained on a
/// thread of its own, feeding the same flow table and recognisers as `pcap` (with a smaller
/// per-flow inspection cap). The watcher asks for the mining sessions of a namespace each pass.
public final class LiveCapture: @unchecked Sendable {
    final class Namespace {
        let ring: PacketRing
        let table: FlowTable
        var inspectors: [ObjectIdentifier: (Flow, FlowInspector)] = [:]
        init(ring: PacketRing, maxFlows: Int, cap: Int) {
            self.ring = ring
            table = FlowTable(maxFlows: maxFlows, maxPendingPerDirection: 64 * 1024)
            table.onNew = { [unowned self] flow in
                let i = FlowInspector(flow: flow, maxParsedPerDirection: cap)
                flow.consumer = i
                self.inspectors[ObjectIdentifier(flow)] = (flow, i)
            }
            table.onEvict = { [unowned self] flow in self.inspectors[ObjectIdentifier(flow)] = nil }
        }
    }

    let lock = NSLock()
    var namespaces: [UInt64: Namespace] = [:]
    var failed: Set<UInt64> = []
    public private(set) var firstError: MinewatchError?
    public private(set) var packets = 0
    public private(set) var drops = 0
    var running = true
    let procRoot: String
    let snapLength: Int
    let maxFlows: Int
    let inspectCap: Int

    public init(procRoot: String = "/proc", snapLength: Int = 1024, maxFlowsPerNamespace: Int = 4096, inspectBytesPerFlow: Int = 256 * 1024) {
        self.procRoot = procRoot
        self.snapLength = snapLength
        maxFlows = maxFlowsPerNamespace
        inspectCap = inspectBytesPerFlow
        Thread.detachNewThread { [weak self] in self?.loop() }
    }

    public func stop() {
        lock.lock()
        running = false
        namespaces = [:]
        lock.unlock()
    }

    /// Opens rings for new namespaces (`netns inode -> a pid in it`), closes those gone.
    public func sync(_ wanted: [UInt64: Int32]) {
        lock.lock()
        defer { lock.unlock() }
        for ns in namespaces.keys where wanted[ns] == nil { namespaces[ns] = nil }
        failed = failed.filter { wanted[$0] != nil }
        for (ns, pid) in wanted where namespaces[ns] == nil && !failed.contains(ns) {
            do {
                namespaces[ns] = Namespace(ring: try PacketRing(pid: pid, procRoot: procRoot, snapLength: snapLength, blockSize: 256 * 1024, blocks: 8),
                                           maxFlows: maxFlows, cap: inspectCap)
            } catch {
                failed.insert(ns)
                if firstError == nil { firstError = error }
            }
        }
    }

    /// Mining-relevant sessions recognised so far in a namespace.
    public func sessions(_ ns: UInt64) -> [LiveSession] {
        lock.lock()
        defer { lock.unlock() }
        guard let n = namespaces[ns] else { return [] }
        return n.inspectors.values.compactMap { f, i in
            let p = i.facts.protocolName
            guard p.hasPrefix("stratum") || p == "packetcrypt" || p == "getwork" || i.facts.sni != nil || i.facts.host != nil else { return nil }
            return LiveSession(client: "\(f.client)", clientPort: f.clientPort, serverPort: f.serverPort, server: Flow.endpoint(f.server, f.serverPort),
                               first: Date(timeIntervalSince1970: f.first), facts: i.facts)
        }
    }

    func loop() {
        var fds: [pollfd] = []
        while true {
            lock.lock()
            if !running { lock.unlock(); return }
            fds = namespaces.values.map { pollfd(fd: $0.ring.fd, events: Int16(POLLIN), revents: 0) }
            lock.unlock()
            if fds.isEmpty {
                usleep(200_000)
            } else {
                _ = poll(&fds, nfds_t(fds.count), 500)
            }
            lock.lock()
            for n in namespaces.values {
                packets += n.ring.drain { info, bytes in
                    guard let p = PacketDecoder.decode(linkType: info.linkType, bytes, originalLength: info.originalLength) else { return }
                    n.table.add(p, bytes: bytes, time: info.time)
                }
            }
            lock.unlock()
        }
    }

    /// Kernel drops over all rings since the last call.
    public func collectDrops() -> Int {
        lock.lock()
        defer { lock.unlock() }
        let d = namespaces.values.reduce(0) { $0 + $1.ring.drops() }
        drops += d
        return d
    }
}
