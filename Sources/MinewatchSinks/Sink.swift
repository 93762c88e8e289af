import Foundation
import MinewatchCore
import MinewatchModel
import Synchronization

/// Where `watch` records go (a file, standard output, the live screen, an HTTP receiver, ...).
/// `write` is called on the sink's own queue thread, one record at a time, in order.
public protocol Sink: AnyObject, Sendable {
    var name: String { get }
    func write(_ record: WatchRecord) throws(MinewatchError)
    /// Called when the queue is empty after writing (flush buffers).
    func flush()
    func close()
}

extension Sink {
    public func flush() {}
    public func close() {}
}

/// How one sink is doing.
public struct SinkStats: Sendable, Hashable, Codable {
    public var name: String
    public var written: Int
    /// Alert records among them.
    public var alertsWritten = 0
    /// Records refused because the queue was full (the sink was too slow), as Falco counts them.
    public var dropped: Int
    /// Alert records among the dropped ones.
    public var alertsDropped = 0
    /// Records the sink failed to write.
    public var failed: Int
    public var queued: Int
    public var lastError: String?

    public init(name: String, written: Int, alertsWritten: Int = 0, dropped: Int, alertsDropped: Int = 0, failed: Int, queued: Int, lastError: String? = nil) {
        self.name = name
        self.written = written
        self.alertsWritten = alertsWritten
        self.dropped = dropped
        self.alertsDropped = alertsDropped
        self.failed = failed
        self.queued = queued
        self.lastError = lastError
    }
}

/// A bounded queue in front of one sink, drained by a thread of its own: a slow or stuck sink
/// never delays a pass, and what does not fit is dropped and counted (the way Falco's outputs
/// queue behaves). `written` counts records in order, so a caller can wait for one to be out.
public final class SinkQueue: Sendable {
    struct State {
        var items: [WatchRecord] = []
        /// Records the writer has taken from `items` and not yet finished: they count against
        /// the capacity, so a stuck sink holds at most `capacity` records in all.
        var held = 0
        var closing = false
        var stats: SinkStats
    }

    public let sink: any Sink
    public let capacity: Int
    let state: Mutex<State>
    let wake = DispatchSemaphore(value: 0)
    let finished = DispatchSemaphore(value: 0)
    /// Records accepted so far (the sequence number of the last one enqueued).
    let accepted = Atomic<Int>(0)
    let done = Atomic<Int>(0)

    public init(_ sink: any Sink, capacity: Int = 10_000) {
        self.sink = sink
        self.capacity = max(1, capacity)
        state = Mutex(State(stats: SinkStats(name: sink.name, written: 0, dropped: 0, failed: 0, queued: 0)))
        let thread = Thread { [self] in self.run() }
        thread.name = "minewatch-sink-\(sink.name)"
        thread.start()
    }

    /// Hands a record to the sink; returns its sequence number, or nil when it was dropped.
    @discardableResult
    public func enqueue(_ r: WatchRecord) -> Int? {
        let ok = state.withLock { s -> Bool in
            if s.closing || s.items.count + s.held >= capacity {
                s.stats.dropped += 1
                if case .alert = r { s.stats.alertsDropped += 1 }
                return false
            }
            s.items.append(r)
            return true
        }
        guard ok else { return nil }
        let seq = accepted.add(1, ordering: .sequentiallyConsistent).newValue
        wake.signal()
        return seq
    }

    /// Waits (at most `timeout`) until record `seq` was handed to the sink.
    public func waitWritten(_ seq: Int, timeout: TimeInterval) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while done.load(ordering: .sequentiallyConsistent) < seq {
            if Date() >= deadline { return false }
            usleep(2_000)
        }
        return true
    }

    public var stats: SinkStats {
        state.withLock { s in
            var st = s.stats
            st.queued = s.items.count + s.held
            return st
        }
    }

    /// Writes what is queued (at most `timeout`), then closes the sink.
    public func close(timeout: TimeInterval = 10) {
        state.withLock { $0.closing = true }
        wake.signal()
        _ = finished.wait(timeout: .now() + timeout)
    }

    func run() {
        while true {
            wake.wait()
            while true {
                let (batch, closing) = state.withLock { s -> ([WatchRecord], Bool) in
                    let b = s.items
                    s.items.removeAll(keepingCapacity: true)
                    s.held = b.count
                    return (b, s.closing)
                }
                for r in batch {
                    do throws(MinewatchError) {
                        try sink.write(r)
                        state.withLock { s in
                            s.held -= 1
                            s.stats.written += 1
                            if case .alert = r { s.stats.alertsWritten += 1 }
                        }
                    } catch {
                        state.withLock { s in
                            s.held -= 1
                            s.stats.failed += 1
                            s.stats.lastError = error.description
                        }
                    }
                    done.add(1, ordering: .sequentiallyConsistent)
                }
                if !batch.isEmpty { sink.flush() }
                if closing && batch.isEmpty {
                    sink.close()
                    finished.signal()
                    return
                }
                if batch.isEmpty { break }
            }
        }
    }
}

/// Records as lines on a file handle (standard output or a file opened for appending).
public final class LineSink: Sink {
    public let name: String
    let handle: FileHandle
    let render: @Sendable (WatchRecord) -> String
    let closeHandle: Bool

    /// `render` gives the text of a record (empty: nothing to write, e.g. telemetry not wanted).
    public init(name: String, handle: FileHandle, closeWhenDone: Bool, render: @escaping @Sendable (WatchRecord) -> String) {
        self.name = name
        self.handle = handle
        self.render = render
        closeHandle = closeWhenDone
    }

    public func write(_ record: WatchRecord) throws(MinewatchError) {
        let text = render(record)
        guard !text.isEmpty else { return }
        do { try handle.write(contentsOf: Data(text.utf8)) } catch {
            throw MinewatchError(.io, operation: "write", subject: name, message: "\(error.localizedDescription)")
        }
    }

    public func close() { if closeHandle { try? handle.close() } }
}

/// The live screen on a terminal: redrawn from each pass's telemetry with the latest alerts
/// (at most `keep` of them are remembered).
public final class ScreenSink: Sink {
    public let name = "screen"
    let handle: FileHandle
    let keep: Int
    let render: @Sendable ([ContainerTelemetry], [Alert]) -> String
    let alerts = Mutex<[Alert]>([])

    public init(handle: FileHandle, keep: Int = 200, render: @escaping @Sendable ([ContainerTelemetry], [Alert]) -> String) {
        self.handle = handle
        self.keep = keep
        self.render = render
    }

    public func write(_ record: WatchRecord) throws(MinewatchError) {
        switch record {
        case .alert(let a):
            alerts.withLock { list in
                list.append(a)
                if list.count > keep { list.removeFirst(list.count - keep) }
            }
        case .response(let r):
            alerts.withLock { list in
                if let i = list.lastIndex(where: { $0.container.id == r.container.id && $0.detector == r.detector }) { list[i].response = r.response }
            }
        case .silenced, .admission: break
        case .telemetry(let t, _):
            let text = render(t, alerts.withLock { $0 })
            try? handle.write(contentsOf: Data(text.utf8))
        }
    }
}
