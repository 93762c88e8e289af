import Foundation
import MinewatchCore

/// The detectors of `watch`. The raw values are what every output calls them.
public enum DetectorID: String, Sendable, Codable, CaseIterable, Comparable, CustomStringConvertible {
    case minerProcess = "miner-process"
    case poolContact = "pool-contact"
    case drift
    case cpuMiner = "cpu-miner"
    case bandwidthMiner = "bandwidth-miner"
    case miningProtocol = "mining-protocol"
    /// Relaying other people's traffic: a tunnel in, many targets out, bytes balanced (proxyjacking).
    case relay
    /// Names a container looks up or sends (DNS, TLS SNI, HTTP Host) of bandwidth-sharing services.
    case bandwidthService = "bandwidth-service"

    public var description: String { rawValue }

    /// The MITRE ATT&CK technique an alert of this detector stands for, unless the verdict
    /// names one (a PacketCrypt pool protocol, a proxyware process): T1496.001 compute
    /// hijacking, T1496.002 bandwidth hijacking; none for drift (a new executable alone).
    public var defaultTechnique: String? {
        switch self {
        case .minerProcess, .poolContact, .cpuMiner, .miningProtocol: "T1496.001"
        case .bandwidthMiner, .relay, .bandwidthService: "T1496.002"
        case .drift: nil
        }
    }
    public static func < (a: DetectorID, b: DetectorID) -> Bool { a.rawValue < b.rawValue }
}

/// Where a container runs in Kubernetes (`k8s.namespace`, `k8s.pod`, `k8s.container` in the
/// outputs, Falco's `k8s.ns.name` and `k8s.pod.name` in Falco-compatible events).
public struct KubernetesMetadata: Sendable, Codable, Hashable {
    public var namespace: String?
    public var pod: String?
    public var container: String?
    public init(namespace: String?, pod: String?, container: String?) {
        self.namespace = namespace
        self.pod = pod
        self.container = container
    }
    public var isEmpty: Bool { namespace == nil && pod == nil && container == nil }
}

/// What the node knows about a container besides its id: from the engine API, or from the
/// runtime's own state (an OCI bundle's annotations).
public struct ContainerMetadata: Sendable, Hashable {
    public var name: String?
    public var image: String?
    public var k8s: KubernetesMetadata?
    public var labels: [String: String]
    public init(name: String? = nil, image: String? = nil, k8s: KubernetesMetadata? = nil, labels: [String: String] = [:]) {
        self.name = name
        self.image = image
        self.k8s = k8s
        self.labels = labels
    }

    /// This, with what it lacks taken from `other`.
    public func merged(with other: ContainerMetadata?) -> ContainerMetadata {
        guard let other else { return self }
        var k = k8s ?? other.k8s
        if let o = other.k8s, let mine = k8s {
            k = KubernetesMetadata(namespace: mine.namespace ?? o.namespace, pod: mine.pod ?? o.pod, container: mine.container ?? o.container)
        }
        return ContainerMetadata(name: name ?? other.name, image: image ?? other.image, k8s: k,
                                 labels: labels.merging(other.labels) { a, _ in a })
    }
}

/// One alert: a detector's verdict on one container, with its evidence.
public struct Alert: Sendable, Codable, Hashable {
    public struct Container: Sendable, Codable, Hashable {
        public var id: String
        public var name: String?
        public var image: String?
        public var runtime: String
        /// Kubernetes pod metadata when known (OCI bundle annotations of containerd's CRI
        /// plugin and CRI-O, or an engine's io.kubernetes.* labels).
        public var k8s: KubernetesMetadata?
        /// Engine or CRI labels (bounded: at most 64, as the engine reports them).
        public var labels: [String: String]?
        public init(id: String, name: String?, image: String?, runtime: String, k8s: KubernetesMetadata? = nil, labels: [String: String]? = nil) {
            self.id = id
            self.name = name
            self.image = image
            self.runtime = runtime
            self.k8s = k8s
            self.labels = labels
        }

        public init(id: String, runtime: String, metadata m: ContainerMetadata?) {
            self.init(id: id, name: m?.name, image: m?.image, runtime: runtime, k8s: m?.k8s, labels: m?.labels.isEmpty == false ? m?.labels : nil)
        }
    }

    public var time: Date
    public var container: Container
    public var detector: DetectorID
    public var severity: Severity
    public var family: String?
    public var summary: String
    public var evidence: [Evidence]
    /// Numbers behind the verdict (CPU cores, rates, counts).
    public var metrics: [String: Double]
    public var pid: Int32?
    public var exe: String?
    /// First evidence (the process's start time for process detectors).
    public var startedAt: Date
    public var detectedAt: Date
    /// Seconds from first evidence to the alert.
    public var timeToDetect: Double
    /// What `--action` did about it (absent when only alerting).
    public var response: ResponseOutcome?
    /// MITRE ATT&CK technique (T1496.001 compute hijacking, T1496.002 bandwidth hijacking).
    public var technique: String?

    public init(time: Date, container: Container, detector: DetectorID, severity: Severity, family: String?, summary: String,
                evidence: [Evidence], metrics: [String: Double], pid: Int32?, exe: String?, startedAt: Date, detectedAt: Date,
                timeToDetect: Double, response: ResponseOutcome? = nil, technique: String? = nil) {
        self.technique = technique
        self.time = time
        self.container = container
        self.detector = detector
        self.severity = severity
        self.family = family
        self.summary = summary
        self.evidence = evidence
        self.metrics = metrics
        self.pid = pid
        self.exe = exe
        self.startedAt = startedAt
        self.detectedAt = detectedAt
        self.timeToDetect = timeToDetect
        self.response = response
    }

    enum CodingKeys: String, CodingKey {
        case time, container, detector, severity, family, summary, evidence, metrics, pid, exe, startedAt, detectedAt, timeToDetect, response, technique
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(time, forKey: .time)
        try c.encode(container, forKey: .container)
        try c.encode(detector, forKey: .detector)
        try c.encode(severity, forKey: .severity)
        try c.encode(family, forKey: .family)
        try c.encode(summary, forKey: .summary)
        try c.encode(evidence, forKey: .evidence)
        try c.encode(metrics, forKey: .metrics)
        try c.encodeIfPresent(pid, forKey: .pid)
        try c.encodeIfPresent(exe, forKey: .exe)
        try c.encode(startedAt, forKey: .startedAt)
        try c.encode(detectedAt, forKey: .detectedAt)
        try c.encode(timeToDetect, forKey: .timeToDetect)
        try c.encodeIfPresent(response, forKey: .response)
        try c.encodeIfPresent(technique, forKey: .technique)
    }
}

/// The outcome of one response to an alert.
public struct ResponseOutcome: Sendable, Codable, Hashable {
    public var action: String
    public var dryRun: Bool
    /// What it was applied to ("cgroup ...", "pid 123 (xmrig)", "container 0123456789ab").
    public var target: String
    public var ok: Bool
    /// "frozen", "killed", "stopped", "would freeze", or why it was refused or failed.
    public var result: String

    public init(action: String, dryRun: Bool, target: String, ok: Bool, result: String) {
        self.action = action
        self.dryRun = dryRun
        self.target = target
        self.ok = ok
        self.result = result
    }
}

/// What a response did, written after the alert it answers (`"type": "response"`): the alert is
/// out before anything is frozen, killed or stopped.
public struct ResponseRecord: Sendable, Codable, Hashable {
    public var type = "response"
    public var time: Date
    public var container: Alert.Container
    public var detector: DetectorID
    public var severity: Severity
    public var response: ResponseOutcome
    public init(time: Date, alert: Alert, response: ResponseOutcome) {
        self.time = time
        container = alert.container
        detector = alert.detector
        severity = alert.severity
        self.response = response
    }
}

extension ContainerMetadata {
    /// Kubernetes metadata from the keys the runtimes write: containerd's CRI plugin
    /// (`io.kubernetes.cri.*` annotations), CRI-O (`io.kubernetes.pod.*`,
    /// `io.kubernetes.container.name`, `io.kubernetes.cri-o.*` annotations) and the labels
    /// dockershim and cri-dockerd put on Docker containers (the same `io.kubernetes.*` keys).
    public static func kubernetes(_ a: [String: String]) -> KubernetesMetadata? {
        let k = KubernetesMetadata(
            namespace: a["io.kubernetes.cri.sandbox-namespace"] ?? a["io.kubernetes.pod.namespace"],
            pod: a["io.kubernetes.cri.sandbox-name"] ?? a["io.kubernetes.pod.name"],
            container: a["io.kubernetes.cri.container-name"] ?? a["io.kubernetes.container.name"] ?? a["io.kubernetes.cri-o.ContainerName"].map(criOContainerName))
        return k.isEmpty ? nil : k
    }

    /// The image a runtime's annotations name (CRI's image-name, CRI-O's ImageName).
    public static func image(_ a: [String: String]) -> String? {
        a["io.kubernetes.cri.image-name"] ?? a["io.kubernetes.cri-o.ImageName"] ?? a["org.opencontainers.image.ref.name"]
    }

    /// CRI-O names containers `k8s_<container>_<pod>_<namespace>_<uid>_<attempt>`.
    static func criOContainerName(_ s: String) -> String {
        let parts = s.split(separator: "_", omittingEmptySubsequences: false)
        return parts.count >= 2 && parts[0] == "k8s" ? String(parts[1]) : s
    }
}

extension Alert {
    /// The hosts (addresses or names) the alert's evidence names as destinations: pools,
    /// servers, connections, upload destinations, a relay's vendor side, a service's domain.
    public var destinationHosts: [String] {
        var out: [String] = []
        for e in evidence {
            switch (e.kind, e.name) {
            case (.pool, "destination"), (.pool, "pool"), (.pool, "handler"), (.pool, "server"), (.pool, "connection"), (.pool, "vendor"):
                if let h = Self.host(of: e.value) { out.append(h) }
            case (.pool, let name) where name.contains("."):
                out.append(name.lowercased())
            default: continue
            }
        }
        return out
    }

    /// The host of "host:port (…)", "[v6]:port", "scheme://host:port/path" or a bare host.
    public static func host(of value: String) -> String? {
        var s = Substring(value.split(separator: " ").first ?? "")
        if let r = s.range(of: "://") { s = s[r.upperBound...] }
        if let slash = s.firstIndex(of: "/") { s = s[..<slash] }
        if let at = s.lastIndex(of: "@") { s = s[s.index(after: at)...] }
        if s.hasPrefix("[") {
            guard let close = s.firstIndex(of: "]") else { return nil }
            return String(s[s.index(after: s.startIndex)..<close])
        }
        if s.filter({ $0 == ":" }).count == 1, let colon = s.firstIndex(of: ":") { s = s[..<colon] }
        return s.isEmpty ? nil : s.lowercased()
    }
}
