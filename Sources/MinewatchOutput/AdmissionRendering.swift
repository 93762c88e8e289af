import Foundation
import MinewatchCore
import MinewatchModel

/// The admission webhook's decisions on every sink: JSON lines, the table, Falcosidekick and OCSF.
public enum AdmissionRenderer {
    public static func jsonLine(_ e: AdmissionEvent) -> String {
        (try? ReportJSON.encoder().encode(e)).map { String(decoding: $0, as: UTF8.self) + "\n" } ?? ""
    }

    /// The decision as the append-only table shows it.
    public static func tableLine(_ e: AdmissionEvent) -> String {
        let what = e.decision.rawValue.uppercased() + (e.audit && e.decision == .denied ? " (audit: admitted)" : "")
        let why = e.reasons.isEmpty ? (e.exception.map { "exception \($0)" } ?? "attested or clean") : e.reasons.joined(separator: "; ")
        return "\(WatchRenderer.clock(e.time))  admission  \(what) \(e.operation) \(e.object): \(why)\n"
    }

    static func priority(_ e: AdmissionEvent) -> String {
        switch e.decision {
        case .denied: "Warning"
        case .warned: "Notice"
        case .allowed: "Informational"
        }
    }

    static func severity(_ e: AdmissionEvent) -> Severity {
        switch e.decision {
        case .denied: e.findings.map(\.severity).max().map { max($0, .high) } ?? .high
        case .warned: .medium
        case .allowed: .info
        }
    }

    /// The decision as a Falco event (Falcosidekick's body), with Kubernetes audit field names.
    public static func falcoEvent(_ e: AdmissionEvent, hostname: String) -> [UInt8] {
        let clock = EventRenderer.rfc3339Nanos(e.time)
        var f: [String: EventRenderer.FieldValue] = [
            "ka.target.resource": .string(e.kind), "ka.verb": .string(e.operation.lowercased()),
            "minewatch.decision": .string(e.decision.rawValue), "minewatch.audit": .string(e.audit ? "true" : "false"),
            "minewatch.reasons": .string(e.reasons.joined(separator: "; ")), "evt.time": .integer(Int64((e.time.timeIntervalSince1970 * 1e9).rounded())),
        ]
        if let ns = e.namespace { f["ka.target.namespace"] = .string(ns); f["k8s.ns.name"] = .string(ns) }
        if let n = e.name { f["ka.target.name"] = .string(n) }
        if let u = e.user { f["ka.user.name"] = .string(u) }
        if let img = e.images.first { f["container.image"] = .string(img.image) }
        if let ex = e.exception { f["minewatch.exception"] = .string(ex) }
        let rule = "minewatch admission \(e.decision.rawValue)"
        let output = "\(clock): \(priority(e)) \(e.decision.rawValue) \(e.operation) \(e.object)\(e.audit ? " (audit)" : "")"
            + (e.reasons.isEmpty ? "" : ": \(e.reasons.joined(separator: "; "))")
        var tags = ["minewatch", "k8s", "admission", "T1496"]
        if e.findings.contains(where: { $0.technique == "T1496.002" }) { tags.append("bandwidth_hijacking") }
        let body: [String: Any] = [
            "output": output, "priority": priority(e), "rule": rule, "time": clock, "source": "minewatch", "tags": tags, "hostname": hostname,
            "output_fields": f.mapValues { v -> Any in
                switch v {
                case .string(let s): s
                case .integer(let i): i
                case .number(let n): n
                }
            },
        ]
        return (try? JSONSerialization.data(withJSONObject: body, options: [.sortedKeys, .withoutEscapingSlashes])).map(Array.init) ?? []
    }

    /// The decision as an OCSF Detection Finding, with the Security Control profile's action and
    /// disposition (Allowed, Denied/Blocked).
    public static func ocsfFinding(_ e: AdmissionEvent, hostname: String, version: String) -> [String: Any] {
        let ms = Int64((e.time.timeIntervalSince1970 * 1000).rounded())
        let sev = EventRenderer.ocsfSeverity(severity(e))
        let blocked = !e.admitted
        var resource: [String: Any] = ["type": e.kind, "name": e.name ?? ""]
        if let ns = e.namespace { resource["namespace"] = ns }
        let info: [String: Any] = [
            "uid": "minewatch-admission-\(e.uid)", "title": "minewatch admission \(e.decision.rawValue)",
            "desc": e.reasons.isEmpty ? "admitted" : e.reasons.joined(separator: "; "), "created_time": ms,
            "types": ["admission"] + Array(Set(e.findings.compactMap(\.family))).sorted(),
            "analytic": ["name": "admission", "uid": "admission", "type_id": 1, "type": "Rule"],
        ]
        let images: [[String: Any]] = e.images.map { i in
            var x: [String: Any] = ["image": i.image, "source": i.source.rawValue, "verdict": i.verdict, "detail": i.detail]
            if let d = i.digest { x["digest"] = d }
            return x
        }
        return [
            "class_uid": 2004, "class_name": "Detection Finding", "category_uid": 2, "category_name": "Findings",
            "activity_id": 1, "activity_name": "Create", "type_uid": 200401, "type_name": "Detection Finding: Create",
            "time": ms, "severity_id": sev.id, "severity": sev.name, "status_id": 1, "status": "New",
            "action_id": blocked ? 2 : 1, "action": blocked ? "Denied" : "Allowed",
            "disposition_id": blocked ? 2 : 1, "disposition": blocked ? "Blocked" : "Allowed",
            "message": "\(e.decision.rawValue) \(e.operation) \(e.object)", "finding_info": info, "resources": [resource],
            "metadata": ["version": "1.3.0", "product": ["name": "minewatch", "vendor_name": "minewatch", "version": version],
                         "log_name": "admission", "original_time": EventRenderer.rfc3339Nanos(e.time)],
            "device": ["hostname": hostname, "type_id": 0, "type": "Unknown"],
            "unmapped": ["minewatch": ["decision": e.decision.rawValue, "audit": e.audit, "images": images,
                                       "findings": e.findings.map { "\($0.ruleId) \($0.severity.rawValue) \($0.path)" },
                                       "exception": e.exception ?? "", "duration_ms": e.durationMs, "user": e.user ?? "", "uid": e.uid]],
        ]
    }
}
