import Foundation
import MinewatchCore
import MinewatchHost
import MinewatchModel
import MinewatchSinks
import Synchronization

/// `watch` end to end: each pass runs the detection pipeline (`Watcher`), hands the alerts and
/// the pass's telemetry to every sink's bounded queue (a slow sink never delays a pass), and
/// hands alerts at or above `--act-on` to the response worker, which acts only once the first
/// sink has written the alert, then reports what it did as a response record.
public final class Agent {
    public let watcher: Watcher
    public let sinks: [SinkQueue]
    let responses: ResponseWorker?
    /// Alerts raised by the detectors (every one was handed to every sink).
    public private(set) var alertsRaised = 0
    public private(set) var lastPassSeconds: Double = 0
    /// The alerts of the last pass.
    public private(set) var lastAlerts: [Alert] = []

    public init(watcher: Watcher, sinks: [SinkQueue], responder: sending Responder?) {
        self.watcher = watcher
        self.sinks = sinks
        if let responder { responses = ResponseWorker(responder: responder, sinks: sinks) } else { responses = nil }
        let previous = watcher.store.onEvict
        watcher.store.onEvict = { [responses] id in
            previous?(id)
            responses?.forget(id)
        }
    }

    /// One pass; returns its alerts.
    @discardableResult
    public func pass() -> [Alert] {
        let start = Date()
        let alerts = watcher.poll()
        alertsRaised += alerts.count
        for a in alerts {
            let seqs = sinks.map { $0.enqueue(.alert(a)) }
            responses?.submit(a, processes: watcher.processes(of: a.container.id), written: seqs.first ?? nil)
        }
        for s in watcher.silenced { for q in sinks { q.enqueue(.silenced(s.alert, exception: s.exception)) } }
        // Containers gone are not reported again while the store remembers them.
        let t = watcher.currentTelemetry
        for s in sinks { s.enqueue(.telemetry(t, time: watcher.sampler.lastPassTime ?? start)) }
        lastPassSeconds = Date().timeIntervalSince(start)
        lastAlerts = alerts
        return alerts
    }

    /// Finishes the responses under way, then writes what every sink has queued and closes it,
    /// all sinks at once, within one deadline (a Kubernetes grace period is 30 s by default).
    public func finish(timeout: TimeInterval = 10) {
        let deadline = Date().addingTimeInterval(timeout)
        responses?.finish(timeout: timeout / 2)
        let group = DispatchGroup()
        for s in sinks {
            group.enter()
            let left = max(0.5, deadline.timeIntervalSinceNow)
            Thread {
                s.close(timeout: left)
                group.leave()
            }.start()
        }
        _ = group.wait(timeout: .now() + max(0.5, deadline.timeIntervalSinceNow) + 0.5)
    }

    public var sinkStats: [SinkStats] { sinks.map(\.stats) }
    /// Responses that failed, for the command to report.
    public func takeResponseFailures() -> [ResponseRecord] { responses?.takeFailures() ?? [] }
}

/// Runs responses on a thread of its own, each after its alert was written by the first sink
/// (bounded wait), so an action never precedes the alert it answers and never delays a pass.
final class ResponseWorker: Sendable {
    struct Job: Sendable {
        var alert: Alert
        var processes: [ProcessSample]
        var written: Int?
    }
    struct State {
        var jobs: [Job] = []
        var forget: [String] = []
        var closing = false
        var failures: [ResponseRecord] = []
    }

    let responder: Mutex<Responder>
    let sinks: [SinkQueue]
    let state = Mutex(State())
    let wake = DispatchSemaphore(value: 0)
    let finished = DispatchSemaphore(value: 0)

    init(responder: sending Responder, sinks: [SinkQueue]) {
        self.responder = Mutex(responder)
        self.sinks = sinks
        Thread { [self] in self.run() }.start()
    }

    func submit(_ alert: Alert, processes: [ProcessSample], written: Int?) {
        state.withLock { $0.jobs.append(Job(alert: alert, processes: processes, written: written)) }
        wake.signal()
    }

    func forget(_ container: String) {
        state.withLock { $0.forget.append(container) }
        wake.signal()
    }

    func takeFailures() -> [ResponseRecord] {
        state.withLock { s in
            defer { s.failures = [] }
            return s.failures
        }
    }

    func finish(timeout: TimeInterval) {
        state.withLock { $0.closing = true }
        wake.signal()
        _ = finished.wait(timeout: .now() + timeout)
    }

    func run() {
        while true {
            wake.wait()
            let (jobs, forget, closing) = state.withLock { s -> ([Job], [String], Bool) in
                defer { s.jobs = []; s.forget = [] }
                return (s.jobs, s.forget, s.closing)
            }
            for id in forget { responder.withLock { $0.forget(id) } }
            for j in jobs {
                if let seq = j.written, let first = sinks.first { _ = first.waitWritten(seq, timeout: 2) }
                guard let outcome = responder.withLock({ $0.respond(to: j.alert, processes: j.processes) }) else { continue }
                let record = ResponseRecord(time: Date(), alert: j.alert, response: outcome)
                for s in sinks { s.enqueue(.response(record)) }
                if !outcome.ok { state.withLock { $0.failures.append(record) } }
            }
            if closing && state.withLock({ $0.jobs.isEmpty }) {
                finished.signal()
                return
            }
        }
    }
}
