import Foundation
import MinewatchCore
import MinewatchModel
import MinewatchSignatures

public enum OutputFormat: String, Sendable, CaseIterable {
    case table, json, sarif
}

/// Every output format of `scan`, rendered in one place.
public enum ReportRenderer {
    public static func render(_ report: ScanReport, format: OutputFormat, rules: RuleSet, color: Bool = false) -> String {
        switch format {
        case .table: return TableRenderer(color: color).render(report)
        case .json: return json(report)
        case .sarif: return SARIFRenderer.render(report, rules: rules)
        }
    }

    public static func json<T: Encodable>(_ value: T, pretty: Bool = true) -> String {
        guard let data = try? ReportJSON.encoder(pretty: pretty).encode(value) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }
}

struct TableRenderer {
    let color: Bool

    func paint(_ s: String, _ sev: Severity) -> String {
        guard color else { return s }
        let code: String
        switch sev {
        case .critical: code = "1;31"
        case .high: code = "31"
        case .medium: code = "33"
        case .low: code = "36"
        case .info: code = "2"
        }
        return "\u{1b}[\(code)m\(s)\u{1b}[0m"
    }

    func bold(_ s: String) -> String { color ? "\u{1b}[1m\(s)\u{1b}[0m" : s }

    static func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }

    static func shortDigest(_ d: String) -> String {
        guard let colon = d.firstIndex(of: ":") else { return String(d.prefix(19)) }
        return String(d[...colon]) + String(d[d.index(after: colon)...].prefix(12))
    }

    func render(_ report: ScanReport) -> String {
        var out = ""
        var total: [Severity: Int] = [:]
        var errors = 0
        for t in report.targets {
            let refs = t.image?.references.isEmpty == false ? " (\(t.image?.references.joined(separator: ", ") ?? ""))" : ""
            let worst = t.highestSeverity.map { ", highest \($0.rawValue.uppercased())" } ?? ""
            out += bold("\(t.target)") + " [\(t.kind)]\(refs): \(t.findings.count) finding\(t.findings.count == 1 ? "" : "s")\(worst), \(t.stats.files) files, \(Self.bytes(t.stats.bytes))\n"
            // Group: image metadata first, then layers in image order, then everything else.
            let layerOrder = t.image?.layers ?? []
            var groups: [(String, [Finding])] = []
            let meta = t.findings.filter { $0.layer == nil && ($0.path.hasPrefix("config:") || $0.path.hasPrefix("history[")) }
            if !meta.isEmpty { groups.append(("image config", meta)) }
            var seenLayers = Set<String>()
            for (i, l) in layerOrder.enumerated() where !seenLayers.contains(l) {
                seenLayers.insert(l)
                let fs = t.findings.filter { $0.layer == l }
                if !fs.isEmpty { groups.append(("layer \(i) \(Self.shortDigest(l))", fs)) }
            }
            let rest = t.findings.filter { f in
                !(f.layer.map { seenLayers.contains($0) } ?? false) && !(f.layer == nil && (f.path.hasPrefix("config:") || f.path.hasPrefix("history[")))
            }
            if !rest.isEmpty { groups.append((t.kind == "file" ? "file" : "files", rest)) }
            for (title, fs) in groups {
                out += "  \(title)\n"
                for f in fs.sorted(by: { ($0.severity, $1.path) > ($1.severity, $0.path) }) {
                    total[f.severity, default: 0] += 1
                    let sev = paint(Self.pad(f.severity.rawValue.uppercased(), 8), f.severity)
                    let fam = Self.pad(f.family ?? "-", 11)
                    out += "    \(sev) \(Self.pad(f.ruleId, 22)) \(fam) \(f.path)\(f.line.map { ":\($0)" } ?? "")\(f.hidden ? "  [hidden: removed in a later layer, still shipped]" : "")\n"
                    out += "             \(f.title)\(f.technique.map { " (\($0))" } ?? "")\n"
                    if !f.evidence.isEmpty {
                        let ev = f.evidence.prefix(6).map { e -> String in
                            let at = e.line.map { " line \($0)" } ?? e.offset.map { " @\($0)" } ?? ""
                            switch e.kind {
                            case .signature:
                                let q = e.value.contains("\"") ? "'" : "\""
                                return "\(e.name) \(q)\(e.value)\(q)\(at)"
                            case .wallet: return "wallet \(e.name) \(e.value)"
                            case .pool: return "pool \(e.value)"
                            case .attribute: return "\(e.name)=\(e.value)\(e.line.map { " line \($0)" } ?? "")"
                            }
                        }
                        out += "             evidence: \(ev.joined(separator: "; "))\(f.evidence.count > 6 ? "; +\(f.evidence.count - 6) more" : "")\n"
                    }
                    if let note = f.note { out += "             note: \(note)\n" }
                }
            }
            if !t.errors.isEmpty {
                out += "  errors\n"
                for e in t.errors {
                    errors += 1
                    let loc = [e.layer.map { "layer \(Self.shortDigest($0))" }, e.path].compactMap { $0 }.joined(separator: " ")
                    out += "    \(loc.isEmpty ? "" : loc + ": ")\(e.message)\n"
                }
            }
            out += "\n"
        }
        let counts = Severity.allCases.reversed().compactMap { s in total[s].map { "\($0) \(s.rawValue)" } }
        let n = total.values.reduce(0, +)
        out += "Summary: \(report.targets.count) target\(report.targets.count == 1 ? "" : "s"), \(n) finding\(n == 1 ? "" : "s")"
        if !counts.isEmpty { out += " (\(counts.joined(separator: ", ")))" }
        out += ", \(errors) error\(errors == 1 ? "" : "s")\n"
        return out
    }

    static func bytes(_ b: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var v = Double(b)
        var u = 0
        while v >= 1024 && u < units.count - 1 { v /= 1024; u += 1 }
        return u == 0 ? "\(b) B" : String(format: "%.1f %@", v, units[u])
    }
}

/// SARIF 2.1.0 as GitHub code scanning accepts it.
enum SARIFRenderer {
    static func level(_ s: Severity) -> String {
        switch s {
        case .critical, .high: "error"
        case .medium: "warning"
        case .low, .info: "note"
        }
    }

    static func securitySeverity(_ s: Severity) -> String {
        switch s {
        case .critical: "9.5"
        case .high: "8.0"
        case .medium: "5.5"
        case .low: "3.0"
        case .info: "0.0"
        }
    }

    /// A path under the working directory as a relative one (code scanning wants repository paths).
    static func relativeToWorkingDirectory(_ path: String) -> String {
        let cwd = FileManager.default.currentDirectoryPath
        guard path.hasPrefix("/"), !cwd.isEmpty, path.hasPrefix(cwd.hasSuffix("/") ? cwd : cwd + "/") else { return path }
        return String(path.dropFirst(cwd.hasSuffix("/") ? cwd.count : cwd.count + 1))
    }

    static func render(_ report: ScanReport, rules: RuleSet) -> String {
        let used = Set(report.targets.flatMap { $0.findings.map(\.ruleId) })
        let ruleList = rules.rules.filter { used.contains($0.id) }
        var index: [String: Int] = [:]
        var sarifRules: [[String: Any]] = []
        for r in ruleList {
            index[r.id] = sarifRules.count
            var tags = ["security", r.category == "bandwidth-hijacking" ? "bandwidth-hijacking" : "cryptojacking", r.category]
            tags += (r.family.map { [$0] } ?? []) + (r.technique.map { ["external/mitre-attack/\($0)"] } ?? [])
            var props: [String: Any] = ["tags": Array(NSOrderedSet(array: tags)) as? [String] ?? tags,
                                        "security-severity": securitySeverity(r.severity)]
            if let t = r.technique { props["mitre-attack"] = t }
            if !r.references.isEmpty { props["references"] = r.references }
            sarifRules.append([
                "id": r.id,
                "name": r.id.replacingOccurrences(of: "-", with: ""),
                "shortDescription": ["text": r.title],
                "fullDescription": ["text": r.description.isEmpty ? r.title : r.description],
                "help": ["text": "\(r.title). Category: \(r.category). Rule file: \(r.source.file.split(separator: "/").last.map(String.init) ?? r.source.file), line \(r.source.line)."],
                "defaultConfiguration": ["level": level(r.severity)],
                "properties": props,
            ])
        }
        var results: [[String: Any]] = []
        for t in report.targets {
            let imageName = t.image?.references.first ?? t.target
            for f in t.findings {
                var text = "\(f.title) in \(imageName) at \(f.path)"
                if f.hidden { text += " (removed in a later layer but still shipped in the image)" }
                let ev = f.evidence.prefix(5).map { e -> String in
                    e.kind == .signature ? "\(e.name)=\"\(e.value)\"" : "\(e.kind.rawValue) \(e.value)"
                }
                if !ev.isEmpty { text += ". Evidence: " + ev.joined(separator: ", ") }
                if let note = f.note { text += ". \(note)" }
                // A file target is named as given (a repository's Dockerfile, manifest); image paths are rootfs-relative.
                let uri = t.kind == "file" ? relativeToWorkingDirectory(t.target) : f.path.hasPrefix("/") ? String(f.path.dropFirst()) : f.path
                var result: [String: Any] = [
                    "ruleId": f.ruleId,
                    "level": level(f.severity),
                    "message": ["text": text],
                    "locations": [[
                        "physicalLocation": [
                            "artifactLocation": ["uri": uri.isEmpty ? imageName : uri],
                            "region": ["startLine": f.line ?? 1, "startColumn": 1],
                        ],
                        "message": ["text": imageName + (f.layer.map { " layer \($0)" } ?? "")],
                    ]],
                    "partialFingerprints": ["minewatch/v1": "\(f.ruleId):\(imageName):\(f.path)"],
                    "properties": [
                        "severity": f.severity.rawValue, "category": f.category, "hidden": f.hidden,
                        "target": t.target, "layer": f.layer ?? NSNull(), "family": f.family ?? NSNull(),
                        "mitre-attack": f.technique ?? NSNull(),
                    ] as [String: Any],
                ]
                if let i = index[f.ruleId] { result["ruleIndex"] = i }
                results.append(result)
            }
        }
        let doc: [String: Any] = [
            "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
            "version": "2.1.0",
            "runs": [[
                "tool": ["driver": [
                    "name": "minewatch",
                    "version": report.version,
                    "semanticVersion": report.version,
                    "informationUri": "https://github.com/minewatch/minewatch",
                    "rules": sarifRules,
                ]],
                "results": results,
                "columnKind": "utf16CodeUnits",
            ]],
        ]
        guard let data = try? JSONSerialization.data(withJSONObject: doc, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]) else {
            return "{}"
        }
        return String(decoding: data, as: UTF8.self)
    }
}
