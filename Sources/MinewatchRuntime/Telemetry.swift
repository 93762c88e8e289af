import Foundation
import MinewatchHost
import MinewatchNetwork

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

extension Watcher {
    func updateTelemetry(_ samples: [ProcessSample], _ views: [String: NetView]) {
        var next: [String: ContainerTelemetry] = [:]
        var procs: [String: [ProcessSample]] = [:]
        for s in samples { if let c = s.container { procs[c.id, default: []].append(s) } }
        let now = clock.now()
        for (id, list) in procs {
            guard let c = list.first?.container else { continue }
            var t = telemetry[id] ?? ContainerTelemetry(
                time: now, container: .init(id: id, name: nil, image: nil, runtime: c.runtime.rawValue), processes: 0,
                outboundConnections: 0, inboundConnections: 0, listeningPorts: [], connections: [], hostNetwork: false)
            if t.container.name == nil, let d = (describeCached ?? describe)?(id) { t.container.name = d.name; t.container.image = d.image }
            t.time = now
            t.processes = list.count
            if let cpu = cpuSamples[id], cpu.count >= 2 {
                let a = cpu[cpu.count - 2], b = cpu[cpu.count - 1]
                let dt = b.time.timeIntervalSince(a.time)
                if dt > 0, b.cpuNanos >= a.cpuNanos {
                    t.cpuCores = Double(b.cpuNanos - a.cpuNanos) / 1e9 / dt
                    t.cpuLimitCores = b.limitCores
                    t.cpuShare = t.cpuCores.map { $0 / (b.limitCores ?? self.cpu.hostCores) }
                }
            }
            t.memoryBytes = memory[id]
            if let v = views[id] {
                let o = v.observation
                t.hostNetwork = o.hostNetwork
                t.listeningPorts = o.listenPorts.sorted()
                let connected = o.sockets.filter { $0.isEstablished }
                t.outboundConnections = connected.filter { !o.listenPorts.contains($0.localPort) }.count
                t.inboundConnections = connected.count - t.outboundConnections
                // TCP connections, then connected UDP sockets (a remote endpoint set).
                let udp = o.sockets.filter { $0.proto == .udp && $0.remotePort != 0 }
                t.connections = (connected + udp).prefix(16).map {
                    "\($0.proto.rawValue) \($0.remoteAddress):\($0.remotePort) \($0.proto == .udp ? "out" : (o.listenPorts.contains($0.localPort) ? "in" : "out"))"
                }
                if let iv = bandwidth[id]?.intervals.last, iv.end == o.time {
                    let sec = iv.seconds
                    t.rxBytesPerSecond = iv.ifRx.map { $0 / sec }
                    t.txBytesPerSecond = iv.ifTx.map { $0 / sec }
                    t.rxPacketsPerSecond = iv.ifRxPackets.map { $0 / sec }
                    t.txPacketsPerSecond = iv.ifTxPackets.map { $0 / sec }
                    t.outboundTxBytesPerSecond = iv.outTx / sec
                    t.outboundRxBytesPerSecond = iv.outRx / sec
                    t.inboundTxBytesPerSecond = iv.inTx / sec
                    t.inboundRxBytesPerSecond = iv.inRx / sec
                }
            }
            next[id] = t
        }
        telemetry = next
        processes = procs
    }
}
