import Foundation
import MinewatchCore
import MinewatchNetwork
import MinewatchModel

/// Detector 5 of `watch`: the bandwidth-miner model (MinewatchNetwork's `BandwidthJudge`, the
/// same one `pcap` runs) over each container's traffic intervals. The upload-heavy shape alone is
/// a trait (log shippers, metrics clients and backups have it); it is an alert (high) only with
/// evidence that a miner is behind it that does not depend on names: the same volume mirrored to
/// several destinations, periodic small polls to an upload destination, request bodies framed as
/// announcements or incompressible in clear text (capture on), a mining protocol to an upload
/// destination, or another detector's alert for the container.
public struct BandwidthMinerDetector: ContainerDetector {
    public let id = DetectorID.bandwidthMiner
    public var model: BandwidthThresholds
    public static let corroborating: [DetectorID] = [.minerProcess, .poolContact, .miningProtocol, .cpuMiner, .relay, .bandwidthService]

    public struct State {
        public var model: BandwidthJudge
        /// The uncorroborated shape, while it holds.
        public var trait: Trait?
    }

    public init(model: BandwidthThresholds = BandwidthThresholds()) { self.model = model }

    public func makeState() -> State { State(model: BandwidthJudge(model: model)) }

    public func traits(_ state: State) -> [Trait] { state.trait.map { [$0] } ?? [] }

    /// What says a miner is behind an upload-heavy shape, besides other detectors.
    static func corroboration(_ b: BandwidthVerdict, sessions: [LiveSession]) -> [String] {
        var why: [String] = []
        if b.mirrored { why.append("the same volume to \(b.destinations.count) destinations") }
        if b.polls { why.append("periodic small polls to an upload destination") }
        let upload = Set(b.destinations.map(\.address))
        let toUpload = sessions.filter { upload.contains(LiveSession.address(of: $0.server)) }.map(\.facts)
        why += BodyShape.corroboration(toUpload)
        if let p = toUpload.first(where: { $0.protocolName.hasPrefix("stratum") || $0.protocolName == "packetcrypt" || $0.protocolName == "getwork" }) {
            why.append("\(p.protocolName) protocol to an upload destination")
        }
        return why
    }

    public func inspect(_ pass: ContainerPass, state: inout State, context: DetectionContext) -> Verdict? {
        guard let iv = pass.traffic else { return nil }
        state.model.add(iv)
        guard let b = state.model.verdict() else {
            state.trait = nil
            return nil
        }
        let others = Self.corroborating.filter { context.alerted.contains($0) }.map(\.rawValue)
        let why = Self.corroboration(b, sessions: pass.snapshot.sessions) + others
        let cores = pass.cpuCores
        let dests = b.destinations.map { "\($0.address) \(Rates.text($0.rate))" }
        var summary = "uploads \(Rates.text(b.uploadRate)) over outbound connections to \(b.destinations.count) destination"
            + "\(b.destinations.count == 1 ? "" : "s") (\(dests.prefix(4).joined(separator: ", "))), downloads \(Rates.text(b.downloadRate))"
            + String(format: " (%.0f:1), %d exchanges in %.0f s", b.ratio, b.exchanges, pass.now.timeIntervalSince(b.since))
        if let cores { summary += String(format: ", CPU %.2f cores", cores) }
        guard !why.isEmpty else {
            // An upload-heavy shape alone: what log shippers and backups look like too.
            state.trait = Trait(name: "upload-heavy", detector: id, summary: summary + "; nothing says a miner is behind it",
                                since: state.trait?.since ?? b.since, technique: "T1496.002")
            return nil
        }
        state.trait = nil
        guard !context.alerted.contains(id) else { return nil }
        summary += "; with \(why.joined(separator: ", "))"
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
        return Verdict(severity: .high, summary: summary, evidence: evidence, metrics: metrics,
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
