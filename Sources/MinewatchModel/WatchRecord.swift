import Foundation

/// One record `watch` hands to its sinks.
public enum WatchRecord: Sendable {
    case alert(Alert)
    /// What a response did about an alert (after the alert).
    case response(ResponseRecord)
    /// One pass's telemetry, every container.
    case telemetry([ContainerTelemetry], time: Date)
    /// An alert an exception silenced: not emitted, but kept where a sink keeps a record (the
    /// history). Outputs that emit alerts ignore it.
    case silenced(Alert, exception: String)
    /// A decision of the admission webhook (`minewatch admit`), on the same sinks.
    case admission(AdmissionEvent)
}
