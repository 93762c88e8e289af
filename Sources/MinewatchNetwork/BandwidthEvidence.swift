import Foundation
import MinewatchCore
import MinewatchModel

/// How a bandwidth-miner verdict reads in `watch` alerts and traits and in `pcap` findings: one
/// set of reasons, one wording and one rate unit for both.
public enum BandwidthEvidence {
    /// What in the traffic itself says a miner is behind an upload-heavy shape: the same volume
    /// mirrored to several destinations, periodic small polls to an upload destination, request
    /// bodies framed as announcements or incompressible in clear text, a mining protocol to an
    /// upload destination. `toUpload` are the sessions (facts) to the verdict's destinations.
    public static func reasons(_ v: BandwidthVerdict, toUpload: [SessionFacts]) -> [String] {
        var why: [String] = []
        if v.mirrored { why.append("the same volume to \(v.destinations.count) destinations") }
        if v.polls { why.append("periodic small polls to an upload destination") }
        why += BodyShape.corroboration(toUpload)
        if let p = toUpload.first(where: { $0.protocolName.isMining }) {
            why.append("\(p.protocolName) protocol to an upload destination")
        }
        return why
    }

    /// The shape in one sentence: rates, destinations, ratio and exchanges (over `seconds` when
    /// known), CPU when measured.
    public static func shape(_ v: BandwidthVerdict, seconds: Double? = nil, cpuCores: Double? = nil) -> String {
        let dests = v.destinations.map { "\($0.address) \(Rates.text($0.rate))" }
        var s = "uploads \(Rates.text(v.uploadRate)) over outbound connections to \(v.destinations.count) destination"
            + "\(v.destinations.count == 1 ? "" : "s") (\(dests.prefix(4).joined(separator: ", "))), downloads \(Rates.text(v.downloadRate))"
            + String(format: " (%.0f:1), %d exchanges", v.ratio, v.exchanges)
        if let seconds { s += String(format: " in %.0f s", seconds) }
        if let cpuCores { s += String(format: ", CPU %.2f cores", cpuCores) }
        return s
    }

    /// The words a trait (the shape with nothing that says a miner) ends with.
    public static let traitSuffix = "nothing says a miner is behind it"

    /// Destinations with their rates, then one `with` per reason.
    public static func evidence(_ v: BandwidthVerdict, reasons: [String]) -> [Evidence] {
        v.destinations.map { Evidence(kind: .pool, name: "destination", value: "\($0.address) (\(Rates.text($0.rate)))") }
            + reasons.map { Evidence(kind: .attribute, name: "with", value: $0) }
    }
}

/// "1.2 MB/s" style rates (decimal units) in alerts, traits and findings.
public enum Rates {
    public static func text(_ bytesPerSecond: Double) -> String {
        let units = ["B/s", "kB/s", "MB/s", "GB/s"]
        var v = bytesPerSecond
        var i = 0
        while v >= 1000 && i < units.count - 1 { v /= 1000; i += 1 }
        return String(format: i == 0 ? "%.0f %@" : "%.1f %@", v, units[i])
    }
}
