import Foundation
import MinewatchCore
import MinewatchModel

/// Why an upload-heavy shape is (or is not) a bandwidth miner, in two tiers.
public struct BandwidthReasons: Sendable, Hashable {
    /// Evidence only mining explains: announcement records in the bodies, a mining protocol
    /// to an upload destination, the same request bodies mirrored to several destinations,
    /// another miner detector's alert (or finding). Any of it makes the verdict high.
    public var specific: [String] = []
    /// Evidence honest uploaders share (media and backup uploaders, log shippers, load-balanced
    /// clients): similar volume to several destinations, periodic small polls, incompressible
    /// or KiB-framed bodies. Alone it never raises the verdict above a trait.
    public var generic: [String] = []
    /// The family the specific evidence names (announcements or PacketCrypt's protocol:
    /// `packetcrypt`), else nil.
    public var family: String?
    public init(specific: [String] = [], generic: [String] = []) {
        self.specific = specific
        self.generic = generic
    }
}

/// How a bandwidth-miner verdict reads in `watch` alerts and traits and in `pcap` findings: one
/// set of reasons, one wording and one rate unit for both.
public enum BandwidthEvidence {
    /// The two tiers of reasons for a verdict. `toUpload` are the sessions (server address and
    /// facts) to the verdict's destinations; `others` name other detectors' alerts (or other
    /// findings at medium and above) for the same container or client.
    public static func reasons(_ v: BandwidthVerdict, toUpload: [(server: String, facts: SessionFacts)], others: [String] = []) -> BandwidthReasons {
        var r = BandwidthReasons()
        let facts = toUpload.map(\.facts)
        let anns = facts.reduce(0) { $0 + $1.announcementBodies }
        if anns >= 2 {
            // Two bodies: random bytes pass one header's checks with a chance below 2^-50, but a
            // live capture keeps one record of each body and structured binary is likelier.
            r.specific.append("request bodies made of PacketCrypt announcements (\(anns) bod\(anns == 1 ? "y" : "ies") of 1024-byte records with valid announcement headers)")
        }
        if let p = facts.first(where: { $0.protocolName.isMining }) {
            r.specific.append("\(p.protocolName) protocol to an upload destination")
        }
        if anns >= 2 || facts.contains(where: { $0.protocolName == .packetcrypt }) { r.family = "packetcrypt" }
        if let m = mirroredBodies(toUpload) {
            r.specific.append("the same request bodies sent to \(m.destinations) destinations (\(m.bodies) bodies seen at each)")
        }
        r.specific += others
        if v.mirrored { r.generic.append("similar volume to \(v.destinations.count) destinations (mirroring or load balancing)") }
        if v.polls { r.generic.append("periodic small polls to an upload destination") }
        r.generic += BodyShape.corroboration(facts)
        return r
    }

    /// Random-looking request bodies whose fingerprints were sent to two or more distinct
    /// servers, at least twice: the same bytes mirrored (a bandwidth miner posts every
    /// announcement to every pool), not a load-balanced upload (different bytes to each).
    static func mirroredBodies(_ sessions: [(server: String, facts: SessionFacts)]) -> (bodies: Int, destinations: Int)? {
        var servers: [UInt64: Set<String>] = [:]
        for (server, f) in sessions {
            for d in f.randomBodyDigests { servers[d, default: []].insert(server) }
        }
        let shared = servers.values.filter { $0.count >= 2 }
        guard shared.count >= 2 else { return nil }
        return (shared.count, shared.map(\.count).max() ?? 2)
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

    /// A trait's sentence: the shape, the generic reasons, and that nothing says a miner.
    public static func trait(shape: String, _ r: BandwidthReasons) -> String {
        shape + (r.generic.isEmpty ? "" : "; also \(r.generic.joined(separator: ", ")), which honest uploaders share") + "; " + traitSuffix
    }

    /// Destinations with their rates, one `with` per specific reason, one `shared trait` per
    /// generic one.
    public static func evidence(_ v: BandwidthVerdict, reasons: BandwidthReasons) -> [Evidence] {
        v.destinations.map { Evidence(kind: .pool, name: "destination", value: "\($0.address) (\(Rates.text($0.rate)))") }
            + reasons.specific.map { Evidence(kind: .attribute, name: "with", value: $0) }
            + reasons.generic.map { Evidence(kind: .attribute, name: "shared trait", value: $0) }
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
