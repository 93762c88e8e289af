import MinewatchModel
import MinewatchSignatures

/// `minewatch rules verdicts`: every verdict and case in force, as a table or JSON.
public enum VerdictsRenderer {
    public struct Row: Encodable, Sendable {
        public var id: String
        public var `case`: String
        public var severity: String
        public var technique: String?
        public var category: String
        public var title: String
        public var source: String?
    }

    public static func rows(_ set: RuleSet) -> [Row] {
        VerdictSpec.schema.keys.sorted().flatMap { id in
            (VerdictSpec.schema[id]?.cases ?? []).map { c in
                let r = set.verdict(id, c)
                return Row(id: id, case: c, severity: r.severity.rawValue, technique: r.technique, category: r.category, title: r.title,
                           source: set.verdicts[id]?.source.description)
            }
        }
    }

    public static func table(_ rows: [Row]) -> String {
        func line(_ cells: [String]) -> String {
            let widths = [20, 13, 9, 10]
            var parts: [String] = []
            for (i, c) in cells.enumerated() {
                parts.append(i < widths.count && c.count < widths[i] ? c + String(repeating: " ", count: widths[i] - c.count) : c)
            }
            return parts.joined(separator: " ") + "\n"
        }
        var out = line(["VERDICT", "CASE", "SEVERITY", "TECHNIQUE", "TITLE"])
        for r in rows { out += line([r.id, r.case, r.severity, r.technique ?? "-", r.title]) }
        return out
    }
}
