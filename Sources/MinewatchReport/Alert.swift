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

/// One alert: a detector's verdict on one container, with its evidence.
public struct Alert: Sendable, Codable, Hashable {
    public struct Container: Sendable, Codable, Hashable {
        public var id: String
        public var name: String?
        public var image: String?
        public var runtime: String
        public init(id: String, name: String?, image: String?, runtime: String) {
            self.id = id
            self.name = name
            self.image = image
            self.runtime = runtime
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
