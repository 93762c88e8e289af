import Foundation
import MinewatchCore
import MinewatchModel

/// What one kind of verdict is called, how severe it is and which ATT&CK technique it is: the
/// network verdicts (`pcap` findings and `watch` alerts alike: a Stratum session is the same
/// verdict in both) and `watch`'s own detectors. Rule data: the bundled `80-verdicts.yaml` sets
/// every one, and a rule file's `verdicts:` entry overrides any key of it. Each verdict has cases
/// (proven or not, corroborated or a trait) that its code chooses between; a case's keys fall back
/// to the verdict's.
public struct VerdictSpec: Sendable, Hashable {
    public struct Case: Sendable, Hashable {
        public var title: String?
        public var severity: Severity?
        public var technique: String?
        public init(title: String? = nil, severity: Severity? = nil, technique: String? = nil) {
            self.title = title
            self.severity = severity
            self.technique = technique
        }
    }

    public var id: String
    public var category: String?
    public var title: String?
    public var severity: Severity?
    public var technique: String?
    public var cases: [String: Case]
    public var source: RuleSource

    public init(id: String, category: String? = nil, title: String? = nil, severity: Severity? = nil, technique: String? = nil,
                cases: [String: Case] = [:], source: RuleSource) {
        self.id = id
        self.category = category
        self.title = title
        self.severity = severity
        self.technique = technique
        self.cases = cases
        self.source = source
    }

    /// `other`'s keys win, key by key and case by case.
    public func merged(with other: VerdictSpec) -> VerdictSpec {
        var m = self
        m.category = other.category ?? category
        m.title = other.title ?? title
        m.severity = other.severity ?? severity
        m.technique = other.technique ?? technique
        for (name, c) in other.cases {
            let mine = cases[name] ?? Case()
            m.cases[name] = Case(title: c.title ?? mine.title, severity: c.severity ?? mine.severity, technique: c.technique ?? mine.technique)
        }
        m.source = other.source
        return m
    }

    /// The verdicts code asks for, each with its cases and the placeholders its titles may use.
    public static let schema: [String: (cases: [String], placeholders: [String])] = [
        "MW-NET-STRATUM": (["proven", "session"], ["protocol"]),
        "MW-NET-GETWORK": (["default"], []),
        "MW-NET-PACKETCRYPT": (["announcing", "polling"], []),
        "MW-NET-POOL-DOMAIN": (["default", "packetcrypt"], []),
        "MW-NET-RELAY": (["default"], []),
        "MW-NET-SERVICE": (["corroborated", "contact"], ["service"]),
        "MW-NET-BANDWIDTH": (["corroborated", "trait"], []),
        "MW-NET-HEARTBEAT": (["default"], []),
        "MW-NET-STRATUM-SHAPE": (["trait", "cpu", "corroborated"], []),
        "MW-WATCH-POOL-PORT": (["default"], []),
        "MW-WATCH-DRIFT": (["default"], []),
        "MW-WATCH-CPU": (["default", "randomx"], []),
    ]
}

/// A verdict's case with every key decided.
public struct ResolvedVerdict: Sendable, Hashable {
    public var id: String
    public var title: String
    public var severity: Severity
    public var technique: String?
    public var category: String
}

extension ResolvedVerdict {
    /// This verdict as a finding at `path`; a technique given here (a service rule's) wins over the
    /// verdict's.
    public func finding(path: String, family: String? = nil, evidence: [Evidence], note: String? = nil, technique: String? = nil) -> Finding {
        Finding(ruleId: id, severity: severity, family: family, category: category, title: title, path: path, evidence: evidence,
                note: note, technique: technique ?? self.technique)
    }
}

extension RuleSet {
    /// The verdict `id` in `case` with its title's `{placeholders}` filled from `values`. A verdict
    /// no rule file sets (the bundled rules were left out) reads as its id, at medium.
    public func verdict(_ id: String, _ caseName: String = "default", _ values: [String: String] = [:]) -> ResolvedVerdict {
        let spec = verdicts[id]
        let c = spec?.cases[caseName]
        var title = c?.title ?? spec?.title ?? id
        for (k, v) in values { title = title.replacingOccurrences(of: "{\(k)}", with: v) }
        return ResolvedVerdict(id: id, title: title, severity: c?.severity ?? spec?.severity ?? .medium,
                               technique: c?.technique ?? spec?.technique, category: spec?.category ?? "network")
    }

    /// Every verdict the code asks for that the loaded rule files leave without a title or a
    /// severity, as "ID case: what is missing".
    public func incompleteVerdicts() -> [String] {
        var out: [String] = []
        for (id, s) in VerdictSpec.schema.sorted(by: { $0.key < $1.key }) {
            for c in s.cases {
                let spec = verdicts[id], cs = spec?.cases[c]
                var missing: [String] = []
                if (cs?.title ?? spec?.title) == nil { missing.append("title") }
                if (cs?.severity ?? spec?.severity) == nil { missing.append("severity") }
                if !missing.isEmpty { out.append("\(id) \(c): no \(missing.joined(separator: " or "))") }
            }
        }
        return out
    }
}
