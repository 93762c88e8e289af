import Foundation
import MinewatchCore
import MinewatchModel
import MinewatchSinks
import Synchronization
import Testing
import TestSupport

/// The HTTP sink's retries and back-off against a receiver on loopback.
@Suite(.serialized) struct HTTPSinkTests {
    /// The body a receiver gets: the alert's JSON (the output module renders the real formats).
    static func body(_ r: WatchRecord) -> [UInt8]? {
        guard case .alert(let a) = r else { return nil }
        return (try? ReportJSON.encoder().encode(a)).map { Array($0) }
    }

    @Test func retriesWithBackoffThenDelivers() throws {
        let rx = try Receiver(statuses: [503, 503])
        defer { rx.stop() }
        let sink = HTTPSink(name: "falcosidekick", url: try #require(URL(string: "http://127.0.0.1:\(rx.port)/")), retries: 3, token: "t0ken-t0ken-t0ken",
                            backoff: { _ in 0.01 }) { Self.body($0) }
        let q = SinkQueue(sink, capacity: 10)
        q.enqueue(.alert(SampleAlerts.xmrig()))
        q.enqueue(.telemetry([], time: Date()))
        q.close(timeout: 10)
        let got = rx.received
        #expect(got.count == 3, "two failures, then delivered: \(got.map(\.head))")
        #expect(got.allSatisfy { $0.head.hasPrefix("POST / HTTP/1.1") && $0.head.contains("Content-Type: application/json") && $0.head.contains("Authorization: Bearer t0ken-t0ken-t0ken") })
        let obj = try JSONSerialization.jsonObject(with: Data(got.last?.body ?? [])) as? [String: Any]
        #expect(obj?["detector"] as? String == "mining-protocol")
        #expect(q.stats.alertsWritten == 1 && q.stats.failed == 0)
    }

    @Test func givesUpAfterRetriesAndCountsTheFailure() throws {
        let rx = try Receiver(statuses: [500, 500, 500, 500])
        defer { rx.stop() }
        let sink = HTTPSink(name: "x", url: try #require(URL(string: "http://127.0.0.1:\(rx.port)/")), retries: 2, backoff: { _ in 0.01 }) { Self.body($0) }
        let q = SinkQueue(sink, capacity: 10)
        q.enqueue(.alert(SampleAlerts.xmrig()))
        q.close(timeout: 10)
        #expect(rx.received.count == 3)
        #expect(q.stats.failed == 1 && q.stats.lastError?.contains("receiver answered 500") == true)
    }

    @Test func aClientErrorIsNotRetried() throws {
        let rx = try Receiver(statuses: [400])
        defer { rx.stop() }
        let sink = HTTPSink(name: "x", url: try #require(URL(string: "http://127.0.0.1:\(rx.port)/")), retries: 5, backoff: { _ in 0.01 }) { Self.body($0) }
        let q = SinkQueue(sink, capacity: 10)
        q.enqueue(.alert(SampleAlerts.xmrig()))
        q.close(timeout: 10)
        #expect(rx.received.count == 1 && q.stats.failed == 1)
    }
}

/// The bounded queue in front of every sink: a stuck sink never blocks a pass; what does not fit is
/// dropped and counted, alerts separately.
@Suite struct SinkQueueTests {
    final class Stuck: Sink, @unchecked Sendable {
        let name = "stuck"
        let release = DispatchSemaphore(value: 0)
        let written = Mutex(0)
        func write(_ r: WatchRecord) throws(MinewatchError) {
            release.wait()
            written.withLock { $0 += 1 }
        }
        func close() {}
    }

    @Test func dropsAndCountsWhatDoesNotFit() {
        let sink = Stuck()
        let q = SinkQueue(sink, capacity: 3)
        let start = Date()
        var accepted = 0
        for i in 0..<10 {
            if q.enqueue(i % 2 == 0 ? .alert(SampleAlerts.xmrig()) : .telemetry([], time: Date())) != nil { accepted += 1 }
        }
        #expect(Date().timeIntervalSince(start) < 5, "enqueue never waits for the sink")
        // Records with the stuck sink count against the capacity: three in all.
        #expect(accepted == 3, "\(accepted)")
        let stats = q.stats
        #expect(stats.dropped == 10 - accepted && stats.alertsDropped > 0)
        for _ in 0..<10 { sink.release.signal() }
        q.close(timeout: 10)
        #expect(sink.written.withLock { $0 } == accepted)
        #expect(q.stats.written == accepted)
    }
}
