import MinewatchCore
import MinewatchModel

/// Where a rule came from, for error messages and `rules list`.
public struct RuleSource: Sendable, Hashable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public init(file: String, line: Int) {
        self.file = file
        self.line = line
    }
    public var description: String { "\(file):\(line)" }
}

/// File types a rule can be restricted to. Decided from content, never from the name.
public enum FileType: String, Sendable, Hashable, CaseIterable {
    /// An ELF executable or shared object (`\x7fELF`).
    case elf
    /// A text file starting with `#!`.
    case script
    /// Text: no NUL byte and mostly printable in the first block.
    case text
    /// Image metadata (Entrypoint, Cmd, Env, Labels, history): text, scanned as command lines.
    case metadata
    /// A Dockerfile, compose file or Kubernetes manifest: what will run.
    case manifest
    /// Anything that is none of the above.
    case binary
}

/// Evidence that comes from a structural check of the scanner rather than from strings; the
/// rule gives that evidence its id, title, category and severity (and can be overridden or
/// disabled like any rule).
public enum StructuralCheck: String, Sendable, Hashable, CaseIterable {
    /// An image's manifest, config or layer does not hash to the digest the image claims.
    case digestMismatch = "digest-mismatch"
    /// A packed executable whose packer headers were wiped so that the packer's own tool refuses it.
    case packedTampered = "packed-tampered"
    /// A packed executable that could not be unpacked (the reason is in the evidence).
    case packedUnreadable = "packed-unreadable"
    /// An ELF file carrying a large encrypted or compressed overlay past its last segment: what a
    /// packer other than UPX leaves (a loader with its payload appended).
    case packedOverlay = "packed-overlay"
}

/// What to capture after a match, so the finding can show the full pool URL or host.
public enum Capture: String, Sendable, Hashable {
    /// Characters allowed in a URL or host:port; shown as a pool.
    case url
    /// A value up to the next space, quote or separator (a token, an e-mail, a device id);
    /// shown as an attribute.
    case value
}

/// One literal string of a rule: bytes to find, compiled into the shared matcher.
public struct RuleString: Sendable, Hashable {
    public var id: String
    public var bytes: [UInt8]
    public var nocase: Bool
    public var capture: Capture?
    public init(id: String, bytes: [UInt8], nocase: Bool = false, capture: Capture? = nil) {
        self.id = id
        self.bytes = bytes
        self.nocase = nocase
        self.capture = capture
    }
}

/// A detection rule. Rules are data: loaded from YAML (bundled and user files) and validated.
public struct Rule: Sendable, Hashable {
    public var id: String
    public var title: String
    public var description: String
    public var family: String?
    public var category: String
    public var severity: Severity
    /// Empty means every type.
    public var fileTypes: Set<FileType>
    public var strings: [RuleString]
    /// The condition over `strings`; nil for rules that match on paths or wallets only.
    public var condition: Condition?
    public var conditionText: String?
    /// Shell-style globs (`fnmatch`, `*` crosses `/`) the path must match (any of them).
    public var paths: [String]
    /// Base names (exact, case-insensitive) that match this rule.
    public var names: [String]
    /// Wallet currencies this rule reports (XMR, PKT, BTC); the rule matches when one is found.
    public var wallets: Set<String>
    /// When set, a match marks the file as benign context (a rule file, documentation) and caps
    /// every other finding in the file at this severity.
    public var suppressTo: Severity?
    /// The rule only applies to files of at most this many bytes (droppers are small scripts).
    public var maxSize: Int64?
    /// Set for rules that name a structural check's evidence; such a rule has no strings.
    public var check: StructuralCheck?
    /// MITRE ATT&CK technique (`technique:`; by default T1496.002 for bandwidth hijacking,
    /// T1496.001 for the compute-miner categories, none for the rest).
    public var technique: String?
    /// The severity when the match is what runs: an image's Entrypoint/Cmd, a running process's
    /// command line or environment, a manifest (`runs:`). nil: the rule's severity everywhere.
    public var severityWhenRunning: Severity?
    /// Whether the rule only names network domains (it never matches file content).
    public var domainsOnly: Bool { !domains.isEmpty && strings.isEmpty && names.isEmpty && wallets.isEmpty && paths.isEmpty && check == nil }
    /// Domains the rule's service uses (`domains:`, lower case): a name a container looks up or
    /// sends (DNS question, TLS SNI, HTTP Host) that is one of them or below one matches.
    public var domains: [String]
    public var references: [String]
    public var source: RuleSource

    public init(
        id: String, title: String, description: String = "", family: String? = nil, category: String,
        severity: Severity, fileTypes: Set<FileType> = [], strings: [RuleString] = [],
        condition: Condition? = nil, conditionText: String? = nil, paths: [String] = [],
        names: [String] = [], wallets: Set<String> = [], suppressTo: Severity? = nil, maxSize: Int64? = nil,
        check: StructuralCheck? = nil, technique: String? = nil, severityWhenRunning: Severity? = nil,
        domains: [String] = [], references: [String] = [], source: RuleSource
    ) {
        self.id = id
        self.title = title
        self.description = description
        self.family = family
        self.category = category
        self.severity = severity
        self.fileTypes = fileTypes
        self.strings = strings
        self.condition = condition
        self.conditionText = conditionText
        self.paths = paths
        self.names = names
        self.wallets = wallets
        self.suppressTo = suppressTo
        self.maxSize = maxSize
        self.check = check
        self.technique = technique ?? Rule.defaultTechnique(category: category, family: family)
        self.severityWhenRunning = severityWhenRunning
        self.domains = domains
        self.references = references
        self.source = source
    }
}

extension Rule {
    /// Categories of compute hijacking (CPU miners and what reveals them).
    public static let computeCategories: Set<String> = [
        "miner-binary", "miner-script", "miner-algorithm", "miner-config", "miner-cmdline", "miner-env", "miner-name", "miner-image",
        "pool-url", "wallet", "dropper",
    ]
    /// Bandwidth hijacking (T1496.002) for the bandwidth category and the PacketCrypt family (it
    /// mines with upload bandwidth), compute hijacking (T1496.001) for the miner categories.
    public static func defaultTechnique(category: String, family: String?) -> String? {
        if category == "bandwidth-hijacking" || family == "packetcrypt" { return "T1496.002" }
        return computeCategories.contains(category) ? "T1496.001" : nil
    }
}

/// Raises the severity of findings of one kind when other evidence is present in the same
/// file or image ("a packed executable in an image that also carries a pool URL").
public struct Correlation: Sendable, Hashable {
    public enum Scope: String, Sendable, Hashable { case file, image }
    public var id: String
    public var title: String
    public var scope: Scope
    /// Categories of the findings whose severity is raised.
    public var targetCategories: Set<String>
    /// Categories, at least one of which must be present elsewhere in the scope.
    public var withCategories: Set<String>
    public var withMinSeverity: Severity
    public var raiseTo: Severity
    public var source: RuleSource

    public init(id: String, title: String, scope: Scope, targetCategories: Set<String>,
                withCategories: Set<String>, withMinSeverity: Severity, raiseTo: Severity, source: RuleSource) {
        self.id = id
        self.title = title
        self.scope = scope
        self.targetCategories = targetCategories
        self.withCategories = withCategories
        self.withMinSeverity = withMinSeverity
        self.raiseTo = raiseTo
        self.source = source
    }
}
