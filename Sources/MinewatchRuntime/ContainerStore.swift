import Foundation
import MinewatchCore
import MinewatchNetwork
import MinewatchModel

/// Everything `watch` remembers about one container: which detectors alerted, each detector's
/// own state, the meters every pass derives traffic and CPU from, and its latest telemetry. It is
/// created when the container is first seen and dropped, all of it at once, when it is gone.
public struct ContainerState {
    public let id: String
    public let firstSeen: Date
    public internal(set) var alerted: Set<DetectorID> = []
    /// Detectors whose alert was medium or above.
    public internal(set) var alertedAtMedium: Set<DetectorID> = []
    /// The traffic meter (per-connection and interface counters to per-interval traffic).
    var traffic = TrafficMeter()
    /// The previous pass's CPU sample (for cores used).
    var lastCPU: CPUSample?
    /// The compute probe samples it, or found RandomX's memory shape (`ComputeSignals.mayConvict`):
    /// its CPU demand (run-queue wait) is read, so a miner on a contended host that gets less than
    /// its limit is still judged at it. Not while the probe leaves a process that keeps rounding to
    /// nearest alone (`ComputeProbe.quietFor`): nothing can convict it then.
    var probed = false
    /// The detectors looked at it in the last pass and it was still then (see
    /// `ContainerSnapshot.still`): while it stays still they have seen all there is.
    var judgedStill = false
    public internal(set) var telemetry: ContainerTelemetry?
    /// When its name is next looked up for telemetry while nothing names it, and how many
    /// lookups found nothing (see `Watcher.describe`).
    var describeRetry: (at: Date, misses: Int)?
    /// Alerts the exceptions silenced here ("exception (detector)"), for telemetry.
    public internal(set) var silenced: [String] = []
    /// Silenced verdicts already counted (exception, detector, destinations, executable).
    var silencedKeys: Set<String> = []
    /// Each detector's state.
    var detectors = DetectorStates()

    init(id: String, now: Date) {
        self.id = id
        firstSeen = now
    }
}

/// The per-container states of `watch`, created and evicted in one place. A container is dropped
/// when it has not been seen for `evictAfter` seconds (its processes are gone), so nothing any
/// detector remembers grows with the number of containers that ever ran.
public final class ContainerStore {
    public private(set) var states: [String: ContainerState] = [:]
    public var evictAfter: TimeInterval
    /// Called with each evicted id (responses forget what they did there).
    public var onEvict: ((String) -> Void)?
    public private(set) var evicted = 0

    public init(evictAfter: TimeInterval = 10) { self.evictAfter = evictAfter }

    /// Marks the containers seen in a pass (creating new states) and drops those gone.
    func update(seen ids: [String], now: Date) {
        for id in ids {
            if states.index(forKey: id) == nil { states[id] = ContainerState(id: id, now: now) }
            seenAt[id] = now
        }
        // Through `seenAt`, kept apart from the states: walking `states` copies every
        // container's state.
        for (id, at) in seenAt where now.timeIntervalSince(at) > evictAfter {
            states[id] = nil
            seenAt[id] = nil
            evicted += 1
            onEvict?(id)
        }
    }
    /// When each container was last seen.
    public private(set) var seenAt: [String: Date] = [:]

    public subscript(id: String) -> ContainerState? { states[id] }

    /// Mutates the state in place (through the dictionary's storage: neither moved out and back,
    /// which hashed its id twice more, nor copied).
    func modify<R>(_ id: String, _ body: (inout ContainerState) -> R) -> R? {
        guard let i = states.index(forKey: id) else { return nil }
        return body(&states.values[i])
    }
}
