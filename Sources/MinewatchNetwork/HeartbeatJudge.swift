import Foundation
import MinewatchPackets
import MinewatchModel

/// Thresholds of the heartbeat trait (DePIN uptime farming): strictly periodic small client
/// messages on one long-lived connection.
public struct HeartbeatThresholds: Sendable, Hashable {
    /// Intervals needed (messages - 1), from the most recent messages.
    public var minIntervals = 5
    public var minPeriod: Double = 2
    public var maxPeriod: Double = 600
    /// Intervals that must lie within `tolerance` of the period (share of the period).
    public var tolerance = 0.2
    public var minRegularShare = 0.8
    /// Largest mean message (bytes on the wire, TLS framing included).
    public var maxMessageBytes: Double = 2048
    public init() {}
}

public enum HeartbeatJudge {
    /// A heartbeat in words, the same in `pcap` findings and `watch` traits and alerts.
    public static func describe(_ h: Heartbeat) -> String {
        String(format: "%d messages every %.1f s (jitter %.0f%%), %.0f bytes each, over %.0f s", h.messages, h.periodSeconds, h.jitter * 100,
               h.meanMessageBytes, h.seconds)
    }

    /// A heartbeat in a flow's client messages, or nil. The handshake's messages come first
    /// and are irregular, so only the most recent messages are judged.
    public static func judge(_ timer: MessageTimer?, model: HeartbeatThresholds = HeartbeatThresholds()) -> Heartbeat? {
        guard let t = timer, t.times.count >= model.minIntervals + 1 else { return nil }
        // Leave out the handshake: the first three messages when the flow is still short.
        let skip = t.messages == t.times.count ? min(3, t.times.count - model.minIntervals - 1) : 0
        let times = Array(t.times.dropFirst(skip)), sizes = Array(t.sizes.dropFirst(skip))
        guard times.count >= model.minIntervals + 1 else { return nil }
        let intervals = zip(times.dropFirst(), times).map { $0 - $1 }
        let period = intervals.sorted()[intervals.count / 2]
        guard period >= model.minPeriod, period <= model.maxPeriod else { return nil }
        let deviations = intervals.map { abs($0 - period) / period }
        let regular = deviations.filter { $0 <= model.tolerance }.count
        guard Double(regular) >= Double(intervals.count) * model.minRegularShare else { return nil }
        let mean = Double(sizes.reduce(0, +)) / Double(sizes.count)
        guard mean <= model.maxMessageBytes else { return nil }
        let jitter = deviations.sorted()[deviations.count / 2]
        return Heartbeat(messages: t.messages, periodSeconds: period, jitter: jitter, meanMessageBytes: mean,
                         seconds: (times.last ?? 0) - (times.first ?? 0))
    }
}
