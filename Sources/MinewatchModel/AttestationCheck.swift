import Foundation

/// What checking an image's attestation found (`minewatch verify`, and each image `admit` judges).
public struct AttestationCheck: Sendable, Codable, Hashable {
    public var image: String
    public var digest: String
    public var valid: Bool
    /// Why none was accepted (`no-attestation`, `untrusted-signature`, `subject-mismatch`,
    /// `expired-attestation`, `failing-verdict`, ...); nil when valid.
    public var reason: String?
    /// One line for a person.
    public var detail: String
    public var verdict: String?
    public var scannedAt: String?
    /// The trusted key that signed it.
    public var key: String?
    public var scannerVersion: String?

    public init(image: String, digest: String, valid: Bool, reason: String? = nil, detail: String, verdict: String? = nil,
                scannedAt: String? = nil, key: String? = nil, scannerVersion: String? = nil) {
        self.image = image
        self.digest = digest
        self.valid = valid
        self.reason = reason
        self.detail = detail
        self.verdict = verdict
        self.scannedAt = scannedAt
        self.key = key
        self.scannerVersion = scannerVersion
    }
}
