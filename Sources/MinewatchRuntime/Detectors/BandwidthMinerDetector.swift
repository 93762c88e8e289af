import Foundation
import MinewatchCore
import MinewatchNetwork
import MinewatchReport

/// Detector 5 of `watch`: the bandwidth-miner model (MinewatchNetwork's `BandwidthDetector`, the
/// same one `pcap` runs) over each container's traffic intervals. Medium alone, high when
/// corroborated: the same volume mirrored to several destinations, periodic small polls to an
/// upload destination, or another detector's alert for the container.
public struct BandwidthMinerDetector: ContainerDetector {
    public let id = DetectorID.bandwidthMiner
    public var model: BandwidthModel
    public static let corroborating: [DetectorID] = [.minerProcess, .poolContact, .drift, .miningProtocol]

    public init(model: BandwidthModel = BandwidthModel()) { self.model = model }

    public func makeState() -> BandwidthDetector { BandwidthDetector(model: model) }

    public func inspect(_ pass: ContainerPass, state d: inout BandwidthDetector, context: DetectionContext) -> Verdict? {
        guard let iv = pass.traffic else { return nil }
        d.add(iv)
        guard !context.alerted.contains(id), let b = d.verdict() else { return nil }
        let others = Self.corroborating.filter { context.alerted.contains($0) }.map(\.rawValue)
        let corroborated = b.mirrored || b.polls || !others.isEmpty
        var why: [String] = []
        if b.mirrored { why.append("the same volume to \(b.destinations.count) destinations") }
        if b.polls { why.append("periodic small polls to an upload destination") }
        why += others
        let cores = pass.cpuCores
        let dests = b.destinations.map { "\($0.address) \(Rates.text($0.rate))" }
        var summary = "uploads \(Rates.text(b.uploadRate)) over outbound connections to \(b.destinations.count) destination"
            + "\(b.destinations.count == 1 ? "" : "s") (\(dests.prefix(4).joined(separator: ", "))), downloads \(Rates.text(b.downloadRate))"
            + String(format: " (%.0f:1), %d exchanges in %.0f s", b.ratio, b.exchanges, pass.now.timeIntervalSince(b.since))
        if let cores { summary += String(format: ", CPU %.2f cores", cores) }
        if !why.isEmpty { summary += "; with \(why.joined(separator: ", "))" }
        var evidence = b.destinations.map { Evidence(kind: .pool, name: "destination", value: "\($0.address) (\(Rates.text($0.rate)))") }
        evidence += why.map { Evidence(kind: .attribute, name: "with", value: $0) }
        if pass.snapshot.hostNetwork {
            evidence.append(Evidence(kind: .attribute, name: "network", value: "host network: no per-container interface counters; per-socket counters used"))
        }
        if !b.perConnection {
            evidence.append(Evidence(kind: .attribute, name: "counters", value: "no per-connection counters (sock_diag unavailable); namespace interface totals used"))
        }
        var metrics: [String: Double] = [
            "uploadBytesPerSecond": b.uploadRate, "downloadBytesPerSecond": b.downloadRate, "ratio": b.ratio,
            "destinations": Double(b.destinations.count), "exchanges": Double(b.exchanges), "connections": Double(b.connections),
            "windowSeconds": model.window,
        ]
        if let cores { metrics["cpuCores"] = cores }
        let owner = b.uploader ?? pass.snapshot.mainPid
        return Verdict(severity: corroborated ? .high : .medium, summary: summary, evidence: evidence, metrics: metrics,
                       pid: owner, exe: pass.snapshot.processes.first { $0.sample.pid == owner }?.sample.exe, startedAt: b.since)
    }
}

/// "1.2 MB/s" style rates in alert summaries.
public enum Rates {
    public static func text(_ bytesPerSecond: Double) -> String {
        let units = ["B/s", "kB/s", "MB/s", "GB/s"]
        var v = bytesPerSecond
        var i = 0
        while v >= 1000 && i < units.count - 1 { v /= 1000; i += 1 }
        return String(format: i == 0 ? "%.0f %@" : "%.1f %@", v, units[i])
    }
}
