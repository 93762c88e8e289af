import Foundation
import MinewatchCore
import MinewatchModel

/// How a relay verdict reads in `watch` alerts and `pcap` findings (one wording for both).
public enum RelayEvidence {
    static func kb(_ bytes: Double) -> String {
        bytes >= 1_000_000 ? String(format: "%.1f MB", bytes / 1_000_000) : String(format: "%.0f kB", bytes / 1000)
    }

    public static func summary(_ v: RelayVerdict) -> String {
        String(format: "relays traffic for someone else: tunnel %@ (%d connection%@, open since before the window) carries what %d other destinations send and receive; towards the targets %@ in on the tunnel vs %@ out to targets (%.2f:1), back %@ from targets vs %@ out on the tunnel (%.2f:1), over %.0f s",
               v.tunnel, v.tunnelConnections, v.tunnelConnections == 1 ? "" : "s", v.targetCount, kb(v.tunnelIn), kb(v.targetsOut),
               v.balanceTowardsTargets, kb(v.targetsIn), kb(v.tunnelOut), v.balanceBack, v.seconds)
    }

    public static func evidence(_ v: RelayVerdict) -> [Evidence] {
        var ev = [Evidence(kind: .attribute, name: "tunnel", value: "\(v.tunnel) (\(v.tunnelConnections) connection\(v.tunnelConnections == 1 ? "" : "s"))")]
        ev.append(Evidence(kind: .attribute, name: "targets", value: "\(v.targetCount) addresses over \(v.targetConnections) connections: \(v.targets.prefix(8).joined(separator: ", "))\(v.targetCount > 8 ? ", ..." : "")"))
        ev.append(Evidence(kind: .attribute, name: "towards targets", value: String(format: "%@ in on the tunnel, %@ out to targets (%.2f:1)", kb(v.tunnelIn), kb(v.targetsOut), v.balanceTowardsTargets)))
        ev.append(Evidence(kind: .attribute, name: "back", value: String(format: "%@ in from targets, %@ out on the tunnel (%.2f:1)", kb(v.targetsIn), kb(v.tunnelOut), v.balanceBack)))
        ev.append(Evidence(kind: .attribute, name: "window", value: String(format: "%.0f s", v.seconds)))
        return ev
    }

    public static func metrics(_ v: RelayVerdict) -> [String: Double] {
        ["targets": Double(v.targetCount), "targetConnections": Double(v.targetConnections), "tunnelConnections": Double(v.tunnelConnections),
         "tunnelInBytes": v.tunnelIn, "targetsOutBytes": v.targetsOut, "targetsInBytes": v.targetsIn, "tunnelOutBytes": v.tunnelOut,
         "balanceTowardsTargets": v.balanceTowardsTargets, "balanceBack": v.balanceBack, "relayedBytesPerSecond": v.rate,
         "windowSeconds": v.seconds]
    }
}
