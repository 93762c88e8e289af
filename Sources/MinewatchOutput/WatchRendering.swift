import Foundation
import MinewatchCore
import MinewatchModel

/// Every output of `watch`: JSON lines (alerts, and telemetry records with `--telemetry`), the
/// append-only alert table, and the live screen drawn on a terminal.
public enum WatchRenderer {
    static let encoder = ReportJSON.encoder()

    public static func jsonLine(_ alert: Alert) -> String {
        (try? encoder.encode(alert)).map { String(decoding: $0, as: UTF8.self) + "\n" } ?? ""
    }

    public static func jsonLine(_ t: ContainerTelemetry) -> String {
        (try? encoder.encode(t)).map { String(decoding: $0, as: UTF8.self) + "\n" } ?? ""
    }

    public static func jsonLine(_ r: ResponseRecord) -> String {
        (try? encoder.encode(r)).map { String(decoding: $0, as: UTF8.self) + "\n" } ?? ""
    }

    /// A record as JSON lines: alerts and responses always, telemetry when asked for.
    public static func jsonLines(_ r: WatchRecord, telemetry: Bool) -> String {
        switch r {
        case .alert(let a): jsonLine(a)
        case .response(let x): jsonLine(x)
        case .telemetry(let t, _): telemetry ? t.map(jsonLine).joined() : ""
        case .silenced: ""
        case .admission(let e): AdmissionRenderer.jsonLine(e)
        }
    }

    /// A record as lines of the append-only table (telemetry is not part of it).
    public static func tableLines(_ r: WatchRecord) -> String {
        switch r {
        case .alert(let a): tableLine(a)
        case .response(let x): responseLine(x.response, container: x.container)
        case .admission(let e): AdmissionRenderer.tableLine(e)
        case .telemetry, .silenced: ""
        }
    }

    static func responseLine(_ r: ResponseOutcome, container: Alert.Container? = nil) -> String {
        "          -> \(r.dryRun ? "dry run: " : "")\(r.action) \(r.target): \(r.result)\n"
    }

    public static let tableHeader = "TIME      SEVERITY  DETECTOR         CONTAINER      FAMILY       SUMMARY\n"

    static func pad(_ s: String, _ n: Int) -> String { s.count >= n ? String(s.prefix(n)) : s + String(repeating: " ", count: n - s.count) }

    /// `d` in the local time zone.
    static func localTime(_ d: Date) -> tm {
        var t = time_t(d.timeIntervalSince1970)
        var tmv = tm()
        localtime_r(&t, &tmv)
        return tmv
    }

    static func clock(_ d: Date) -> String {
        let tmv = localTime(d)
        return String(format: "%02d:%02d:%02d", tmv.tm_hour, tmv.tm_min, tmv.tm_sec)
    }

    static func name(_ c: Alert.Container) -> String { c.name.map { $0.isEmpty ? String(c.id.prefix(12)) : $0 } ?? String(c.id.prefix(12)) }

    /// One alert as a table line (plus its response on a second line).
    public static func tableLine(_ a: Alert) -> String {
        var line = [clock(a.time), pad(a.severity.rawValue.uppercased(), 9), pad(a.detector.rawValue, 16), pad(name(a.container), 14),
                    pad(a.family ?? "-", 12), a.summary].joined(separator: " ") + "\n"
        if let r = a.response { line += responseLine(r) }
        return line
    }

    static func rate(_ v: Double?) -> String {
        guard let v else { return "-" }
        let units = ["B", "k", "M", "G"]
        var x = v
        var i = 0
        while x >= 1000 && i < units.count - 1 { x /= 1000; i += 1 }
        return String(format: i == 0 ? "%.0f%@" : "%.1f%@", x, units[i])
    }

    /// The live screen: every container with its numbers, then the latest alerts.
    public static func screen(telemetry: [ContainerTelemetry], alerts: [Alert], interval: Double, width: Int = 160) -> String {
        var s = "\u{1b}[H\u{1b}[2J"
        s += "minewatch watch: \(telemetry.count) container\(telemetry.count == 1 ? "" : "s"), every \(String(format: "%g", interval)) s, \(alerts.count) alert\(alerts.count == 1 ? "" : "s")   (Ctrl-C stops)\n\n"
        s += "CONTAINER      IMAGE                    PROCS  CPU(cores)  MEM      RX/s    TX/s    OUT-TX/s IN-TX/s  CONNS(out/in)\n"
        for t in telemetry.sorted(by: { ($0.outboundTxBytesPerSecond ?? 0) + ($0.cpuCores ?? 0) * 1e6 > ($1.outboundTxBytesPerSecond ?? 0) + ($1.cpuCores ?? 0) * 1e6 }) {
            let cpu = t.cpuCores.map { String(format: "%.2f", $0) + (t.cpuLimitCores.map { String(format: "/%.1f", $0) } ?? "") } ?? "-"
            let mem = t.memoryBytes.map { rate(Double($0)) } ?? "-"
            let rx = t.hostNetwork ? "host" : rate(t.rxBytesPerSecond)
            let tx = t.hostNetwork ? "host" : rate(t.txBytesPerSecond)
            s += [pad(name(t.container), 14), pad(t.container.image ?? "-", 24), pad(String(t.processes), 6), pad(cpu, 11), pad(mem, 8),
                  pad(rx, 7), pad(tx, 7), pad(rate(t.outboundTxBytesPerSecond), 8), pad(rate(t.inboundTxBytesPerSecond), 8),
                  "\(t.outboundConnections)/\(t.inboundConnections)"].joined(separator: " ") + "\n"
        }
        s += "\n" + tableHeader
        for a in alerts.suffix(20) { s += String(tableLine(a).prefix(width * 2)) }
        return s
    }
}
