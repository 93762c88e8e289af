import Foundation
import MinewatchCore
import MinewatchHost

/// Time source for detectors, so tests can drive them.
public protocol Clock: Sendable {
    func now() -> Date
}

public struct SystemClock: Clock {
    public init() {}
    public func now() -> Date { Date() }
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
    public var detector: String
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

    public init(time: Date, container: Container, detector: String, severity: Severity, family: String?, summary: String,
                evidence: [Evidence], metrics: [String: Double], pid: Int32?, exe: String?, startedAt: Date, detectedAt: Date,
                timeToDetect: Double, response: ResponseOutcome? = nil) {
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
        case time, container, detector, severity, family, summary, evidence, metrics, pid, exe, startedAt, detectedAt, timeToDetect, response
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
    }
}
