import MinewatchCore
import MinewatchSignatures

/// Turns the rule matches of one file into findings: applies benign-context suppression and
/// file-scope correlations. Pure logic over bytes handed to it.
public struct FileAnalyzer: Sendable {
    public let rules: CompiledRules
    public static let chunkSize = 256 * 1024

    public init(rules: CompiledRules) { self.rules = rules }

    /// Scans content read through `read` (returns 0 at the end).
    public func analyze(
        path: String, layer: String?, fileType: FileType? = nil,
        read: (UnsafeMutableRawBufferPointer) throws(MinewatchError) -> Int,
        buffer: UnsafeMutableRawBufferPointer,
        onBytes: (Int) -> Void = { _ in }
    ) throws(MinewatchError) -> (findings: [Finding], bytes: Int64) {
        var m = FileMatcher(rules: rules, path: path, fileType: fileType)
        while true {
            let n = try read(buffer)
            if n == 0 { break }
            m.feed(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            onBytes(n)
        }
        let matches = m.finish()
        return (findings(from: matches, path: path, layer: layer, fileType: m.fileType ?? .text), m.bytesSeen)
    }

    /// Scans a string (image metadata) as one file.
    public func analyze(text: String, path: String, fileType: FileType = .metadata) -> [Finding] {
        var m = FileMatcher(rules: rules, path: path, fileType: fileType)
        var bytes = Array(text.utf8)
        bytes.withUnsafeMutableBytes { b in m.feed(UnsafeRawBufferPointer(b)) }
        bytes.removeAll()
        return findings(from: m.finish(), path: path, layer: nil, fileType: fileType)
    }

    func findings(from matches: [RuleMatch], path: String, layer: String?, fileType: FileType) -> [Finding] {
        // Benign context (a rule file, documentation) caps the rest; never for executables.
        let contexts = fileType == .elf ? [] : matches.filter { $0.rule.suppressTo != nil }
        let cap = contexts.compactMap(\.rule.suppressTo).min()
        var out: [Finding] = []
        var suppressed = Set<Int>()
        for m in matches where m.rule.suppressTo == nil {
            var f = Finding(ruleId: m.rule.id, severity: m.rule.severity, family: m.rule.family, category: m.rule.category,
                            title: m.rule.title, path: path, layer: layer, evidence: Self.dedupe(m.evidence))
            if let cap, f.severity > cap {
                f.note = "capped at \(cap) from \(f.severity): file is a \(contexts.map { "\($0.rule.title) (\($0.rule.id))" }.joined(separator: ", "))"
                f.severity = cap
                suppressed.insert(out.count)
            }
            out.append(f)
        }
        Correlator.apply(rules.ruleSet.correlations.filter { $0.scope == .file }, to: &out, excluding: suppressed)
        return out
    }

    static func dedupe(_ ev: [Evidence]) -> [Evidence] {
        var seen = Set<Evidence>()
        return ev.filter { seen.insert($0).inserted }
    }
}

/// Raises findings when the other evidence a correlation asks for is present in the same scope.
public enum Correlator {
    public static func apply(_ correlations: [Correlation], to findings: inout [Finding], excluding: Set<Int> = []) {
        for c in correlations {
            // Decide on the severities before this correlation changes any of them.
            let before = findings
            for i in findings.indices where !excluding.contains(i) && c.targetCategories.contains(findings[i].category) {
                let partners = before.indices.filter { j in
                    j != i && !excluding.contains(j) && before[j].category != before[i].category
                        && c.withCategories.contains(before[j].category) && before[j].severity >= c.withMinSeverity
                }
                guard !partners.isEmpty, findings[i].severity < c.raiseTo else { continue }
                let from = findings[i].severity
                findings[i].severity = c.raiseTo
                let others = partners.prefix(3).map { j -> String in
                    before[j].path == findings[i].path ? before[j].ruleId : "\(before[j].ruleId) at \(before[j].path)"
                }
                let note = "raised from \(from) by \(c.id): \(c.title) (\(others.joined(separator: ", ")))"
                findings[i].note = findings[i].note.map { "\($0); \(note)" } ?? note
            }
        }
    }
}
