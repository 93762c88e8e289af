import Foundation
import MinewatchAnalysis
import MinewatchAttest
import MinewatchConfig
import MinewatchCore
import MinewatchImage
import MinewatchModel
import MinewatchSignatures

/// What the webhook does with an image nobody attested, what it does when a registry cannot be
/// read, and the rest of its policy.
public struct AdmissionPolicy: Sendable {
    public enum Unattested: String, Sendable, CaseIterable {
        /// Refuse it.
        case deny
        /// Admit it with a warning.
        case warn
        /// Scan it, within the deadline; refuse while the scan runs (the controller retries).
        case scan
    }

    public enum OnError: String, Sendable, CaseIterable {
        /// Refuse what could not be checked (fail closed).
        case deny
        /// Admit it with a warning (fail open).
        case allow
    }

    public var unattested: Unattested = .deny
    public var onError: OnError = .deny
    /// Spec findings at or above it deny, and a scan's verdict is made at it.
    public var threshold: Severity = .high
    /// How long a request may wait for a scan; keep it under the webhook's timeoutSeconds.
    public var scanDeadline: TimeInterval = 7
    /// Oldest attested scan accepted; nil: any.
    public var maxAge: TimeInterval?
    /// Admit everything; report what would have been denied.
    public var audit = false
    /// How long a verdict stays cached.
    public var cacheTTL: TimeInterval = 3600
    public var tagTTL: TimeInterval = 30
    public var cacheSize = 10_000
    public var concurrentScans = 2

    public init() {}
}

/// Judges AdmissionReviews: the pod spec with the rules `scan` judges manifests with, then every
/// image by digest: a cached verdict, else a valid attestation from a trusted key, else the
/// policy for unattested images. Pure decision logic over an `ImageAuthority`; safe to call
/// from many threads.
public final class AdmissionController: Sendable {
    public let policy: AdmissionPolicy
    let analyzer: FileAnalyzer
    let verifier: AttestationVerifier
    let authority: any ImageAuthority
    let exceptions: [ExceptionRule]
    let signer: AttestationSigner?
    let rulesDigest: String
    public let cache: VerdictCache
    let tags: TagCache
    let scans: ScanPool

    public init(policy: AdmissionPolicy, rules: CompiledRules, keys: [TrustedKey], authority: any ImageAuthority,
                exceptions: [ExceptionRule] = [], signer: AttestationSigner? = nil) {
        self.policy = policy
        analyzer = FileAnalyzer(rules: rules)
        verifier = AttestationVerifier(keys: keys, maxAge: policy.maxAge)
        self.authority = authority
        self.exceptions = exceptions
        self.signer = signer
        rulesDigest = "sha256:" + rules.ruleSet.digest
        cache = VerdictCache(capacity: policy.cacheSize)
        tags = TagCache(ttl: policy.tagTTL, capacity: policy.cacheSize)
        scans = ScanPool(limit: policy.concurrentScans)
    }

    /// Scans still running (for metrics).
    public var scansRunning: Int { scans.active }

    /// The answer for a review's body, and the event describing the decision (nil for a body that
    /// is no AdmissionReview: the answer is then an HTTP 400 text).
    public func review(_ body: [UInt8], now: @Sendable () -> Date = Date.init) -> (status: Int, body: [UInt8], event: AdmissionEvent?) {
        let started = now()
        let request: AdmissionRequest
        do { request = try AdmissionRequest.parse(body) } catch {
            return (400, Array("\(error.description)\n".utf8), nil)
        }
        let (response, event) = decide(request, started: started, now: now)
        return (200, response.encoded(), event)
    }

    public func decide(_ r: AdmissionRequest, started: Date, now: @Sendable () -> Date = Date.init) -> (AdmissionResponse, AdmissionEvent) {
        var denies: [String] = []
        var warnings: [String] = []
        var images: [AdmissionEvent.Image] = []
        var findings: [Finding] = []
        var excepted: [String] = []
        let judged = (r.operation == "CREATE" || r.operation == "UPDATE") && !r.containers.isEmpty

        if judged {
            var seenImages = Set<String>()
            for c in r.containers {
                let path = "\(r.kind) \(r.namespace.map { "\($0)/" } ?? "")\(r.name ?? ""): \(c.list)/\(c.name)"
                let found = analyzer.analyze(text: c.manifestText, path: path, fileType: .manifest)
                let families = Set(found.compactMap(\.family))
                if let ex = exceptions.first(where: { $0.admits(namespace: r.namespace, labels: r.labels, image: c.image, container: c.name, families: families) }) {
                    excepted.append(ex.name)
                    images.append(.init(image: c.image, digest: nil, source: .exception, verdict: "unknown", detail: "exception \(ex.name): \(ex.reason)"))
                    seenImages.insert(c.image)
                    continue
                }
                findings += found
                let refused = found.filter { $0.severity >= policy.threshold }
                for f in refused {
                    denies.append("\(c.list)/\(c.name): \(f.title) (\(f.ruleId), \(f.severity.rawValue))")
                }
                for f in found where f.severity < policy.threshold && f.severity >= .medium {
                    warnings.append("\(c.name): \(f.title) (\(f.ruleId), \(f.severity.rawValue))")
                }
                guard seenImages.insert(c.image).inserted else { continue }
                // The spec already refuses this container: its image need not be fetched.
                if !refused.isEmpty {
                    images.append(.init(image: c.image, digest: nil, source: .unattested, verdict: "unknown", detail: "not checked: the spec is refused"))
                    continue
                }
                let verdict = judgeImage(c.image, now: now)
                images.append(verdict.image)
                if let d = verdict.deny { denies.append("\(c.list)/\(c.name): \(d)") }
                if let w = verdict.warn { warnings.append("\(c.name): \(w)") }
            }
        }
        let decision: AdmissionEvent.Decision = !denies.isEmpty ? .denied : (warnings.isEmpty ? .allowed : .warned)
        var response = AdmissionResponse(uid: r.uid, apiVersion: r.apiVersion, allowed: decision != .denied || policy.audit)
        if decision == .denied {
            response.message = "minewatch: " + denies.joined(separator: "; ")
            if policy.audit { warnings = denies.map { "minewatch audit, would deny: \($0)" } + warnings }
        }
        response.warnings = warnings.map { $0.hasPrefix("minewatch") ? $0 : "minewatch: \($0)" }
        response.auditAnnotations = ["decision": decision.rawValue]
        if policy.audit { response.auditAnnotations["audit"] = "true" }
        let event = AdmissionEvent(time: started, uid: r.uid, kind: r.kind, namespace: r.namespace, name: r.name, operation: r.operation,
                                   user: r.user, decision: decision, audit: policy.audit, reasons: decision == .denied ? denies : warnings,
                                   images: images, findings: findings, exception: excepted.first,
                                   durationMs: now().timeIntervalSince(started) * 1000)
        return (response, event)
    }

    struct ImageVerdict {
        var image: AdmissionEvent.Image
        var deny: String?
        var warn: String?
    }

    /// One image: its digest, then the cache, the attestations, and the policy.
    func judgeImage(_ image: String, now: @Sendable () -> Date) -> ImageVerdict {
        guard let ref = ImageReference(parsing: image) else {
            return failure(image, digest: nil, "'\(image.prefix(100))' is not an image reference")
        }
        let digest: String
        if let d = ref.digest {
            guard ContentDigest.isVerifiableSHA256(d) else { return failure(image, digest: nil, "digest \(d.prefix(80)) is not a SHA-256 digest") }
            digest = d
        } else if let d = tags.get(image, now: now()) {
            digest = d
        } else {
            do { digest = try authority.resolve(ref) } catch { return failure(image, digest: nil, "registry: \(error.description)") }
            tags.put(image, digest, now: now())
        }
        if let e = cache.get(digest, now: now()) { return verdict(image, digest, e, source: .cache) }
        let envelopes: [(bytes: [UInt8], name: String)]
        do { envelopes = try authority.attestations(ref, digest: digest) } catch {
            return failure(image, digest: digest, "registry: \(error.description)")
        }
        switch verifier.verify(envelopes, digest: digest, now: now()) {
        case .valid(let p, let key, _):
            var until = now().addingTimeInterval(policy.cacheTTL)
            if let maxAge = policy.maxAge, let at = p.scannedDate { until = min(until, at.addingTimeInterval(maxAge)) }
            let e = VerdictCache.Entry(verdict: .pass, families: [], source: .attestation,
                                       detail: "attested \(p.verdict.rawValue) by \(key.name), scanned \(p.scannedAt)", expires: until)
            cache.put(digest, e)
            return verdict(image, digest, e, source: .attestation)
        case .invalid(.verdict(let v, let families)):
            // A trusted key says the image failed: that is a verdict, not an absence of one.
            let e = VerdictCache.Entry(verdict: v, families: families, source: .attestation, detail: "attested \(v.rawValue)",
                                       expires: now().addingTimeInterval(policy.cacheTTL))
            cache.put(digest, e)
            return verdict(image, digest, e, source: .attestation)
        case .invalid(let why):
            return unattested(image, ref: ref, digest: digest, why: why.description, now: now)
        }
    }

    func unattested(_ image: String, ref: ImageReference, digest: String, why: String, now: @Sendable () -> Date) -> ImageVerdict {
        let info = AdmissionEvent.Image(image: image, digest: digest, source: .unattested, verdict: "unknown", detail: why)
        switch policy.unattested {
        case .deny: return ImageVerdict(image: info, deny: "\(image) (\(digest)): \(why)")
        case .warn: return ImageVerdict(image: info, warn: "\(image) is not attested (\(why))")
        case .scan:
            let ended = scans.scan(digest, deadline: policy.scanDeadline) { [self] in
                let report = authority.scan(ref, digest: digest)
                let p = ScanPredicate(report: report, image: image, threshold: policy.threshold, version: MinewatchVersion.current,
                                      rulesDigest: rulesDigest, scannedAt: Date())
                let failing = report.findings.filter { $0.severity >= policy.threshold }.prefix(3).map { "\($0.ruleId) \($0.path)" }
                let detail = p.verdict == .pass ? "scanned here: \(report.findings.count) findings below \(policy.threshold)"
                    : "scanned here: \(failing.joined(separator: ", "))\(report.errors.isEmpty ? "" : "; \(report.errors.count) unreadable")"
                // An incomplete scan is not kept: the next request tries again.
                if p.verdict != .incomplete {
                    cache.put(digest, VerdictCache.Entry(verdict: p.verdict, families: p.families, source: .scan, detail: detail,
                                                         expires: Date().addingTimeInterval(policy.cacheTTL)))
                } else {
                    cache.put(digest, VerdictCache.Entry(verdict: .incomplete, families: [], source: .scan,
                                                         detail: "scan incomplete: \(report.errors.first?.message ?? "")", expires: Date().addingTimeInterval(30)))
                }
                // Shared with other replicas and with the CI's verify: the webhook attests what it scanned.
                if let signer, p.verdict != .incomplete {
                    let statement = ScanStatement(subjectName: "\(ref.registry)/\(ref.repository)", subjectDigest: digest, predicate: p)
                    if let env = try? Attestations.envelope(statement, signer: signer) { try? authority.publish(env, ref: ref, digest: digest) }
                }
            }
            guard ended, let e = cache.get(digest, now: now()) else {
                var still = info
                still.detail = "scan still running (\(why))"
                return ImageVerdict(image: still, deny: "\(image) (\(digest)): not attested, scan still running; retry shortly")
            }
            return verdict(image, digest, e, source: .scan)
        }
    }

    func verdict(_ image: String, _ digest: String, _ e: VerdictCache.Entry, source: AdmissionEvent.Source) -> ImageVerdict {
        let src = source == .cache ? .cache : e.source
        let info = AdmissionEvent.Image(image: image, digest: digest, source: src, verdict: e.verdict.rawValue, detail: e.detail)
        switch e.verdict {
        case .pass: return ImageVerdict(image: info)
        case .fail:
            let fam = e.families.isEmpty ? "" : " (\(e.families.joined(separator: ", ")))"
            return ImageVerdict(image: info, deny: "\(image) (\(digest)) failed its scan\(fam): \(e.detail)")
        case .incomplete:
            return policy.onError == .deny ? ImageVerdict(image: info, deny: "\(image): \(e.detail)") : ImageVerdict(image: info, warn: "\(image): \(e.detail)")
        }
    }

    func failure(_ image: String, digest: String?, _ why: String) -> ImageVerdict {
        let info = AdmissionEvent.Image(image: image, digest: digest, source: .error, verdict: "unknown", detail: why)
        switch policy.onError {
        case .deny: return ImageVerdict(image: info, deny: "\(image): cannot be checked: \(why)")
        case .allow: return ImageVerdict(image: info, warn: "\(image) admitted unchecked: \(why)")
        }
    }
}
