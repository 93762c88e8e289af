import Foundation
import MinewatchCore
import MinewatchModel

/// How a relay verdict reads in `watch` alerts and `pcap` findings (one wording for both).
public enum RelayEvidence {
    static func kb(_ bytes: Double) -> String {
        bytes >= 1_000_000 ? String(format: "%.1f MB", bytes / 1_000_000) : String(format: "%.0f kB", bytes / 1000)
    }

    /// The vendor side in words: its endpoint or name, its connections, long-lived or not.
    static func vendorText(_ v: RelayVerdict) -> String {
        "\(v.vendor) (\(v.vendorConnections) connection\(v.vendorConnections == 1 ? "" : "s"), "
            + (v.longLived ? "one open for the whole window)" : "none open for the whole window: polling over fresh connections)")
    }

    public static func summary(_ v: RelayVerdict) -> String {
        String(format: "relays traffic for someone else: vendor side %@ carries what %d other destinations send and receive; towards the targets %@ in from the vendor side vs %@ out to targets (%.2f:1), back %@ from targets vs %@ out to the vendor side (%.2f:1), %.0f%% in step, over %.0f s",
               vendorText(v), v.targetCount, kb(v.vendorIn), kb(v.targetsOut), v.balanceTowardsTargets, kb(v.targetsIn), kb(v.vendorOut), v.balanceBack,
               v.inStep * 100, v.seconds)
    }

    public static func evidence(_ v: RelayVerdict) -> [Evidence] {
        var ev = [Evidence(kind: .attribute, name: "vendor side", value: vendorText(v))]
        // Each vendor address as a destination (allow-lists and responses name them).
        let endpoint = v.vendorAddresses.count == 1 && v.vendor.hasPrefix(v.vendorAddresses[0]) ? v.vendor : nil
        ev += v.vendorAddresses.map { Evidence(kind: .pool, name: "vendor", value: endpoint ?? $0) }
        ev.append(Evidence(kind: .attribute, name: "targets", value: "\(v.targetCount) addresses over \(v.targetConnections) connections: \(v.targets.prefix(8).joined(separator: ", "))\(v.targetCount > 8 ? ", ..." : "")"))
        ev.append(Evidence(kind: .attribute, name: "towards targets", value: String(format: "%@ in from the vendor side, %@ out to targets (%.2f:1)", kb(v.vendorIn), kb(v.targetsOut), v.balanceTowardsTargets)))
        ev.append(Evidence(kind: .attribute, name: "back", value: String(format: "%@ in from targets, %@ out to the vendor side (%.2f:1)", kb(v.targetsIn), kb(v.vendorOut), v.balanceBack)))
        ev.append(Evidence(kind: .attribute, name: "in step", value: String(format: "%.0f%% of the larger direction crossed both sides within the same %.0f s", v.inStep * 100, RelayJudge.stepSeconds)))
        ev.append(Evidence(kind: .attribute, name: "window", value: String(format: "%.0f s", v.seconds)))
        return ev
    }

    public static func metrics(_ v: RelayVerdict) -> [String: Double] {
        ["targets": Double(v.targetCount), "targetConnections": Double(v.targetConnections), "vendorConnections": Double(v.vendorConnections),
         "vendorAddresses": Double(v.vendorAddresses.count), "vendorLongLived": v.longLived ? 1 : 0,
         "vendorInBytes": v.vendorIn, "targetsOutBytes": v.targetsOut, "targetsInBytes": v.targetsIn, "vendorOutBytes": v.vendorOut,
         "balanceTowardsTargets": v.balanceTowardsTargets, "balanceBack": v.balanceBack, "inStep": v.inStep, "relayedBytesPerSecond": v.rate,
         "windowSeconds": v.seconds]
    }
}
