import Foundation
import MinewatchCore

/// A clock that always says `date`: detectors and sinks under test see no wall-clock time.
public struct FixedClock: WallClock {
    public var date: Date
    public init(date: Date) { self.date = date }
    public func now() -> Date { date }
}
