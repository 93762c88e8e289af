import Foundation

/// One decision of the admission webhook (`minewatch admit`): what was asked, what was decided
/// and why, image by image. Every decision is one, allowed ones too.
public struct AdmissionEvent: Sendable, Codable, Hashable {
    public enum Decision: String, Sendable, Codable, Hashable {
        /// Admitted without remarks.
        case allowed
        /// Admitted with AdmissionReview warnings (policy `warn`, or findings below the threshold).
        case warned
        /// Refused.
        case denied
    }

    /// How an image's verdict was reached.
    public enum Source: String, Sendable, Codable, Hashable {
        case attestation, cache, scan, exception, unattested, error
    }

    public struct Image: Sendable, Codable, Hashable {
        public var image: String
        /// The manifest digest the tag resolved to (computed from the registry's bytes).
        public var digest: String?
        public var source: Source
        /// pass, fail, incomplete, or unknown (no verdict: unattested, error, scan still running).
        public var verdict: String
        public var detail: String
        public init(image: String, digest: String?, source: Source, verdict: String, detail: String) {
            self.image = image
            self.digest = digest
            self.source = source
            self.verdict = verdict
            self.detail = detail
        }
    }

    public var time: Date
    /// The AdmissionReview's uid.
    public var uid: String
    public var kind: String
    public var namespace: String?
    public var name: String?
    public var operation: String
    public var user: String?
    public var decision: Decision
    /// Audit mode: admitted whatever was decided; `decision` is what enforcing would have done.
    public var audit: Bool
    /// One line per reason (a finding in the spec, an image's refusal).
    public var reasons: [String]
    public var images: [Image]
    /// Findings in the pod spec (command lines, env, image names).
    public var findings: [Finding]
    /// The exception that admitted it.
    public var exception: String?
    public var durationMs: Double

    public init(time: Date, uid: String, kind: String, namespace: String?, name: String?, operation: String, user: String?,
                decision: Decision, audit: Bool, reasons: [String], images: [Image], findings: [Finding], exception: String?, durationMs: Double) {
        self.time = time
        self.uid = uid
        self.kind = kind
        self.namespace = namespace
        self.name = name
        self.operation = operation
        self.user = user
        self.decision = decision
        self.audit = audit
        self.reasons = reasons
        self.images = images
        self.findings = findings
        self.exception = exception
        self.durationMs = durationMs
    }

    /// What the API server is told: admitted unless denied and enforcing.
    public var admitted: Bool { decision != .denied || audit }

    /// "Deployment default/web".
    public var object: String { "\(kind) \(namespace.map { "\($0)/" } ?? "")\(name ?? "(generated)")" }
}
