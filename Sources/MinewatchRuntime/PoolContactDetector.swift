import Foundation
import MinewatchCore
import MinewatchHost

/// Detector 2 of `watch`: outbound TCP connections from a container to a port that mining pools
/// listen on (rule data: `network: minerPorts`). Weighted low alone: many services share those
/// ports; other detectors and correlation give it weight.
public struct PoolContactDetector: Sendable {
    public let ports: Set<UInt16>
    public init(ports: Set<UInt16>) { self.ports = ports }

    /// Established connections this namespace opened (its local port is not one it listens on)
    /// to a pool port.
    public func contacts(_ sockets: [SocketEntry]) -> [SocketEntry] {
        let listening = Set(sockets.filter { $0.proto == .tcp && $0.isListening }.map(\.localPort))
        return sockets.filter { s in
            s.isEstablished && !listening.contains(s.localPort) && ports.contains(s.remotePort)
        }
    }
}
