import ArgumentParser
import MinewatchCore

/// A duration on the command line: `500ms`, `2s`, `1m`, `1h30m`, or bare seconds.
public struct DurationArgument: ExpressibleByArgument, Sendable, Hashable, CustomStringConvertible {
    public var seconds: Double
    public init(seconds: Double) { self.seconds = seconds }
    public init?(argument: String) {
        guard let s = Durations.parse(argument), s >= 0 else { return nil }
        seconds = s
    }
    public var description: String { Durations.format(seconds) }
    public var defaultValueDescription: String { Durations.format(seconds) }
}
