import Foundation
import MinewatchCore
import MinewatchModel

/// Alerts in the shapes other tools ingest: Falco's event (what Falcosidekick's `POST /` takes,
/// falcosecurity/falcosidekick `types.FalcoPayload`) and the OCSF Detection Finding (class 2004).
public enum EventRenderer {
    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }()

    // MARK: Falco

    /// Falco priorities for minewatch severities.
    public static func falcoPriority(_ s: Severity) -> String {
        switch s {
        case .critical: "Critical"
        case .high: "Error"
        case .medium: "Warning"
        case .low: "Notice"
        case .info: "Informational"
        }
    }

    /// The rule name of each detector (stable: Falcosidekick outputs key on it).
    public static func ruleName(_ d: DetectorID) -> String {
        switch d {
        case .minerProcess: "Cryptominer process in container"
        case .poolContact: "Outbound connection to mining pool port"
        case .drift: "Executable not in container image"
        case .cpuMiner: "Sustained CPU mining in container"
        case .bandwidthMiner: "Bandwidth mining from container"
        case .miningProtocol: "Mining protocol from container"
        case .relay: "Traffic relaying from container (proxyjacking)"
        case .bandwidthService: "Bandwidth-sharing service in container"
        }
    }

    /// RFC 3339 with nanoseconds in UTC, as Falco writes `time`.
    public static func rfc3339Nanos(_ d: Date) -> String {
        let t = d.timeIntervalSince1970
        var secs = floor(t)
        var nanos = Int(((t - secs) * 1e9).rounded())
        if nanos >= 1_000_000_000 { secs += 1; nanos -= 1_000_000_000 }
        var tmv = tm()
        var tt = time_t(secs)
        gmtime_r(&tt, &tmv)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%09dZ", Int(tmv.tm_year) + 1900, Int(tmv.tm_mon) + 1, Int(tmv.tm_mday),
                      Int(tmv.tm_hour), Int(tmv.tm_min), Int(tmv.tm_sec), nanos)
    }

    /// Repository and tag of an image reference (`registry/repo:tag`, `repo@sha256:...`).
    public static func splitImage(_ ref: String) -> (repository: String, tag: String?) {
        if let at = ref.firstIndex(of: "@") { return (String(ref[..<at]), String(ref[ref.index(after: at)...])) }
        if let colon = ref.lastIndex(of: ":"), !ref[ref.index(after: colon)...].contains("/") {
            return (String(ref[..<colon]), String(ref[ref.index(after: colon)...]))
        }
        return (ref, nil)
    }

    /// The first destination as (address or name, port).
    static func firstDestination(_ a: Alert) -> (host: String, port: Int?)? {
        for e in a.evidence where e.kind == .pool {
            let token = e.value.split(separator: " ").first.map(String.init) ?? ""
            // An endpoint (address or host with a port, a URL) in the value; otherwise a service's
            // or pool's domain in the name (its value says how it was seen: dns, tls, http).
            if let host = Alert.host(of: e.value), IPAddress(host) != nil || token.contains(":") {
                let port = token.split(separator: ":").last.flatMap { Int($0.prefix { $0.isNumber }) }
                return (host, token.contains(":") ? port : nil)
            }
            if e.name.contains(".") { return (e.name.lowercased(), nil) }
        }
        return nil
    }

    /// Falco's `output_fields` for an alert: Falco's dotted names where one exists, `minewatch.*`
    /// for the rest. Absent values are left out.
    public static func falcoFields(_ a: Alert) -> [String: FieldValue] {
        var f: [String: FieldValue] = ["container.id": .string(String(a.container.id.prefix(12))), "container.full_id": .string(a.container.id),
                                       "evt.time": .integer(Int64((a.detectedAt.timeIntervalSince1970 * 1e9).rounded()))]
        if let n = a.container.name { f["container.name"] = .string(n) }
        if let img = a.container.image {
            let (repo, tag) = splitImage(img)
            f["container.image.repository"] = .string(repo)
            if let tag { f["container.image.tag"] = .string(tag) }
            f["container.image"] = .string(img)
        }
        if let k = a.container.k8s {
            if let ns = k.namespace { f["k8s.ns.name"] = .string(ns) }
            if let p = k.pod { f["k8s.pod.name"] = .string(p) }
            if let c = k.container { f["k8s.container.name"] = .string(c) }
        }
        if let exe = a.exe {
            f["proc.exepath"] = .string(exe)
            f["proc.name"] = .string(String(exe.split(separator: "/").last ?? Substring(exe)).prefix(15).description)
        }
        if let pid = a.pid { f["proc.pid"] = .number(Double(pid)) }
        if let d = firstDestination(a) {
            if IPAddress(d.host) != nil { f["fd.rip"] = .string(d.host) } else { f["fd.sip.name"] = .string(d.host) }
            if let p = d.port { f["fd.rport"] = .number(Double(p)) }
        }
        f["minewatch.detector"] = .string(a.detector.rawValue)
        f["minewatch.severity"] = .string(a.severity.rawValue)
        if let fam = a.family { f["minewatch.family"] = .string(fam) }
        if let t = a.technique { f["minewatch.technique"] = .string(t) }
        f["minewatch.runtime"] = .string(a.container.runtime)
        f["minewatch.time_to_detect"] = .number(a.timeToDetect)
        f["minewatch.evidence"] = .string(a.evidence.prefix(8).map { "\($0.name)=\($0.value)" }.joined(separator: "; "))
        return f
    }

    /// A JSON value of `output_fields` (Falco's are strings and numbers).
    public enum FieldValue: Sendable, Hashable, Encodable {
        case string(String)
        case number(Double)
        case integer(Int64)
        public func encode(to encoder: any Encoder) throws {
            var c = encoder.singleValueContainer()
            switch self {
            case .string(let s): try c.encode(s)
            case .integer(let i): try c.encode(i)
            case .number(let n): if n == n.rounded() && abs(n) < 1e15 { try c.encode(Int64(n)) } else { try c.encode(n) }
            }
        }
    }

    struct FalcoPayload: Encodable {
        var output: String
        var priority: String
        var rule: String
        var time: String
        var output_fields: [String: FieldValue]
        var source: String
        var tags: [String]
        var hostname: String
    }

    /// Falco's tags for an alert: minewatch, the MITRE tactic and technique ids, the detector.
    public static func tags(_ a: Alert) -> [String] {
        var t = ["minewatch", "container", "mitre_impact", "T1496"]
        if let tech = a.technique, tech != "T1496" { t.append(tech) }
        t.append(a.detector.rawValue)
        if a.technique == "T1496.002" { t.append("bandwidth_hijacking") } else if a.technique == "T1496.001" { t.append("cryptomining") }
        return t
    }

    /// The Falco event of an alert, as Falcosidekick takes it.
    public static func falcoEvent(_ a: Alert, hostname: String) -> [UInt8] {
        let c = a.container
        let who = [c.name.map { "container.name=\($0)" }, c.image.map { "container.image=\($0)" },
                   c.k8s?.namespace.map { "k8s.ns.name=\($0)" }, c.k8s?.pod.map { "k8s.pod.name=\($0)" }].compactMap { $0 }
        let clock = rfc3339Nanos(a.detectedAt)
        let output = "\(clock): \(falcoPriority(a.severity)) \(a.summary) (container.id=\(String(c.id.prefix(12))) \(who.joined(separator: " "))\(who.isEmpty ? "" : " ")minewatch.detector=\(a.detector.rawValue)\(a.family.map { " minewatch.family=\($0)" } ?? ""))"
        let p = FalcoPayload(output: output, priority: falcoPriority(a.severity), rule: ruleName(a.detector), time: clock,
                             output_fields: falcoFields(a), source: "minewatch", tags: tags(a), hostname: hostname)
        return (try? encoder.encode(p)).map(Array.init) ?? []
    }

    /// Records as Falcosidekick bodies: alerts and admission decisions.
    public static func falcoBody(_ r: WatchRecord, hostname: String) -> [UInt8]? {
        switch r {
        case .alert(let a): falcoEvent(a, hostname: hostname)
        case .admission(let e): AdmissionRenderer.falcoEvent(e, hostname: hostname)
        case .response, .telemetry, .silenced: nil
        }
    }

    // MARK: OCSF

    /// OCSF severity_id: 1 informational, 2 low, 3 medium, 4 high, 5 critical.
    public static func ocsfSeverity(_ s: Severity) -> (id: Int, name: String) {
        switch s {
        case .info: (1, "Informational")
        case .low: (2, "Low")
        case .medium: (3, "Medium")
        case .high: (4, "High")
        case .critical: (5, "Critical")
        }
    }

    /// MITRE ATT&CK as OCSF's attack object (tactic Impact, technique Resource Hijacking, the
    /// sub-technique when the alert names one).
    static func ocsfAttacks(_ a: Alert) -> [[String: Any]] {
        var attack: [String: Any] = ["tactic": ["name": "Impact", "uid": "TA0040"], "technique": ["name": "Resource Hijacking", "uid": "T1496"], "version": "16.1"]
        switch a.technique {
        case "T1496.001": attack["sub_technique"] = ["name": "Compute Hijacking", "uid": "T1496.001"]
        case "T1496.002": attack["sub_technique"] = ["name": "Bandwidth Hijacking", "uid": "T1496.002"]
        default: break
        }
        return a.technique == nil ? [] : [attack]
    }

    /// A stable id for the finding: one alert per container and detector, ever.
    public static func findingUID(_ a: Alert) -> String {
        "minewatch-\(String(a.container.id.prefix(12)))-\(a.detector.rawValue)-\(Int64(a.detectedAt.timeIntervalSince1970 * 1000))"
    }

    /// An OCSF Detection Finding (class_uid 2004, activity Create) for an alert.
    public static func ocsfFinding(_ a: Alert, hostname: String, version: String) -> [String: Any] {
        let ms = { (d: Date) in Int64((d.timeIntervalSince1970 * 1000).rounded()) }
        let sev = ocsfSeverity(a.severity)
        var resource: [String: Any] = ["type": "Container", "uid": a.container.id]
        if let n = a.container.name { resource["name"] = n }
        if let k = a.container.k8s?.namespace { resource["namespace"] = k }
        var container: [String: Any] = ["uid": a.container.id, "runtime": a.container.runtime]
        if let n = a.container.name { container["name"] = n }
        if let img = a.container.image { container["image"] = ["name": img] }
        var labels = a.container.labels ?? [:]
        if let k = a.container.k8s {
            if let ns = k.namespace { labels["k8s.namespace"] = ns }
            if let p = k.pod { labels["k8s.pod"] = p }
            if let c = k.container { labels["k8s.container"] = c }
        }
        var analytic: [String: Any] = ["name": a.detector.rawValue, "uid": a.detector.rawValue, "type_id": 1, "type": "Rule"]
        analytic["desc"] = ruleName(a.detector)
        var info: [String: Any] = ["uid": findingUID(a), "title": ruleName(a.detector), "desc": a.summary,
                                   "types": [a.detector.rawValue] + (a.family.map { [$0] } ?? []),
                                   "created_time": ms(a.detectedAt), "first_seen_time": ms(a.startedAt), "last_seen_time": ms(a.detectedAt),
                                   "analytic": analytic]
        let attacks = ocsfAttacks(a)
        if !attacks.isEmpty { info["attacks"] = attacks }
        var evidence: [[String: Any]] = a.evidence.map { e in
            var x: [String: Any] = ["kind": e.kind.rawValue, "name": e.name, "value": e.value]
            if let o = e.offset { x["offset"] = o }
            return x
        }
        if evidence.count > 64 { evidence = Array(evidence.prefix(64)) }
        var unmapped: [String: Any] = ["detector": a.detector.rawValue, "evidence": evidence, "metrics": a.metrics,
                                       "time_to_detect": a.timeToDetect]
        if let f = a.family { unmapped["family"] = f }
        if let exe = a.exe { unmapped["exe"] = exe }
        if let pid = a.pid { unmapped["pid"] = Int(pid) }
        if !labels.isEmpty { container["labels"] = labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" } }
        var f: [String: Any] = [
            "class_uid": 2004, "class_name": "Detection Finding", "category_uid": 2, "category_name": "Findings",
            "activity_id": 1, "activity_name": "Create", "type_uid": 200401, "type_name": "Detection Finding: Create",
            "time": ms(a.detectedAt), "severity_id": sev.id, "severity": sev.name, "status_id": 1, "status": "New",
            "confidence_id": a.severity >= .high ? 3 : (a.severity >= .medium ? 2 : 1),
            "message": a.summary, "finding_info": info, "resources": [resource], "container": container,
            "metadata": ["version": "1.3.0", "product": ["name": "minewatch", "vendor_name": "minewatch", "version": version],
                         "log_name": "alerts", "original_time": rfc3339Nanos(a.detectedAt)],
            "device": ["hostname": hostname, "type_id": 0, "type": "Unknown"],
            "unmapped": ["minewatch": unmapped],
        ]
        if !attacks.isEmpty { f["attacks"] = attacks }
        return f
    }

    /// A record as an OCSF JSON line: alerts and admission decisions.
    public static func ocsfLine(_ r: WatchRecord, hostname: String, version: String) -> String {
        switch r {
        case .alert(let a):
            guard let d = try? JSONSerialization.data(withJSONObject: ocsfFinding(a, hostname: hostname, version: version), options: [.sortedKeys, .withoutEscapingSlashes]) else { return "" }
            return String(decoding: d, as: UTF8.self) + "\n"
        case .admission(let e):
            guard let d = try? JSONSerialization.data(withJSONObject: AdmissionRenderer.ocsfFinding(e, hostname: hostname, version: version), options: [.sortedKeys, .withoutEscapingSlashes]) else { return "" }
            return String(decoding: d, as: UTF8.self) + "\n"
        case .response, .telemetry, .silenced: return ""
        }
    }
}
