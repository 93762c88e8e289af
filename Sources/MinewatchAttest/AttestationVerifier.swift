import Foundation
import MinewatchCore
import MinewatchModel

/// Checks attestations for one image digest, in the order a responder would: a signature by a
/// trusted key over the exact bytes, a Statement about this digest, minewatch's predicate type,
/// an age within `maxAge`, and a passing verdict. The first envelope that passes every check
/// wins; otherwise the reason the closest one failed is given.
public struct AttestationVerifier: Sendable {
    public var keys: [TrustedKey]
    /// Oldest scan accepted; nil accepts any age.
    public var maxAge: TimeInterval?

    public init(keys: [TrustedKey], maxAge: TimeInterval? = nil) {
        self.keys = keys
        self.maxAge = maxAge
    }

    public enum Outcome: Sendable {
        /// A valid attestation: its predicate, the key that signed it and the scan's age.
        case valid(ScanPredicate, key: TrustedKey, age: TimeInterval)
        case invalid(Failure)
    }

    /// Why no attestation was accepted, ordered from "nothing there" to "checked and refused".
    public enum Failure: Sendable, Equatable, CustomStringConvertible {
        case none
        case malformed(String)
        case untrusted
        case subjectMismatch(found: [String])
        case otherPredicate(String)
        case expired(age: TimeInterval, maxAge: TimeInterval)
        case verdict(ScanPredicate.Verdict, families: [String])

        var rank: Int {
            switch self {
            case .none: 0
            case .malformed: 1
            case .untrusted: 2
            case .otherPredicate: 3
            case .subjectMismatch: 4
            case .expired: 5
            case .verdict: 6
            }
        }

        /// A short machine-readable reason (metrics labels, events).
        public var reason: String {
            switch self {
            case .none: "no-attestation"
            case .malformed: "malformed-attestation"
            case .untrusted: "untrusted-signature"
            case .subjectMismatch: "subject-mismatch"
            case .otherPredicate: "other-predicate"
            case .expired: "expired-attestation"
            case .verdict: "failing-verdict"
            }
        }

        public var description: String {
            switch self {
            case .none: "no attestation"
            case .malformed(let m): "malformed attestation: \(m)"
            case .untrusted: "no signature by a trusted key (tampered, or signed by another key)"
            case .subjectMismatch(let found): "the attestation is about \(found.first ?? "another image"), not this digest"
            case .otherPredicate(let t): "attestation of another kind (\(t))"
            case .expired(let age, let max): "the scan is \(Durations.format(age.rounded())) old, more than \(Durations.format(max.rounded()))"
            case .verdict(let v, let fam): "the scan's verdict is \(v.rawValue)" + (fam.isEmpty ? "" : " (\(fam.joined(separator: ", ")))")
            }
        }
    }

    public func verify(_ envelopes: [(bytes: [UInt8], name: String)], digest: String, now: Date = Date()) -> Outcome {
        var worst = Failure.none
        func note(_ f: Failure) { if f.rank >= worst.rank { worst = f } }
        for (bytes, name) in envelopes {
            let env: DSSEEnvelope
            do { env = try DSSEEnvelope.decode(bytes, name: name) } catch {
                note(.malformed(error.description))
                continue
            }
            guard env.payloadType == ScanStatement.payloadType else {
                note(.malformed("\(name): payloadType \(env.payloadType.prefix(80)) is not in-toto's"))
                continue
            }
            let pae = env.pae
            guard let key = keys.first(where: { k in env.signatures.contains { k.verifies($0.sig, of: pae) } }) else {
                note(.untrusted)
                continue
            }
            // Only the verified bytes are read from here on.
            let parsed: ScanStatement.Parsed
            do { parsed = try ScanStatement.parse(env.payload, name: name) } catch {
                note(.malformed(error.description))
                continue
            }
            guard let predicate = parsed.predicate else {
                note(.otherPredicate(parsed.predicateType))
                continue
            }
            guard parsed.subjectDigests.contains(digest) else {
                note(.subjectMismatch(found: parsed.subjectDigests))
                continue
            }
            guard let at = predicate.scannedDate else {
                note(.malformed("\(name): predicate.scannedAt is not an ISO 8601 time"))
                continue
            }
            let age = now.timeIntervalSince(at)
            if let maxAge, age > maxAge {
                note(.expired(age: age, maxAge: maxAge))
                continue
            }
            guard predicate.verdict == .pass else {
                note(.verdict(predicate.verdict, families: predicate.families))
                continue
            }
            return .valid(predicate, key: key, age: max(0, age))
        }
        return .invalid(worst)
    }
}

extension AttestationVerifier.Outcome {
    /// The outcome as reports carry it.
    public func check(image: String, digest: String) -> AttestationCheck {
        switch self {
        case .valid(let p, let key, let age):
            return AttestationCheck(image: image, digest: digest, valid: true,
                                    detail: "verdict \(p.verdict.rawValue) at \(p.threshold), scanned \(Durations.format(age.rounded())) ago by minewatch \(p.scanner.version)",
                                    verdict: p.verdict.rawValue, scannedAt: p.scannedAt, key: key.name, scannerVersion: p.scanner.version)
        case .invalid(let f):
            return AttestationCheck(image: image, digest: digest, valid: false, reason: f.reason, detail: f.description)
        }
    }
}
