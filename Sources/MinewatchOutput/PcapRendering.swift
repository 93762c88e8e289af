import Foundation
import MinewatchCore
import MinewatchModel

/// The table form of a `pcap` report: per capture, its numbers, the recognised sessions and the
/// findings with their evidence.
public enum PcapRenderer {
    static func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }

    static func time(_ d: Date?) -> String {
        guard let d else { return "-" }
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        return f.string(from: d)
    }

    public static func table(_ report: PcapReport) -> String {
        var s = ""
        for c in report.captures {
            s += "\(c.file): \(c.packets) packets, \(c.bytes) bytes, \(c.flows) flows"
            if c.evictedFlows > 0 { s += " (\(c.evictedFlows) evicted)" }
            s += ", \(time(c.firstSeen)) to \(time(c.lastSeen))\n"
            if let e = c.error { s += "  error: \(e)\n" }
            if !c.sessions.isEmpty {
                s += "\n  SESSIONS\n"
                s += "  " + pad("PROTOCOL", 15) + pad("CLIENT", 24) + pad("SERVER", 40) + "DETAILS\n"
                for x in c.sessions {
                    let f = x.facts
                    var details: [String] = []
                    if let l = f.login { details.append("login \(l)") }
                    if let a = f.agent { details.append("agent \(a)") }
                    if f.jobs + f.submits > 0 { details.append("jobs \(f.jobs), shares \(f.submits) (\(f.accepted) accepted, \(f.rejected) rejected)") }
                    if f.configPolls + f.annPosts > 0 { details.append("\(f.configPolls) config polls, \(f.announcements) announcements in \(f.annPosts) posts") }
                    if let p = f.payto { details.append("payto \(p)") }
                    if f.getwork > 0 { details.append("\(f.getwork) getwork") }
                    if let n = f.sni { details.append("SNI \(n)") }
                    let server = x.server + (x.serverName.map { " \($0)" } ?? "")
                    s += "  " + pad(x.protocolName.rawValue, 15) + pad(x.client, 24) + pad(server, 40) + details.joined(separator: "; ") + "\n"
                }
            }
            s += "\n  FINDINGS\n"
            if c.findings.isEmpty { s += "  none\n" }
            for f in c.findings {
                s += "  " + pad(f.severity.rawValue.uppercased(), 10) + pad(f.family ?? "-", 13) + f.title + "  [\(f.ruleId)] \(f.path)\n"
                for e in f.evidence { s += "      \(e.name): \(e.value)\n" }
            }
            if !c.topFlows.isEmpty {
                s += "\n  LARGEST FLOWS\n"
                for f in c.topFlows.prefix(5) {
                    s += "  \(f.transport) \(f.client) -> \(f.server) \(f.protocolName): \(f.clientBytes) bytes up, \(f.serverBytes) down, \(f.packets) packets, \(String(format: "%.1f", f.seconds)) s\n"
                }
            }
            s += "\n"
        }
        return s
    }
}
