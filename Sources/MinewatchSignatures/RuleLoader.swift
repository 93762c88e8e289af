import Foundation
import MinewatchCore
import MinewatchModel
import Yams

/// A problem in a rule file, with where it is. One line when printed:
/// `rules.yaml:12: rule MW-X: string 'a' is shorter than 4 bytes`.
public struct RuleDiagnostic: Sendable, Hashable, CustomStringConvertible {
    public var file: String
    public var line: Int?
    public var ruleId: String?
    public var message: String

    public var description: String {
        var s = file
        if let line { s += ":\(line)" }
        s += ": "
        if let ruleId { s += "rule \(ruleId): " }
        return s + message
    }
}

/// The rules and correlations from one or more files, after validation.
public struct RuleSet: Sendable {
    public var correlations: [Correlation]
    /// TCP ports mining pools listen on (`network: minerPorts:`), for `watch`'s pool-contact
    /// detector. Weak evidence alone: pools also listen on 80 and 443.
    public var minerPorts: Set<UInt16> = []
    /// Domains of mining pools (`network: poolDomains:`, lower case); a name matches a domain or
    /// any name below it. For `pcap` and watch's packet evidence (DNS, TLS SNI, HTTP Host).
    public var poolDomains: Set<String> = []
    /// Environment variables `watch` reads from new processes for the content rules
    /// (`process: environment:`): miner and proxyware settings.
    public var environmentKeys: Set<String> = []
    /// Published addresses of projects (donation funds, `wallets: public:`): a program that carries
    /// one (a Monero wallet carries the Monero Project's) is not mining to it, so they are no evidence.
    public var publicWallets: Set<String> = []
    /// Thresholds of the behaviour models (`models:`).
    public var models = ModelSettings()
    /// Titles, severities and techniques of the network verdicts and `watch`'s detectors
    /// (`verdicts:`), by verdict id.
    public var verdicts: [String: VerdictSpec] = [:]
    /// Rule index per service domain (`domains:` of the rules).
    public private(set) var serviceDomains: [String: Int] = [:]
    public var rules: [Rule] { didSet { indexDomains() } }
    public init(rules: [Rule], correlations: [Correlation], minerPorts: Set<UInt16> = [], poolDomains: Set<String> = []) {
        self.rules = rules
        self.correlations = correlations
        self.minerPorts = minerPorts
        self.poolDomains = poolDomains
        indexDomains()
    }

    mutating func indexDomains() {
        var index: [String: Int] = [:]
        for (i, r) in rules.enumerated() { for d in r.domains { index[d] = i } }
        serviceDomains = index
    }

    /// The rule whose service domain `name` is, or is below, with that domain; nil when none.
    public func serviceRule(for name: String) -> (rule: Rule, domain: String)? {
        guard !serviceDomains.isEmpty else { return nil }
        return Self.firstDomain(of: name) { d in serviceDomains[d].map { (rules[$0], d) } }
    }

    /// The rule that reports a structural check's evidence (the last loaded wins); nil when none
    /// is loaded or a rule file disabled it.
    public func checkRule(_ check: StructuralCheck) -> Rule? { rules.last { $0.check == check } }

    /// The pool domain `name` is, or is below; nil when none.
    public func poolDomain(for name: String) -> String? {
        guard !poolDomains.isEmpty else { return nil }
        return Self.firstDomain(of: name) { poolDomains.contains($0) ? $0 : nil }
    }

    /// The first of `name` and the domains above it (lower-cased, without a final dot) that
    /// `found` gives a value for. An IP address literal is only itself: its parts are no domains
    /// (and detectors ask about every session's server, an address more often than not, every
    /// pass).
    static func firstDomain<T>(of name: String, _ found: (String) -> T?) -> T? {
        // Told by its characters, not parsed (a parse per session per pass was most of a lookup):
        // digits and dots only (no domain's top label is all digits), or hex digits and dots
        // around a colon (no domain name holds a colon). Anything else shaped so is no name a rule
        // can hold either, so it is looked up as itself.
        var hex = true, decimal = true, colon = false, upper = false
        for c in name.utf8 {
            if (c >= 0x41 && c <= 0x5A) || c >= 0x80 { upper = true }  // non-ASCII: lower-cased as before
            let digitOrDot = (c >= 0x30 && c <= 0x39) || c == 0x2E
            if !digitOrDot { decimal = false }
            if c == 0x3A { colon = true } else if !digitOrDot && !(c >= 0x61 && c <= 0x66) && !(c >= 0x41 && c <= 0x46) { hex = false }
        }
        var n = Substring(upper ? name.lowercased() : name)
        if n.hasSuffix(".") { n = n.dropLast() }
        if !n.isEmpty, decimal || (colon && hex) { return found(String(n)) }
        while true {
            if let v = found(String(n)) { return v }
            guard let dot = n.firstIndex(of: ".") else { return nil }
            n = n[n.index(after: dot)...]
        }
    }

    /// Rules from later sets replace rules with the same id (user overrides), and rules a
    /// later set disables (`enabled: false`) are removed.
    public func merged(with other: RuleSet, disabled: Set<String> = []) -> RuleSet {
        var byID: [String: Int] = [:]
        var rules = self.rules
        for (i, r) in rules.enumerated() { byID[r.id] = i }
        for r in other.rules {
            if let i = byID[r.id] { rules[i] = r } else { byID[r.id] = rules.count; rules.append(r) }
        }
        rules.removeAll { disabled.contains($0.id) }
        var corr = correlations
        for c in other.correlations {
            if let i = corr.firstIndex(where: { $0.id == c.id }) { corr[i] = c } else { corr.append(c) }
        }
        corr.removeAll { disabled.contains($0.id) }
        var set = RuleSet(rules: rules, correlations: corr, minerPorts: minerPorts.union(other.minerPorts),
                          poolDomains: poolDomains.union(other.poolDomains))
        set.environmentKeys = environmentKeys.union(other.environmentKeys)
        set.publicWallets = publicWallets.union(other.publicWallets)
        set.models = models.merged(with: other.models)
        set.verdicts = verdicts.merging(other.verdicts) { mine, theirs in mine.merged(with: theirs) }
        return set
    }
}

/// Loads rule files in stages (read, parse YAML, collect, compile conditions) and reports every
/// problem with file, line and rule id instead of stopping at the first.
public struct RuleLoader {
    public static let minimumStringLength = 4
    public static let maximumStringLength = 255
    /// Categories whose rules convict a file of being a miner: they must need two or more strings.
    public static let multiSignatureCategories: Set<String> = ["miner-binary", "miner-script"]
    /// A binary constant this long cannot occur by chance: one is enough for `miner-algorithm`.
    public static let longConstant = 32
    /// Paths of findings that describe what runs: image Entrypoint/Cmd and Env, a running process's
    /// command line and environment (`watch`), and manifests (Dockerfiles, compose files,
    /// Kubernetes manifests). A rule's `runs:` severity applies there.
    public static func describesWhatRuns(path: String, fileType: FileType) -> Bool {
        fileType == .manifest || path == "config:Entrypoint+Cmd" || path == "config:Env" || path == "cmdline" || path == "environ"
    }

    public struct Output: Sendable {
        public var ruleSet: RuleSet
        /// Ids of rules a file asked to disable (`- id: X` with `enabled: false`).
        public var disabled: Set<String>
        public var diagnostics: [RuleDiagnostic]
    }

    public init() {}

    /// Largest rule file read (a pipe included).
    public static let maxFileSize = 64 << 20

    public func load(path: String) -> Output {
        let name = path
        let data: Data
        do throws(MinewatchError) { data = Data(try FileHandleFD.readWhole(path, limit: Self.maxFileSize, what: "rules")) } catch {
            return Output(ruleSet: RuleSet(rules: [], correlations: []), disabled: [],
                          diagnostics: [RuleDiagnostic(file: name, line: nil, ruleId: nil, message: "read rules: \(error.message)")])
        }
        guard let text = String(data: data, encoding: .utf8) else {
            return Output(ruleSet: RuleSet(rules: [], correlations: []), disabled: [],
                          diagnostics: [RuleDiagnostic(file: name, line: nil, ruleId: nil, message: "rule file is not UTF-8")])
        }
        return load(yaml: text, file: name)
    }

    public func load(yaml text: String, file: String) -> Output {
        var diags: [RuleDiagnostic] = []
        let root: Node?
        switch YAMLWalker.compose(text) {
        case .success(let r): root = r
        case .failure(let e):
            return Output(ruleSet: RuleSet(rules: [], correlations: []), disabled: [],
                          diagnostics: [RuleDiagnostic(file: file, line: e.line, ruleId: nil, message: e.message)])
        }
        guard let root, let top = root.mapping else {
            return Output(ruleSet: RuleSet(rules: [], correlations: []), disabled: [],
                          diagnostics: [RuleDiagnostic(file: file, line: root?.mark?.line, ruleId: nil,
                                                       message: "expected a mapping with 'rules:' at the top")])
        }
        var rules: [Rule] = []
        var correlations: [Correlation] = []
        var minerPorts: Set<UInt16> = []
        var poolDomains: Set<String> = []
        var environment: Set<String> = []
        var publicWallets: Set<String> = []
        var models = ModelSettings()
        var verdicts: [String: VerdictSpec] = [:]
        var disabled: Set<String> = []
        var seen: [String: Int] = [:]
        for (k, v) in top {
            let key = k.string ?? ""
            switch key {
            case "version":
                if v.int != 1 {
                    diags.append(RuleDiagnostic(file: file, line: v.mark?.line, ruleId: nil, message: "unsupported rule format version '\(v.string ?? "")' (expected 1)"))
                }
            case "rules":
                guard let seq = v.sequence else {
                    diags.append(RuleDiagnostic(file: file, line: v.mark?.line, ruleId: nil, message: "'rules' must be a list"))
                    continue
                }
                for item in seq {
                    var ctx = Context(file: file, line: item.mark?.line ?? 0)
                    let parsed = parseRule(item, &ctx)
                    diags.append(contentsOf: ctx.ruleDiagnostics)
                    switch parsed {
                    case .rule(let r):
                        if let prev = seen[r.id] {
                            diags.append(RuleDiagnostic(file: file, line: r.source.line, ruleId: r.id, message: "duplicate rule id (first at line \(prev))"))
                        } else {
                            seen[r.id] = r.source.line
                            rules.append(r)
                        }
                    case .disabled(let id): disabled.insert(id)
                    case .invalid: break
                    }
                }
            case "network":
                guard let m = v.mapping else {
                    diags.append(RuleDiagnostic(file: file, line: v.mark?.line, ruleId: nil, message: "'network' must be a mapping"))
                    continue
                }
                for (nk, nv) in m {
                    guard let seq = nv.sequence, nk.string == "minerPorts" || nk.string == "poolDomains" else {
                        diags.append(RuleDiagnostic(file: file, line: nk.mark?.line, ruleId: nil, message: "unknown or malformed key '\(nk.string ?? "")' in 'network' (expected minerPorts: [ports], poolDomains: [names])"))
                        continue
                    }
                    for p in seq {
                        if nk.string == "poolDomains" {
                            if let d = Self.domainName(p.string) {
                                poolDomains.insert(d)
                            } else {
                                diags.append(RuleDiagnostic(file: file, line: p.mark?.line, ruleId: nil, message: "pool domain '\(p.string ?? "")' is not a domain name"))
                            }
                        } else if let n = p.int, (1...65535).contains(n) { minerPorts.insert(UInt16(n)) } else {
                            diags.append(RuleDiagnostic(file: file, line: p.mark?.line, ruleId: nil, message: "port '\(p.string ?? "")' is not 1-65535"))
                        }
                    }
                }
            case "wallets":
                // Published project addresses: no evidence.
                publicWallets.formUnion(Self.stringList(v, section: "wallets", key: "public", expected: "public: [addresses]", file: file, diags: &diags,
                                                        invalid: "is not a wallet address") { a in
                    (26...128).contains(a.count) && a.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber) }
                })
            case "process":
                environment.formUnion(Self.stringList(v, section: "process", key: "environment", expected: "environment: [variable names]", file: file,
                                                      diags: &diags, invalid: "is not an environment variable name") { n in
                    !n.isEmpty && n.count <= 64 && n.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }
                })
            case "models":
                let (m, d) = Self.models(v, file: file)
                models = models.merged(with: m)
                diags += d
            case "verdicts":
                guard let seq = v.sequence else {
                    diags.append(RuleDiagnostic(file: file, line: v.mark?.line, ruleId: nil, message: "'verdicts' must be a list"))
                    continue
                }
                for item in seq {
                    var ctx = Context(file: file, line: item.mark?.line ?? 0)
                    if let s = parseVerdict(item, &ctx) {
                        if let prev = verdicts[s.id] {
                            ctx.error("duplicate verdict id (first at line \(prev.source.line))", at: item)
                        } else {
                            verdicts[s.id] = s
                        }
                    }
                    diags.append(contentsOf: ctx.ruleDiagnostics)
                }
            case "correlations":
                guard let seq = v.sequence else {
                    diags.append(RuleDiagnostic(file: file, line: v.mark?.line, ruleId: nil, message: "'correlations' must be a list"))
                    continue
                }
                for item in seq {
                    var ctx = Context(file: file, line: item.mark?.line ?? 0)
                    if let c = parseCorrelation(item, &ctx) { correlations.append(c) }
                    diags.append(contentsOf: ctx.ruleDiagnostics)
                }
            default:
                diags.append(RuleDiagnostic(file: file, line: k.mark?.line, ruleId: nil, message: "unknown top-level key '\(key)' (expected version, rules, correlations, network, process, wallets, models, verdicts)"))
            }
        }
        var set = RuleSet(rules: rules, correlations: correlations, minerPorts: minerPorts, poolDomains: poolDomains)
        set.environmentKeys = environment
        set.publicWallets = publicWallets
        set.models = models
        set.verdicts = verdicts
        return Output(ruleSet: set, disabled: disabled, diagnostics: diags)
    }

    /// A lower-case domain name, or nil when `text` is not one.
    static func domainName(_ text: String?) -> String? {
        var d = (text ?? "").lowercased()
        if d.hasSuffix(".") { d.removeLast() }
        guard d.contains("."), !d.hasPrefix("."), !d.contains(".."), d.count <= 253,
              d.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "-" || $0 == "_") }) else { return nil }
        return d
    }

    /// A `models:` mapping (rule files and the agent's config): model -> key -> value, each
    /// key checked against `ModelSettings.schema`.
    public static func models(_ v: Node, file: String) -> (ModelSettings, [RuleDiagnostic]) {
        var models = ModelSettings()
        var diags: [RuleDiagnostic] = []
        guard let m = v.mapping else {
            return (models, [RuleDiagnostic(file: file, line: v.mark?.line, ruleId: nil, message: "'models' must be a mapping")])
        }
        for (mk, mv) in m {
            let model = mk.string ?? ""
            guard let keys = ModelSettings.schema[model], let kv = mv.mapping else {
                diags.append(RuleDiagnostic(file: file, line: mk.mark?.line, ruleId: nil, message: "unknown or malformed model '\(model)' (expected \(ModelSettings.schema.keys.sorted().joined(separator: ", ")), each a mapping)"))
                continue
            }
            for (k, val) in kv {
                let key = k.string ?? ""
                guard let kind = keys[key] else {
                    diags.append(RuleDiagnostic(file: file, line: k.mark?.line, ruleId: nil, message: "model '\(model)': unknown key '\(key)' (expected \(keys.keys.sorted().joined(separator: ", ")))"))
                    continue
                }
                switch ModelSettings.parse(val.string ?? "", as: kind) {
                case .success(let x): models.values[model, default: [:]][key] = x
                case .failure(let e): diags.append(RuleDiagnostic(file: file, line: val.mark?.line, ruleId: nil, message: "model '\(model)' key '\(key)': \(e.why)"))
                }
            }
        }
        return (models, diags)
    }

    /// What a rule, correlation or verdict entry is read with: the shared walker, its subject
    /// the entry's id.
    typealias Context = YAMLWalker

    enum Parsed {
        case rule(Rule)
        case disabled(String)
        case invalid
    }

    static let ruleKeys: Set<String> = [
        "id", "title", "description", "family", "category", "severity", "filetypes", "strings",
        "condition", "paths", "names", "wallets", "suppress", "maxsize", "references", "enabled", "check",
        "technique", "runs", "domains",
    ]
    static let idPattern = try? NSRegularExpression(pattern: "^[A-Za-z0-9][A-Za-z0-9_.-]{1,63}$")

    func parseRule(_ node: Node, _ ctx: inout Context) -> Parsed {
        guard let (id, fields) = ctx.entry(node, kind: "rule", allowed: Self.ruleKeys) else { return .invalid }
        let range = NSRange(id.startIndex..., in: id)
        if Self.idPattern?.firstMatch(in: id, range: range) == nil {
            ctx.error("id must be 2-64 letters, digits, '.', '_' or '-'", at: fields["id"])
        }
        if let en = fields["enabled"] {
            if en.bool == false { return .disabled(id) }
            if en.bool == nil { ctx.error("'enabled' must be true or false", at: en) }
        }
        let before = ctx.problems.count
        guard let title = fields["title"]?.string, !title.isEmpty else {
            ctx.error("rule has no 'title'", at: node)
            return .invalid
        }
        guard let category = fields["category"]?.string, !category.isEmpty else {
            ctx.error("rule has no 'category'", at: node)
            return .invalid
        }
        var severity = Severity.medium
        if let s = fields["severity"] {
            if let v = s.string.flatMap(Severity.init(rawValue:)) { severity = v } else {
                ctx.error("severity must be one of info, low, medium, high, critical", at: s)
            }
        } else {
            ctx.error("rule has no 'severity'", at: node)
        }
        var fileTypes = Set<FileType>()
        for n in list(fields["filetypes"], "filetypes", &ctx) {
            if let t = n.string.flatMap(FileType.init(rawValue:)) { fileTypes.insert(t) } else {
                ctx.error("unknown file type '\(n.string ?? "")' (expected \(FileType.allCases.map(\.rawValue).joined(separator: ", ")))", at: n)
            }
        }
        var strings: [RuleString] = []
        if let sn = fields["strings"] {
            if let smap = sn.mapping {
                for (k, v) in smap {
                    guard let sid = k.string else { continue }
                    if strings.contains(where: { $0.id == sid }) { ctx.error("duplicate string '\(sid)'", at: k) }
                    if let s = parseString(id: sid, v, &ctx) { strings.append(s) }
                }
            } else {
                ctx.error("'strings' must be a mapping of name: text", at: sn)
            }
        }
        var condition: Condition?
        let conditionText = fields["condition"]?.string
        if let cn = fields["condition"] {
            if let text = cn.string {
                var p = ConditionParser(stringIDs: strings.map(\.id))
                do {
                    let c = try p.parse(text)
                    if c.matchesEmpty { ctx.error("condition is true when nothing matches", at: cn) }
                    condition = c
                } catch {
                    ctx.error(error.message, at: cn)
                }
            } else {
                ctx.error("'condition' must be a string", at: cn)
            }
        } else if !strings.isEmpty {
            condition = .atLeast(1, Array(strings.indices))
        }
        if Self.multiSignatureCategories.contains(category) {
            // Strings that contain one another always match together: they are one signature.
            for a in strings {
                for b in strings where a.id != b.id && b.bytes.count <= a.bytes.count {
                    let fold = a.nocase || b.nocase
                    let ha = fold ? a.bytes.map { PatternMatcher.lowerTable[Int($0)] } : a.bytes
                    let hb = fold ? b.bytes.map { PatternMatcher.lowerTable[Int($0)] } : b.bytes
                    if (a.bytes.count > b.bytes.count || a.id < b.id) && Self.contains(ha, hb) {
                        ctx.error("string '\(b.id)' is part of string '\(a.id)'; they always match together and are not independent", at: fields["strings"])
                    }
                }
            }
        }
        if let c = condition, category == "miner-algorithm", c.minimumStrings < 2,
           strings.contains(where: { $0.bytes.count < Self.longConstant }) {
            ctx.error("category 'miner-algorithm' needs a condition of two or more constants, or constants of at least \(Self.longConstant) bytes each", at: fields["condition"] ?? node)
        }
        if let c = condition, Self.multiSignatureCategories.contains(category), c.minimumStrings < 2 {
            ctx.error("category '\(category)' needs a condition of two or more strings (e.g. '2 of them'); one string can match by chance", at: fields["condition"] ?? node)
        }
        let paths = list(fields["paths"], "paths", &ctx).compactMap(\.string)
        let names = list(fields["names"], "names", &ctx).compactMap { $0.string?.lowercased() }
        var wallets = Set<String>()
        for n in list(fields["wallets"], "wallets", &ctx) {
            if let w = n.string?.uppercased(), WalletKind.currencies.contains(w) { wallets.insert(w) } else {
                ctx.error("unknown wallet currency '\(n.string ?? "")' (expected \(WalletKind.currencies.sorted().joined(separator: ", ")))", at: n)
            }
        }
        var suppress: Severity?
        if let s = fields["suppress"] {
            if let v = s.string.flatMap(Severity.init(rawValue:)) { suppress = v } else {
                ctx.error("'suppress' must be a severity", at: s)
            }
        }
        var maxSize: Int64?
        if let m = fields["maxsize"] {
            if let v = m.string.flatMap(Self.parseSize) { maxSize = v } else {
                ctx.error("'maxsize' must be a size like 65536, 256KiB, 256Ki or 1MiB", at: m)
            }
        }
        var check: StructuralCheck?
        if let cn = fields["check"] {
            if let c = cn.string.flatMap(StructuralCheck.init(rawValue:)) { check = c } else {
                ctx.error("unknown check '\(cn.string ?? "")' (expected \(StructuralCheck.allCases.map(\.rawValue).joined(separator: ", ")))", at: cn)
            }
            if fields["strings"] != nil || !paths.isEmpty || !names.isEmpty || !wallets.isEmpty || fields["condition"] != nil {
                ctx.error("a 'check' rule takes its evidence from the scanner and cannot have strings, condition, paths, names or wallets", at: cn)
            }
        } else if fields["strings"] == nil && paths.isEmpty && names.isEmpty && wallets.isEmpty && fields["domains"] == nil {
            ctx.error("rule needs 'strings', 'paths', 'names', 'wallets', 'domains' or 'check'", at: node)
        }
        var domains: [String] = []
        for n in list(fields["domains"], "domains", &ctx) {
            if let d = Self.domainName(n.string) { domains.append(d) } else {
                ctx.error("'\(n.string ?? "")' is not a domain name (letters, digits, '-' and '.', with at least one dot)", at: n)
            }
        }
        if !wallets.isEmpty && !strings.isEmpty {
            ctx.error("a wallet rule cannot also have strings", at: fields["wallets"])
        }
        var technique: String?
        if let t = fields["technique"] {
            if let v = t.string, v.hasPrefix("T"), v.dropFirst().allSatisfy({ $0.isNumber || $0 == "." }) { technique = v } else {
                ctx.error("'technique' must be a MITRE ATT&CK id such as T1496.001", at: t)
            }
        }
        var runs: Severity?
        if let r = fields["runs"] {
            if let v = r.string.flatMap(Severity.init(rawValue:)) { runs = v } else { ctx.error("'runs' must be a severity", at: r) }
        }
        if ctx.problems.count > before { return .invalid }
        return .rule(Rule(
            id: id, title: title, description: fields["description"]?.string ?? "",
            family: fields["family"]?.string, category: category, severity: severity,
            fileTypes: fileTypes, strings: strings, condition: condition, conditionText: conditionText,
            paths: paths, names: names, wallets: wallets, suppressTo: suppress, maxSize: maxSize, check: check,
            technique: technique, severityWhenRunning: runs, domains: domains,
            references: list(fields["references"], "references", &ctx).compactMap(\.string),
            source: RuleSource(file: ctx.file, line: ctx.line ?? 0)))
    }

    func list(_ node: Node?, _ name: String, _ ctx: inout Context) -> [Node] {
        guard let node else { return [] }
        if let seq = node.sequence { return Array(seq) }
        if node.scalar != nil { return [node] }
        ctx.error("'\(name)' must be a list", at: node)
        return []
    }

    func parseString(id: String, _ node: Node, _ ctx: inout Context) -> RuleString? {
        var bytes: [UInt8]
        var nocase = false
        var capture: Capture?
        if let text = node.scalar?.string {
            bytes = Array(text.utf8)
        } else if let m = node.mapping {
            var b: [UInt8]?
            var numeric: (key: String, words: [UInt64])?
            var bigEndian = false
            for (k, v) in m {
                switch k.string ?? "" {
                case "text": b = v.string.map { Array($0.utf8) }
                case "hex":
                    guard let h = v.string, let parsed = Self.parseHex(h) else {
                        ctx.error("string '\(id)': 'hex' must be pairs of hex digits", at: v)
                        return nil
                    }
                    b = parsed
                case "u32", "u64", "epi32":
                    guard let words = Self.parseWords(v, key: k.string ?? "") else {
                        ctx.error("string '\(id)': '\(k.string ?? "")' must be a number or a list of numbers (0x... or decimal) that fit \(k.string == "u64" ? 64 : 32) bits", at: v)
                        return nil
                    }
                    numeric = (k.string ?? "", words)
                case "order":
                    guard let o = v.string, o == "le" || o == "be" else {
                        ctx.error("string '\(id)': order must be 'le' or 'be'", at: v)
                        return nil
                    }
                    bigEndian = o == "be"
                case "nocase": nocase = v.bool ?? false
                case "capture":
                    guard let c = v.string.flatMap(Capture.init(rawValue:)) else {
                        ctx.error("string '\(id)': capture must be 'url' or 'value'", at: v)
                        return nil
                    }
                    capture = c
                default: ctx.error("string '\(id)': unknown key '\(k.string ?? "")' (expected text, hex, u32, u64, epi32, order, nocase, capture)", at: k)
                }
            }
            if let numeric {
                if b != nil {
                    ctx.error("string '\(id)' has both '\(numeric.key)' and text or hex", at: node)
                    return nil
                }
                if numeric.key == "epi32" && (numeric.words.count % 4 != 0 || bigEndian) {
                    ctx.error("string '\(id)': 'epi32' takes 128-bit vectors as _mm_set_epi32 does (4 words each, highest lane first), stored little-endian", at: node)
                    return nil
                }
                b = Self.bytes(of: numeric.words, key: numeric.key, bigEndian: bigEndian)
            } else if m.contains(where: { $0.key.string == "order" }) {
                ctx.error("string '\(id)': 'order' only applies to u32 or u64", at: node)
                return nil
            }
            guard let b else {
                ctx.error("string '\(id)' needs 'text', 'hex', 'u32', 'u64' or 'epi32'", at: node)
                return nil
            }
            if m.contains(where: { ["hex", "u32", "u64", "epi32"].contains($0.key.string ?? "") }), let why = CommonConstants.refusal(b) {
                ctx.error("string '\(id)' \(why)", at: node)
                return nil
            }
            bytes = b
        } else {
            ctx.error("string '\(id)' must be text or a mapping", at: node)
            return nil
        }
        if bytes.count < Self.minimumStringLength {
            ctx.error("string '\(id)' is shorter than \(Self.minimumStringLength) bytes", at: node)
            return nil
        }
        if bytes.count > Self.maximumStringLength {
            ctx.error("string '\(id)' is longer than \(Self.maximumStringLength) bytes", at: node)
            return nil
        }
        return RuleString(id: id, bytes: bytes, nocase: nocase, capture: capture)
    }

    /// A top-level section holding one list of strings (`process: {environment: [...]}`,
    /// `wallets: {public: [...]}`): the valid ones, every problem a diagnostic with its line.
    static func stringList(_ v: Node, section: String, key: String, expected: String, file: String, diags: inout [RuleDiagnostic],
                           invalid: String, valid: (String) -> Bool) -> [String] {
        guard let m = v.mapping else {
            diags.append(RuleDiagnostic(file: file, line: v.mark?.line, ruleId: nil, message: "'\(section)' must be a mapping"))
            return []
        }
        var out: [String] = []
        for (k, list) in m {
            guard k.string == key, let seq = list.sequence else {
                diags.append(RuleDiagnostic(file: file, line: k.mark?.line, ruleId: nil,
                                            message: "unknown or malformed key '\(k.string ?? "")' in '\(section)' (expected \(expected))"))
                continue
            }
            for n in seq {
                if let value = n.string, valid(value) { out.append(value) } else {
                    diags.append(RuleDiagnostic(file: file, line: n.mark?.line, ruleId: nil, message: "'\(n.string ?? "")' \(invalid)"))
                }
            }
        }
        return out
    }

    /// Numbers of a `u32`/`u64`/`epi32` string: one scalar or a list, each `0x...` or decimal.
    static func parseWords(_ node: Node, key: String) -> [UInt64]? {
        let items: [Node] = node.sequence.map(Array.init) ?? (node.scalar != nil ? [node] : [])
        guard !items.isEmpty else { return nil }
        let limit: UInt64 = key == "u64" ? .max : UInt64(UInt32.max)
        var out: [UInt64] = []
        for n in items {
            guard let t = n.string?.lowercased().replacingOccurrences(of: "_", with: "") else { return nil }
            let v = t.hasPrefix("0x") ? UInt64(t.dropFirst(2), radix: 16) : UInt64(t)
            guard let v, v <= limit else { return nil }
            out.append(v)
        }
        return out
    }

    /// The bytes in memory: `u32`/`u64` words one after another in the given order; `epi32`
    /// vectors as `_mm_set_epi32(a, b, c, d)` stores them (d first, each word little-endian).
    static func bytes(of words: [UInt64], key: String, bigEndian: Bool) -> [UInt8] {
        let width = key == "u64" ? 8 : 4
        var ordered = words
        if key == "epi32" {
            ordered = stride(from: 0, to: words.count, by: 4).flatMap { words[$0..<($0 + 4)].reversed() }
        }
        var out: [UInt8] = []
        for w in ordered {
            let le = (0..<width).map { UInt8(truncatingIfNeeded: w >> (8 * UInt64($0))) }
            out.append(contentsOf: bigEndian ? le.reversed() : le)
        }
        return out
    }

    static func contains(_ hay: [UInt8], _ needle: [UInt8]) -> Bool {
        guard needle.count <= hay.count else { return false }
        for i in 0...(hay.count - needle.count) where hay[i..<(i + needle.count)].elementsEqual(needle) { return true }
        return false
    }

    /// A size in the one grammar of byte amounts (ByteAmounts: `65536`, `64Ki`, `64KiB`, `1MB`):
    /// a whole number of bytes, at least 1.
    static func parseSize(_ s: String) -> Int64? {
        guard let v = ByteAmounts.parse(s), v >= 1, v < 9e18, v == v.rounded(.down) else { return nil }
        return Int64(v)
    }

    static func parseHex(_ s: String) -> [UInt8]? {
        let digits = s.filter { !$0.isWhitespace }
        guard digits.count % 2 == 0, !digits.isEmpty else { return nil }
        var out: [UInt8] = []
        var it = digits.makeIterator()
        while let a = it.next(), let b = it.next() {
            guard let v = UInt8(String([a, b]), radix: 16) else { return nil }
            out.append(v)
        }
        return out
    }

    static let correlationKeys: Set<String> = ["id", "title", "scope", "raise", "when", "minSeverity", "to"]

    static let verdictKeys: Set<String> = ["id", "category", "title", "severity", "technique", "cases"]
    static let verdictCaseKeys: Set<String> = ["title", "severity", "technique"]

    /// One `verdicts:` entry: an id the code knows, its keys, its cases (each a case the code
    /// chooses between), titles using only the placeholders that verdict fills in.
    func parseVerdict(_ node: Node, _ ctx: inout Context) -> VerdictSpec? {
        guard let (id, f) = ctx.entry(node, kind: "verdict", allowed: Self.verdictKeys, listAllowed: true) else { return nil }
        guard let schema = VerdictSpec.schema[id] else {
            ctx.error("unknown verdict (expected one of \(VerdictSpec.schema.keys.sorted().joined(separator: ", ")))", at: f["id"])
            return nil
        }
        let before = ctx.problems.count
        func title(_ n: Node?) -> String? {
            guard let n else { return nil }
            guard let t = n.string, !t.isEmpty else {
                ctx.error("'title' must be text", at: n)
                return nil
            }
            var rest = Substring(t)
            while let open = rest.firstIndex(of: "{") {
                guard let close = rest[open...].firstIndex(of: "}") else { break }
                let name = String(rest[rest.index(after: open)..<close])
                if !schema.placeholders.contains(name) {
                    ctx.error("title uses '{\(name)}', which this verdict does not fill in"
                              + (schema.placeholders.isEmpty ? "" : " (it fills in \(schema.placeholders.map { "{\($0)}" }.joined(separator: ", ")))"), at: n)
                }
                rest = rest[rest.index(after: close)...]
            }
            return t
        }
        func severity(_ n: Node?) -> Severity? {
            guard let n else { return nil }
            guard let s = n.string.flatMap(Severity.init(rawValue:)) else {
                ctx.error("'severity' must be info, low, medium, high or critical", at: n)
                return nil
            }
            return s
        }
        func technique(_ n: Node?) -> String? {
            guard let n else { return nil }
            guard let v = n.string, v.hasPrefix("T"), v.count > 1, v.dropFirst().allSatisfy({ $0.isNumber || $0 == "." }) else {
                ctx.error("'technique' must be a MITRE ATT&CK id such as T1496.001", at: n)
                return nil
            }
            return v
        }
        var spec = VerdictSpec(id: id, category: f["category"]?.string, title: title(f["title"]), severity: severity(f["severity"]),
                               technique: technique(f["technique"]), source: RuleSource(file: ctx.file, line: ctx.line ?? 0))
        if let cases = f["cases"] {
            guard let m = cases.mapping else {
                ctx.error("'cases' must be a mapping of case names", at: cases)
                return nil
            }
            for (ck, cv) in m {
                let name = ck.string ?? ""
                guard schema.cases.contains(name) else {
                    ctx.error("unknown case '\(name)' (expected \(schema.cases.joined(separator: ", ")))", at: ck)
                    continue
                }
                guard let cm = cv.mapping else {
                    ctx.error("case '\(name)' must be a mapping", at: cv)
                    continue
                }
                var cf: [String: Node] = [:]
                for (k, v) in cm {
                    guard let key = k.string else { continue }
                    if !Self.verdictCaseKeys.contains(key) { ctx.error("case '\(name)': unknown key '\(key)' (expected title, severity, technique)", at: k) }
                    cf[key] = v
                }
                spec.cases[name] = VerdictSpec.Case(title: title(cf["title"]), severity: severity(cf["severity"]), technique: technique(cf["technique"]))
            }
        }
        return ctx.problems.count == before ? spec : nil
    }

    func parseCorrelation(_ node: Node, _ ctx: inout Context) -> Correlation? {
        guard let (id, f) = ctx.entry(node, kind: "correlation", allowed: Self.correlationKeys) else { return nil }
        let before = ctx.problems.count
        let title = f["title"]?.string ?? id
        let scope = f["scope"]?.string.flatMap(Correlation.Scope.init(rawValue:))
        if scope == nil { ctx.error("'scope' must be 'file' or 'image'", at: f["scope"] ?? node) }
        let raise = Set(list(f["raise"], "raise", &ctx).compactMap(\.string))
        let when = Set(list(f["when"], "when", &ctx).compactMap(\.string))
        if raise.isEmpty { ctx.error("'raise' must list categories", at: f["raise"] ?? node) }
        if when.isEmpty { ctx.error("'when' must list categories", at: f["when"] ?? node) }
        let minSev = f["minSeverity"].map { $0.string.flatMap(Severity.init(rawValue:)) } ?? .some(.low)
        if minSev == nil { ctx.error("'minSeverity' must be a severity", at: f["minSeverity"]) }
        let to = f["to"]?.string.flatMap(Severity.init(rawValue:))
        if to == nil { ctx.error("'to' must be a severity", at: f["to"] ?? node) }
        guard ctx.problems.count == before, let scope, let minSev, let to else { return nil }
        return Correlation(id: id, title: title, scope: scope, targetCategories: raise, withCategories: when,
                           withMinSeverity: minSev, raiseTo: to, source: RuleSource(file: ctx.file, line: ctx.line ?? 0))
    }
}

extension YAMLWalker {
    /// The problems as rule diagnostics (`file:line: rule ID: message`).
    var ruleDiagnostics: [RuleDiagnostic] { problems.map { RuleDiagnostic(file: file, line: $0.line, ruleId: $0.subject, message: $0.message) } }
}
