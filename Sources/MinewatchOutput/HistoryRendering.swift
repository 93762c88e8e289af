import Foundation
import MinewatchCore
import MinewatchHistory
import MinewatchModel

/// `minewatch history` as a table or JSON.
public enum HistoryRenderer {
    public enum Format: String, Sendable, CaseIterable { case table, json }

    static func json<T: Encodable>(_ v: T) -> String { ReportRenderer.json(v) + "\n" }

    static func stamp(_ d: Date) -> String {
        let tmv = WatchRenderer.localTime(d)
        return String(format: "%04d-%02d-%02d %02d:%02d:%02d", Int(tmv.tm_year) + 1900, Int(tmv.tm_mon) + 1, Int(tmv.tm_mday),
                      Int(tmv.tm_hour), Int(tmv.tm_min), Int(tmv.tm_sec))
    }

    public static func alerts(_ alerts: [Alert], format: Format) -> String {
        switch format {
        case .json:
            return json(["alerts": alerts])
        case .table:
            var s = "TIME                 SEVERITY  DETECTOR          CONTAINER                FAMILY       SUMMARY\n"
            for a in alerts {
                s += [stamp(a.detectedAt), WatchRenderer.pad(a.severity.rawValue.uppercased(), 9), WatchRenderer.pad(a.detector.rawValue, 17),
                      WatchRenderer.pad(a.container.k8s?.pod ?? WatchRenderer.name(a.container), 24), WatchRenderer.pad(a.family ?? "-", 12), a.summary]
                    .joined(separator: " ") + "\n"
                for e in a.evidence.prefix(6) { s += "    \(e.name): \(e.value)\n" }
            }
            if alerts.isEmpty { s += "(no alerts)\n" }
            return s
        }
    }

    /// What a container did: its metadata, its telemetry over time (per minute; the alerts at
    /// the minute they fired) and its alerts with their evidence.
    public static func container(_ r: HistoryReader.ContainerHistory, format: Format) -> String {
        switch format {
        case .json:
            return json(r)
        case .table:
            let c = r.container
            var s = "container \(c.id)\n"
            if let n = c.name { s += "  name       \(n)\n" }
            if let i = c.image { s += "  image      \(i)\n" }
            if let k = c.k8s { s += "  kubernetes namespace \(k.namespace ?? "-"), pod \(k.pod ?? "-"), container \(k.container ?? "-")\n" }
            s += "  runtime    \(c.runtime ?? "-")\n  seen       \(stamp(c.firstSeen)) to \(stamp(c.lastSeen))\n\n"
            s += "TIME                 CPU     SHARE  MEMORY    UPLOAD    DOWNLOAD  CONNS  TOP DESTINATIONS\n"
            var alertsLeft = r.alerts.sorted { $0.detectedAt < $1.detectedAt }
            func mark(_ a: Alert) -> String { "  ^ \(stamp(a.detectedAt)) ALERT \(a.severity.rawValue) \(a.detector.rawValue): \(a.summary)\n" }
            for x in r.samples {
                while let a = alertsLeft.first, a.detectedAt <= x.time {
                    s += mark(a)
                    alertsLeft.removeFirst()
                }
                s += [stamp(x.time), WatchRenderer.pad(x.cpuCores.map { String(format: "%.2f", $0) } ?? "-", 7),
                      WatchRenderer.pad(x.cpuShare.map { String(format: "%.0f%%", $0 * 100) } ?? "-", 6),
                      WatchRenderer.pad(x.memoryBytes.map { String(format: "%.1fM", Double($0) / 1_048_576) } ?? "-", 9),
                      WatchRenderer.pad(WatchRenderer.rate(x.uploadBytesPerSecond) + "/s", 9), WatchRenderer.pad(WatchRenderer.rate(x.downloadBytesPerSecond) + "/s", 9),
                      WatchRenderer.pad(x.connections.map(String.init) ?? "-", 6), (x.destinations ?? []).prefix(3).joined(separator: ", ")]
                    .joined(separator: " ") + "\n"
            }
            for a in alertsLeft { s += mark(a) }
            s += "\n" + alerts(r.alerts, format: .table)
            if !r.silenced.isEmpty {
                s += "\nsilenced by exceptions:\n"
                for x in r.silenced { s += "  \(stamp(x.time)) \(x.exception) (\(x.detector)): \(x.summary)\n" }
            }
            return s
        }
    }
}
