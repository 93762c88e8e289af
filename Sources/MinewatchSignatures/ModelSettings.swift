import MinewatchCore

/// Thresholds of the behaviour models set in rule files (`models:`), so a fleet tunes them in
/// the same place as its rules; `watch` and `pcap` options override them. Values are checked on
/// load (durations as `20s`, byte amounts as `32KiB`), and each model reads only the keys it
/// knows.
public struct ModelSettings: Sendable, Hashable {
    public enum Kind: Sendable { case duration, bytes, count, share, number }
    /// The models and their keys.
    public static let schema: [String: [String: Kind]] = [
        "bandwidth": ["window": .duration, "minUpload": .bytes, "minRatio": .number, "maxDestinations": .count, "minExchanges": .count],
        "relay": ["window": .duration, "minRate": .bytes, "minTargets": .count, "tolerance": .share, "slack": .bytes, "slackPerTarget": .bytes, "inStep": .share],
        "heartbeat": ["minIntervals": .count, "minPeriod": .duration, "maxPeriod": .duration, "tolerance": .share, "maxMessageBytes": .bytes],
    ]

    /// model -> key -> value (seconds, bytes, counts, shares).
    public var values: [String: [String: Double]] = [:]
    public init(values: [String: [String: Double]] = [:]) { self.values = values }

    public subscript(model: String, key: String) -> Double? { values[model]?[key] }

    /// Later settings win key by key.
    public func merged(with other: ModelSettings) -> ModelSettings {
        var v = values
        for (m, kv) in other.values { v[m, default: [:]].merge(kv) { _, b in b } }
        return ModelSettings(values: v)
    }

    public struct Invalid: Error, Sendable { public var why: String }

    /// A value of `kind` from its text, or why not.
    public static func parse(_ text: String, as kind: Kind) -> Result<Double, Invalid> {
        switch kind {
        case .duration:
            guard let v = Durations.parse(text), v > 0 else { return .failure(Invalid(why: "expected a duration such as 20s or 1m")) }
            return .success(v)
        case .bytes:
            guard let v = ByteAmounts.parse(text) else { return .failure(Invalid(why: "expected bytes such as 32768, 32KiB or 1MB")) }
            return .success(v)
        case .count:
            guard let v = Int(text), v >= 0 else { return .failure(Invalid(why: "expected a whole number")) }
            return .success(Double(v))
        case .share:
            guard let v = Double(text), (0...1).contains(v) else { return .failure(Invalid(why: "expected a share between 0 and 1")) }
            return .success(v)
        case .number:
            guard let v = Double(text), v >= 0, v.isFinite else { return .failure(Invalid(why: "expected a number")) }
            return .success(v)
        }
    }
}
