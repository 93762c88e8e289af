import Foundation
import MinewatchCore
import MinewatchModel
import MinewatchSinks
import Synchronization

/// The history as a sink: records collect into a batch on the sink's own thread, and each time
/// its queue runs dry (or 2,000 records are waiting) the batch is written in one transaction, so a
/// slow disk never delays a pass (the queue absorbs it, and drops are counted) and a crash loses
/// at most that batch. Telemetry is also rolled up per container and minute; retention is
/// enforced every `retentionEvery` seconds of `clock` time.
public final class HistorySink: Sink {
    public let name = "history"
    public let store: HistoryStore
    let retentionEvery: Double
    let clock: any WallClock
    struct Minute {
        var minute: Int64
        var samples = 0
        var cpuSum = 0.0, cpuN = 0, cpuMax: Double?
        var shareSum = 0.0, shareN = 0
        var memMax: Int64?
        var upSum = 0.0, upN = 0
        var downSum = 0.0, downN = 0
        var connMax = 0
        var destinations: [String: Int] = [:]
    }
    struct State {
        var batch = HistoryStore.Batch()
        var pending = 0
        var minutes: [String: Minute] = [:]
        var lastRetention = Date.distantPast
        var lastError: String?
    }
    let state = Mutex(State())

    public init(store: HistoryStore, retentionEvery: Double = 60, clock: any WallClock = SystemClock()) {
        self.store = store
        self.retentionEvery = retentionEvery
        self.clock = clock
    }

    public func write(_ record: WatchRecord) throws(MinewatchError) {
        let full = state.withLock { s -> Bool in
            switch record {
            case .alert(let a): s.batch.alerts.append(a)
            case .response, .admission: break
            case .silenced(let a, let exception): s.batch.silenced.append((a.detectedAt, exception, a))
            case .telemetry(let list, _):
                s.batch.samples += list
                for t in list { Self.roll(t, into: &s) }
            }
            s.pending += 1
            return s.pending >= 2000
        }
        if full { try commit() }
    }

    /// Adds a sample to its container's minute; a finished minute becomes a row.
    static func roll(_ t: ContainerTelemetry, into s: inout State) {
        let minute = Int64(t.time.timeIntervalSince1970 / 60)
        var m = s.minutes[t.container.id] ?? Minute(minute: minute)
        if m.minute != minute {
            if m.samples > 0 { s.batch.minutes.append(row(t.container.id, m)) }
            m = Minute(minute: minute)
        }
        m.samples += 1
        if let c = t.cpuCores { m.cpuSum += c; m.cpuN += 1; m.cpuMax = max(m.cpuMax ?? 0, c) }
        if let c = t.cpuShare { m.shareSum += c; m.shareN += 1 }
        if let b = t.memoryBytes { m.memMax = max(m.memMax ?? 0, Int64(clamping: b)) }
        if let u = t.outboundTxBytesPerSecond { m.upSum += u; m.upN += 1 }
        if let d = t.outboundRxBytesPerSecond { m.downSum += d; m.downN += 1 }
        m.connMax = max(m.connMax, t.outboundConnections + t.inboundConnections)
        for c in t.connections.prefix(16) {
            // "tcp 198.18.1.5:443 out": keep the endpoint and direction.
            let key = c.split(separator: " ").dropFirst().joined(separator: " ")
            if m.destinations[key] != nil || m.destinations.count < 64 { m.destinations[key, default: 0] += 1 }
        }
        s.minutes[t.container.id] = m
        // A container not seen for two minutes has finished its last minute.
        if s.minutes.count > 1 {
            for (id, other) in s.minutes where other.minute < minute - 1 {
                if other.samples > 0 { s.batch.minutes.append(row(id, other)) }
                s.minutes[id] = nil
            }
        }
    }

    static func row(_ id: String, _ m: Minute) -> HistoryStore.MinuteRow {
        HistoryStore.MinuteRow(containerID: id, minute: m.minute, samples: m.samples,
                               cpuCores: m.cpuN > 0 ? m.cpuSum / Double(m.cpuN) : nil, cpuCoresMax: m.cpuMax,
                               cpuShare: m.shareN > 0 ? m.shareSum / Double(m.shareN) : nil, memoryBytesMax: m.memMax,
                               uploadBps: m.upN > 0 ? m.upSum / Double(m.upN) : nil, downloadBps: m.downN > 0 ? m.downSum / Double(m.downN) : nil,
                               connectionsMax: m.connMax,
                               destinations: m.destinations.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.prefix(5).map(\.key))
    }

    func commit() throws(MinewatchError) {
        let now = clock.now()
        let (batch, retention) = state.withLock { s -> (HistoryStore.Batch, Bool) in
            defer { s.batch = HistoryStore.Batch(); s.pending = 0 }
            let due = now.timeIntervalSince(s.lastRetention) >= retentionEvery
            if due { s.lastRetention = now }
            return (s.batch, due)
        }
        try store.write(batch)
        if retention || store.nearLimit { try store.enforceRetention(now: now) }
    }

    public func flush() {
        do throws(MinewatchError) { try commit() } catch {
            state.withLock { $0.lastError = error.description }
        }
    }

    /// The last error a flush met (flush cannot throw), for the agent to report.
    public var lastError: String? { state.withLock { $0.lastError } }

    public func close() {
        // Minutes under way are written as they are.
        state.withLock { s in
            for (id, m) in s.minutes where m.samples > 0 { s.batch.minutes.append(Self.row(id, m)) }
            s.minutes = [:]
        }
        flush()
    }
}
