import Foundation
import MinewatchCore

// A canonical encoding of the rules and correlations: every field that can change a finding
// (titles, families, techniques, `runs:` severities, captures, conditions, correlation settings),
// sets sorted, keys sorted. Where a rule came from (file and line) is left out.

extension RuleString: Encodable {
    enum CodingKeys: String, CodingKey { case id, bytes, nocase, capture }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(bytes, forKey: .bytes)
        try c.encode(nocase, forKey: .nocase)
        try c.encode(capture?.rawValue, forKey: .capture)
    }
}

extension Condition: Encodable {
    enum CodingKeys: String, CodingKey { case string, atLeast, of, within, and, or, not }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .string(let i): try c.encode(i, forKey: .string)
        case .atLeast(let n, let set): try c.encode(n, forKey: .atLeast); try c.encode(set, forKey: .of)
        case .within(let n, let set, let size):
            try c.encode(n, forKey: .atLeast); try c.encode(set, forKey: .of); try c.encode(size, forKey: .within)
        case .and(let a, let b): try c.encode([a, b], forKey: .and)
        case .or(let a, let b): try c.encode([a, b], forKey: .or)
        case .not(let a): try c.encode(a, forKey: .not)
        }
    }
}

extension Rule: Encodable {
    enum CodingKeys: String, CodingKey {
        case id, title, description, family, category, severity, fileTypes, strings, condition, conditionText, paths, names,
             wallets, suppressTo, maxSize, check, technique, severityWhenRunning, domains, references
    }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(title, forKey: .title)
        try c.encode(description, forKey: .description)
        try c.encode(family, forKey: .family)
        try c.encode(category, forKey: .category)
        try c.encode(severity, forKey: .severity)
        try c.encode(fileTypes.map(\.rawValue).sorted(), forKey: .fileTypes)
        try c.encode(strings, forKey: .strings)
        try c.encode(condition, forKey: .condition)
        try c.encode(conditionText, forKey: .conditionText)
        try c.encode(paths, forKey: .paths)
        try c.encode(names, forKey: .names)
        try c.encode(wallets.sorted(), forKey: .wallets)
        try c.encode(suppressTo, forKey: .suppressTo)
        try c.encode(maxSize, forKey: .maxSize)
        try c.encode(check?.rawValue, forKey: .check)
        try c.encode(technique, forKey: .technique)
        try c.encode(severityWhenRunning, forKey: .severityWhenRunning)
        try c.encode(domains, forKey: .domains)
        try c.encode(references, forKey: .references)
    }
}

extension Correlation: Encodable {
    enum CodingKeys: String, CodingKey { case id, title, scope, targetCategories, withCategories, withMinSeverity, raiseTo }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(title, forKey: .title)
        try c.encode(scope.rawValue, forKey: .scope)
        try c.encode(targetCategories.sorted(), forKey: .targetCategories)
        try c.encode(withCategories.sorted(), forKey: .withCategories)
        try c.encode(withMinSeverity, forKey: .withMinSeverity)
        try c.encode(raiseTo, forKey: .raiseTo)
    }
}

extension RuleSet {
    struct Canonical: Encodable {
        var rules: [Rule]
        var correlations: [Correlation]
    }

    /// The canonical encoding of the rules and correlations (JSON, keys sorted).
    public func canonicalEncoding() -> [UInt8] {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        // Every value here is a string, number, bool, array or null: encoding cannot fail.
        return (try? Array(e.encode(Canonical(rules: rules, correlations: correlations)))) ?? []
    }

    /// SHA-256 (hex) of `canonicalEncoding()`: changes with any field of any rule or correlation.
    public var digest: String { SHA256Digest.hex(canonicalEncoding()) }
}
