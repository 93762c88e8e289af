import Foundation
import MinewatchCore
import MinewatchHost
import MinewatchModel

/// The one place an alert is made from a detector's verdict: the container block (names and
/// images from the engine when one answers), the detector, the times.
public struct AlertBuilder {
    /// Names, images and Kubernetes metadata by container id (an engine API, the runtimes'
    /// bundles); nil when there is none.
    public var describe: (@Sendable (String) -> ContainerMetadata?)?

    public init(describe: (@Sendable (String) -> ContainerMetadata?)? = nil) { self.describe = describe }

    public func container(_ ref: ContainerRef) -> Alert.Container {
        Alert.Container(id: ref.id, runtime: ref.runtime.rawValue, metadata: describe?(ref.id))
    }

    public func alert(_ v: Verdict, detector: DetectorID, container ref: ContainerRef, now: Date) -> Alert {
        Alert(time: now, container: container(ref), detector: detector, severity: v.severity, family: v.family, summary: v.summary,
              evidence: v.evidence, metrics: v.metrics, pid: v.pid, exe: v.exe, startedAt: v.startedAt, detectedAt: now,
              timeToDetect: max(0, now.timeIntervalSince(v.startedAt)),
              technique: v.technique ?? (v.family == "packetcrypt" ? "T1496.002" : detector.defaultTechnique))
    }
}
