import Foundation
import MinewatchModel
import MinewatchSinks
import Prometheus
import Synchronization

/// The admission webhook's Prometheus metrics: decisions by result and by how each image was
/// judged, request latency, the verdict cache, scans running, certificate reloads and the sinks.
public final class AdmissionMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()
    let duration: ValueHistogram
    let cacheEntries: Gauge
    let scansRunning: Gauge
    let last = Mutex<(sinks: [String: SinkStats], hits: Int, misses: Int, reloads: Int)>(([:], 0, 0, 0))

    public init() {
        duration = registry.makeValueHistogram(name: "minewatch_admission_duration_seconds",
                                               buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
                                               help: "Time from an AdmissionReview's arrival to its answer.")
        cacheEntries = registry.makeGauge(name: "minewatch_admission_cache_entries", help: "Image verdicts cached by digest.")
        scansRunning = registry.makeGauge(name: "minewatch_admission_scans_running", help: "Image scans the webhook is running.")
    }

    /// One decision.
    public func record(_ e: AdmissionEvent) {
        registry.makeCounter(name: "minewatch_admission_decisions_total",
                             labels: [("decision", e.decision.rawValue), ("kind", e.kind), ("audit", e.audit ? "true" : "false")],
                             help: "AdmissionReviews answered, by decision, object kind and audit mode.").increment()
        for i in e.images {
            registry.makeCounter(name: "minewatch_admission_images_total", labels: [("source", i.source.rawValue), ("verdict", i.verdict)],
                                 help: "Images judged, by how (attestation, cache, scan, exception, unattested, error) and verdict.").increment()
        }
        for f in e.findings {
            registry.makeCounter(name: "minewatch_admission_findings_total", labels: [("severity", f.severity.rawValue), ("family", f.family ?? "none")],
                                 help: "Findings in admitted or refused pod specs, by severity and family.").increment()
        }
        duration.record(e.durationMs / 1000)
    }

    /// A body that was no AdmissionReview.
    public func malformed() {
        registry.makeCounter(name: "minewatch_admission_malformed_total", help: "Requests whose body was no AdmissionReview (answered 400).").increment()
    }

    /// The state of the cache, the scans, the certificate and the sinks.
    public func update(cacheEntries n: Int, cacheHits: Int, cacheMisses: Int, scansRunning running: Int, certificateReloads: Int, sinks: [SinkStats]) {
        cacheEntries.set(Double(n))
        scansRunning.set(Double(running))
        last.withLock { l in
            let hits = registry.makeCounter(name: "minewatch_admission_cache_lookups_total", labels: [("result", "hit")], help: "Verdict cache lookups by result.")
            let misses = registry.makeCounter(name: "minewatch_admission_cache_lookups_total", labels: [("result", "miss")], help: "Verdict cache lookups by result.")
            if cacheHits > l.hits { hits.increment(by: Int64(cacheHits - l.hits)) }
            if cacheMisses > l.misses { misses.increment(by: Int64(cacheMisses - l.misses)) }
            let reloads = registry.makeCounter(name: "minewatch_admission_certificate_reloads_total", help: "Times a changed TLS certificate and key were loaded.")
            if certificateReloads > l.reloads { reloads.increment(by: Int64(certificateReloads - l.reloads)) }
            (l.hits, l.misses, l.reloads) = (max(l.hits, cacheHits), max(l.misses, cacheMisses), max(l.reloads, certificateReloads))
            AgentMetrics.recordSinks(sinks, registry: registry, last: &l.sinks)
        }
    }

    public func exposition() -> [UInt8] { registry.emitToBuffer() }
}
