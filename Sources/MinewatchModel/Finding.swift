import Foundation
import MinewatchCore
/// One piece of evidence behind a finding: a matched signature with its offset,
/// an extracted wallet, a pool URL or an attribute of the file.
public struct Evidence: Sendable, Codable, Hashable {
    public enum Kind: String, Sendable, Codable, Hashable {
        /// A rule string matched; `name` is the string id, `offset` where it matched.
        case signature
        /// A checksum-validated wallet address; `name` is the currency (XMR, PKT, BTC).
        case wallet
        /// A mining pool URL or host.
        case pool
        /// Anything else worth showing (packer section, file type, suppression reason).
        case attribute
    }

    public var kind: Kind
    public var name: String
    public var value: String
    public var offset: Int64?
    /// 1-based line of `offset`, for text files.
    public var line: Int?

    public init(kind: Kind, name: String, value: String, offset: Int64? = nil, line: Int? = nil) {
        self.kind = kind
        self.name = name
        self.value = value
        self.offset = offset
        self.line = line
    }
}

/// A finding: a rule that matched a file (or image metadata) in a target.
public struct Finding: Sendable, Codable, Hashable {
    public var ruleId: String
    public var severity: Severity
    public var family: String?
    public var category: String
    public var title: String
    /// Absolute path inside the image or rootfs, or `config:<field>` / `history[n]` for image metadata.
    public var path: String
    /// Layer digest (`sha256:...`) or nil for rootfs folders, single files and image metadata.
    public var layer: String?
    /// True when the file is not in the final filesystem (deleted or replaced by a later layer)
    /// but still shipped in the image.
    public var hidden: Bool
    public var evidence: [Evidence]
    /// Why the severity differs from the rule's (escalation, suppression), if it does.
    public var note: String?
    /// MITRE ATT&CK technique: T1496.001 (compute hijacking: CPU miners) or T1496.002
    /// (bandwidth hijacking: PacketCrypt, proxyware, DePIN farming).
    public var technique: String?
    /// 1-based line of the first evidence, for text files (manifests, scripts).
    public var line: Int?
    /// Set when benign context (documentation, a rule file) capped the finding: the severity the
    /// rule gave before it was capped. Capped findings take no part in correlations.
    public var cappedFrom: Severity?

    public init(
        ruleId: String, severity: Severity, family: String?, category: String, title: String,
        path: String, layer: String? = nil, hidden: Bool = false, evidence: [Evidence], note: String? = nil,
        technique: String? = nil, line: Int? = nil
    ) {
        self.ruleId = ruleId
        self.severity = severity
        self.family = family
        self.category = category
        self.title = title
        self.path = path
        self.layer = layer
        self.hidden = hidden
        self.evidence = evidence
        self.note = note
        self.technique = technique
        self.line = line
    }

    enum CodingKeys: String, CodingKey {
        case ruleId, severity, family, category, title, path, layer, hidden, evidence, note, technique, line, cappedFrom
    }

    /// Set in an encoder's `userInfo` (to true) to keep what only minewatch itself reads back (the
    /// persistent layer cache): `cappedFrom`. Reports leave it out; the note says it in words.
    public static let internalFieldsKey = CodingUserInfoKey(rawValue: "minewatch.internalFields")!

    // Encode nil family/layer as JSON null (the schema promises the keys are present).
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(ruleId, forKey: .ruleId)
        try c.encode(severity, forKey: .severity)
        try c.encode(family, forKey: .family)
        try c.encode(category, forKey: .category)
        try c.encode(title, forKey: .title)
        try c.encode(path, forKey: .path)
        try c.encode(layer, forKey: .layer)
        try c.encode(hidden, forKey: .hidden)
        try c.encode(evidence, forKey: .evidence)
        try c.encodeIfPresent(note, forKey: .note)
        try c.encodeIfPresent(technique, forKey: .technique)
        try c.encodeIfPresent(line, forKey: .line)
        if encoder.userInfo[Self.internalFieldsKey] as? Bool == true { try c.encodeIfPresent(cappedFrom, forKey: .cappedFrom) }
    }
}

/// Something that could not be read: a layer, an entry, a whole target.
public struct ScanIssue: Sendable, Codable, Hashable {
    public var layer: String?
    public var path: String?
    public var message: String

    public init(layer: String? = nil, path: String? = nil, message: String) {
        self.layer = layer
        self.path = path
        self.message = message
    }
}

/// What minewatch learned about one target (an image, archive, folder or file).
public struct TargetReport: Sendable, Codable {
    public var target: String
    /// docker-archive, oci-archive, oci-layout, rootfs, file, engine-image, registry-image
    public var kind: String
    public var image: ImageInfo?
    public var findings: [Finding]
    public var errors: [ScanIssue]
    public var stats: ScanStats

    public init(target: String, kind: String, image: ImageInfo? = nil, findings: [Finding] = [],
                errors: [ScanIssue] = [], stats: ScanStats = ScanStats()) {
        self.target = target
        self.kind = kind
        self.image = image
        self.findings = findings
        self.errors = errors
        self.stats = stats
    }

    public var highestSeverity: Severity? { findings.map(\.severity).max() }
}

public struct ImageInfo: Sendable, Codable, Hashable {
    public var references: [String]
    public var configDigest: String?
    public var layers: [String]
    /// The digest of the manifest (or index) the reference named, computed from the bytes read
    /// (never taken from the registry's word); what an attestation's subject names.
    public var manifestDigest: String?
    public init(references: [String] = [], configDigest: String? = nil, layers: [String] = [], manifestDigest: String? = nil) {
        self.references = references
        self.configDigest = configDigest
        self.layers = layers
        self.manifestDigest = manifestDigest
    }
}

public struct ScanStats: Sendable, Codable, Hashable {
    public var files: Int = 0
    public var bytes: Int64 = 0
    public var layersScanned: Int = 0
    public var layersFromCache: Int = 0
    public init() {}
}

/// The whole report of one `minewatch scan` run.
public struct ScanReport: Sendable, Codable {
    public static let currentSchemaVersion = 1
    public var schemaVersion: Int
    public var tool: String
    public var version: String
    /// The digest of the rule set the scan ran with (`minewatch rules --digest`).
    public var rulesDigest: String?
    /// When the scan ended.
    public var scannedAt: Date?
    public var targets: [TargetReport]

    public init(targets: [TargetReport], version: String = MinewatchVersion.current, rulesDigest: String? = nil, scannedAt: Date? = nil) {
        self.schemaVersion = ScanReport.currentSchemaVersion
        self.tool = "minewatch"
        self.version = version
        self.rulesDigest = rulesDigest
        self.scannedAt = scannedAt
        self.targets = targets
    }
}
