import Foundation
import MinewatchCore

/// What `watch` measured for one container in one pass (emitted with `--telemetry`, shown in the
/// live table). Rates are per second over the last interval; nil when unknown.
public struct ContainerTelemetry: Sendable, Codable, Hashable {
    /// "telemetry", so JSON-lines readers can tell these records from alerts.
    public var type = "telemetry"
    public var time: Date
    public var container: Alert.Container
    public var processes: Int
    public var cpuCores: Double?
    public var cpuLimitCores: Double?
    /// cpuCores / cpuLimitCores (or / host cores when unlimited).
    public var cpuShare: Double?
    public var memoryBytes: UInt64?
    /// Namespace interface rates; nil on the host network (shared with the host).
    public var rxBytesPerSecond: Double?
    public var txBytesPerSecond: Double?
    public var rxPacketsPerSecond: Double?
    public var txPacketsPerSecond: Double?
    /// Over connections the container opened / over connections to its listening ports.
    public var outboundTxBytesPerSecond: Double?
    public var outboundRxBytesPerSecond: Double?
    public var inboundTxBytesPerSecond: Double?
    public var inboundRxBytesPerSecond: Double?
    public var outboundConnections: Int
    public var inboundConnections: Int
    public var listeningPorts: [UInt16]
    /// Remote endpoints of its established TCP connections and connected UDP sockets
    /// ("tcp addr:port out|in", "udp addr:port out"), at most 16.
    public var connections: [String]
    public var hostNetwork: Bool
    /// Packets read from its namespace's capture ring, and packets the kernel dropped from it
    /// (PACKET_STATISTICS), since the ring opened; nil while no ring is open.
    public var capturePackets: Int?
    public var captureDrops: Int?
    /// The size of that ring now (it follows the namespace's packet rate); nil while none is open.
    public var captureRingBytes: Int?
    /// What a detector saw that is not an alert on its own (an upload-heavy shape, a heartbeat).
    public var traits: [Trait]?
    /// Alerts of this container that an exception silenced ("exception (detector)").
    public var silenced: [String]?

    public init(time: Date, container: Alert.Container, processes: Int, cpuCores: Double? = nil, cpuLimitCores: Double? = nil,
                cpuShare: Double? = nil, memoryBytes: UInt64? = nil, rxBytesPerSecond: Double? = nil, txBytesPerSecond: Double? = nil,
                rxPacketsPerSecond: Double? = nil, txPacketsPerSecond: Double? = nil, outboundTxBytesPerSecond: Double? = nil,
                outboundRxBytesPerSecond: Double? = nil, inboundTxBytesPerSecond: Double? = nil, inboundRxBytesPerSecond: Double? = nil,
                outboundConnections: Int, inboundConnections: Int, listeningPorts: [UInt16], connections: [String], hostNetwork: Bool) {
        self.time = time
        self.container = container
        self.processes = processes
        self.cpuCores = cpuCores
        self.cpuLimitCores = cpuLimitCores
        self.cpuShare = cpuShare
        self.memoryBytes = memoryBytes
        self.rxBytesPerSecond = rxBytesPerSecond
        self.txBytesPerSecond = txBytesPerSecond
        self.rxPacketsPerSecond = rxPacketsPerSecond
        self.txPacketsPerSecond = txPacketsPerSecond
        self.outboundTxBytesPerSecond = outboundTxBytesPerSecond
        self.outboundRxBytesPerSecond = outboundRxBytesPerSecond
        self.inboundTxBytesPerSecond = inboundTxBytesPerSecond
        self.inboundRxBytesPerSecond = inboundRxBytesPerSecond
        self.outboundConnections = outboundConnections
        self.inboundConnections = inboundConnections
        self.listeningPorts = listeningPorts
        self.connections = connections
        self.hostNetwork = hostNetwork
    }
}

/// A behaviour a detector sees in a container that is not evidence of hijacking on its own: an
/// upload-heavy traffic shape (log shippers and backups have it too), a heartbeat (monitoring
/// agents have it too). Reported in telemetry at `low` at most; an alert needs more.
public struct Trait: Sendable, Codable, Hashable {
    /// "upload-heavy", "heartbeat".
    public var name: String
    public var detector: DetectorID
    public var severity: Severity
    public var summary: String
    public var since: Date
    public var technique: String?
    public init(name: String, detector: DetectorID, severity: Severity = .low, summary: String, since: Date, technique: String? = nil) {
        self.name = name
        self.detector = detector
        self.severity = min(severity, .low)
        self.summary = summary
        self.since = since
        self.technique = technique
    }
}
