import Foundation
import MinewatchCore
import MinewatchHost
import MinewatchModel

/// Detector 2 of `watch`: outbound TCP connections from a container to a port that mining pools
/// listen on (rule data: `network: minerPorts`). Weighted low alone: many services share those
/// ports; other detectors and correlation give it weight.
public struct PoolContactDetector: ContainerDetector {
    public let id = DetectorID.poolContact
    public let ports: Set<UInt16>
    public init(ports: Set<UInt16>) { self.ports = ports }

    public func makeState() {}

    /// Established connections this namespace opened (its local port is not one it listens on)
    /// to a pool port.
    public func contacts(_ sockets: [SocketEntry], listening: Set<UInt16>) -> [SocketEntry] {
        sockets.filter { s in s.isEstablished && !listening.contains(s.localPort) && ports.contains(s.remotePort) }
    }

    public func inspect(_ pass: ContainerPass, state: inout Void, context: DetectionContext) -> Verdict? {
        if context.alerted.contains(id) { return nil }
        let snap = pass.snapshot
        let hits = contacts(snap.sockets, listening: snap.listenPorts)
        guard !hits.isEmpty else { return nil }
        let endpoints = Set(hits.map { Endpoint.text($0.remoteAddress, $0.remotePort) }).sorted()
        let pid = hits.compactMap { snap.owners[$0.inode] }.first ?? snap.mainPid
        return Verdict(
            severity: .low,
            summary: "outbound connection\(endpoints.count == 1 ? "" : "s") to mining-pool port\(endpoints.count == 1 ? "" : "s"): \(endpoints.prefix(5).joined(separator: ", "))",
            evidence: endpoints.map { Evidence(kind: .pool, name: "connection", value: $0) },
            metrics: ["connections": Double(hits.count), "destinations": Double(endpoints.count)],
            pid: pid, exe: nil, startedAt: pass.now, verdict: ("MW-WATCH-POOL-PORT", "default"))
    }
}
