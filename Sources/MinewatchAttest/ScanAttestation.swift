import Foundation
import MinewatchCore
import MinewatchModel

/// What a minewatch scan attests about one image: the verdict at the gate's threshold, the
/// counts behind it, and which scanner and rules said so, when. The predicate of an in-toto
/// Statement; Kyverno conditions read its fields (`{{ verdict }}`).
public struct ScanPredicate: Codable, Sendable, Equatable {
    public static let type = "https://minewatch.dev/attestation/scan/v1"

    public enum Verdict: String, Codable, Sendable {
        /// No finding at or above the threshold, and every layer was read.
        case pass
        /// A finding at or above the threshold.
        case fail
        /// Nothing reached the threshold, but some of the image could not be read.
        case incomplete
    }

    public struct Scanner: Codable, Sendable, Equatable {
        public var name: String
        public var version: String
        public var rulesDigest: String?
    }

    public struct Counts: Codable, Sendable, Equatable {
        public var total: Int
        public var bySeverity: [String: Int]
        public var byCategory: [String: Int]
    }

    public var verdict: Verdict
    public var threshold: String
    public var image: String
    public var scanner: Scanner
    public var scannedAt: String
    public var findings: Counts
    /// Families of the findings at or above the threshold (`xmrig`, `honeygain`).
    public var families: [String]
    /// Targets or layers that could not be read.
    public var errors: Int

    public var scannedDate: Date? { ISO8601DateFormatter().date(from: scannedAt) }

    /// The predicate for one image's report at `threshold`.
    public init(report: TargetReport, image: String, threshold: Severity, version: String, rulesDigest: String?, scannedAt: Date) {
        let failing = report.findings.filter { $0.severity >= threshold }
        verdict = !failing.isEmpty ? .fail : (report.errors.isEmpty ? .pass : .incomplete)
        self.threshold = threshold.rawValue
        self.image = image
        scanner = Scanner(name: "minewatch", version: version, rulesDigest: rulesDigest)
        self.scannedAt = ISO8601DateFormatter().string(from: scannedAt)
        var bySeverity: [String: Int] = [:]
        var byCategory: [String: Int] = [:]
        for f in report.findings {
            bySeverity[f.severity.rawValue, default: 0] += 1
            byCategory[f.category, default: 0] += 1
        }
        findings = Counts(total: report.findings.count, bySeverity: bySeverity, byCategory: byCategory)
        families = Array(Set(failing.compactMap(\.family))).sorted()
        errors = report.errors.count
    }
}

/// An in-toto Statement (v1; v0.1, which cosign writes, is read too) about one image digest.
public struct ScanStatement: Sendable, Equatable {
    public static let payloadType = "application/vnd.in-toto+json"
    public static let typeV1 = "https://in-toto.io/Statement/v1"
    static let typeV01 = "https://in-toto.io/Statement/v0.1"

    /// Repository name (as cosign writes it) and the manifest digest, `sha256:<hex>`.
    public var subjectName: String
    public var subjectDigest: String
    public var predicate: ScanPredicate

    public init(subjectName: String, subjectDigest: String, predicate: ScanPredicate) {
        self.subjectName = subjectName
        self.subjectDigest = subjectDigest
        self.predicate = predicate
    }

    /// The Statement's JSON: only `_type`, `subject`, `predicateType` and `predicate` at the top
    /// (cosign's parser rejects anything else).
    public func encoded() throws(MinewatchError) -> [UInt8] {
        let hex = subjectDigest.hasPrefix("sha256:") ? String(subjectDigest.dropFirst(7)) : subjectDigest
        let predicateJSON: Data
        do { predicateJSON = try ReportJSON.encoder().encode(predicate) } catch {
            throw MinewatchError(.format, operation: "encode predicate", message: "\(error)")
        }
        guard let predicateObject = try? JSONSerialization.jsonObject(with: predicateJSON) else {
            throw MinewatchError(.format, operation: "encode predicate", message: "not JSON")
        }
        let statement: [String: Any] = [
            "_type": Self.typeV1,
            "subject": [["name": subjectName, "digest": ["sha256": hex]]],
            "predicateType": ScanPredicate.type,
            "predicate": predicateObject,
        ]
        guard let data = try? JSONSerialization.data(withJSONObject: statement, options: [.sortedKeys, .withoutEscapingSlashes]) else {
            throw MinewatchError(.format, operation: "encode statement", message: "not JSON")
        }
        return Array(data)
    }

    /// What a verified payload says: its subjects' SHA-256 digests, its predicate type and, for
    /// minewatch's type, the predicate. Errors name the field.
    public struct Parsed: Sendable {
        public var subjectDigests: [String]
        public var predicateType: String
        public var predicate: ScanPredicate?
    }

    public static func parse(_ payload: [UInt8], name: String) throws(MinewatchError) -> Parsed {
        func bad(_ field: String, _ why: String) -> MinewatchError {
            MinewatchError(.format, operation: "read in-toto statement", subject: name, message: "\(field): \(why)")
        }
        guard let obj = try? JSONSerialization.jsonObject(with: Data(payload)) as? [String: Any] else { throw bad("statement", "not a JSON object") }
        guard let type = obj["_type"] as? String else { throw bad("_type", "missing") }
        guard type == typeV1 || type == typeV01 else { throw bad("_type", "'\(type.prefix(80))' is not an in-toto Statement") }
        guard let subjects = obj["subject"] as? [[String: Any]], !subjects.isEmpty else { throw bad("subject", "missing or empty") }
        let digests = subjects.compactMap { ($0["digest"] as? [String: Any])?["sha256"] as? String }.map { "sha256:" + $0.lowercased() }
        guard let pt = obj["predicateType"] as? String else { throw bad("predicateType", "missing") }
        var predicate: ScanPredicate?
        if pt == ScanPredicate.type {
            // An object, checked before serialising it again (JSONSerialization traps on anything else).
            guard let p = obj["predicate"] as? [String: Any], JSONSerialization.isValidJSONObject(p),
                  let data = try? JSONSerialization.data(withJSONObject: p) else { throw bad("predicate", "missing or not an object") }
            do { predicate = try JSONDecoder().decode(ScanPredicate.self, from: data) } catch {
                throw bad("predicate", "not a minewatch scan result (\(error))")
            }
        }
        return Parsed(subjectDigests: digests, predicateType: pt, predicate: predicate)
    }
}

/// Signs a Statement into a DSSE envelope.
public enum Attestations {
    public static func envelope(_ statement: ScanStatement, signer: AttestationSigner) throws(MinewatchError) -> DSSEEnvelope {
        var env = DSSEEnvelope(payload: try statement.encoded(), payloadType: ScanStatement.payloadType)
        try signer.sign(&env)
        return env
    }
}
