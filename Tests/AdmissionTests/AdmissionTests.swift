import Foundation
import MinewatchAdmission
import MinewatchAttest
import MinewatchConfig
import MinewatchCore
import MinewatchImage
import MinewatchModel
import MinewatchSignatures
import Synchronization
import Testing
import TestSupport

/// AdmissionReview requests shaped as the API server sends them (k8s.io/api admission/v1: uid,
/// kind, resource, requestKind, requestResource, name, namespace, operation, userInfo, object,
/// oldObject, dryRun, options), for every kind with a pod template, and the policy's decisions
/// over an image authority the test controls.
@Suite struct AdmissionTests {
    static let kinds = ["Pod", "Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "CronJob", "PodTemplate"]

    @Test(arguments: kinds) func podSpecsOfEveryKind(kind: String) throws {
        let spec: [String: Any] = ["containers": [AdmissionReviews.container("registry.example/app:1", command: ["/app"])],
                                   "initContainers": [AdmissionReviews.container("busybox")]]
        let r = try AdmissionRequest.parse(AdmissionReviews.review(kind, spec: spec))
        #expect(r.kind == kind && r.namespace == "shop" && r.name == "web" && r.operation == "CREATE")
        #expect(r.containers.map(\.image) == ["busybox", "registry.example/app:1"])
        #expect(r.containers.map(\.list) == ["initContainers", "containers"])
        #expect(r.labels["app"] == "web" && r.user == "system:serviceaccount:shop:deployer")
    }

    @Test func malformedReviewsNameTheField() {
        for (body, field) in [("[]", "body"), ("{\"kind\":\"Pod\"}", "kind"), ("{\"kind\":\"AdmissionReview\",\"apiVersion\":\"v1\"}", "apiVersion"),
                              ("{\"kind\":\"AdmissionReview\",\"apiVersion\":\"admission.k8s.io/v1\",\"request\":{}}", "request.uid"),
                              ("{\"kind\":\"AdmissionReview\",\"apiVersion\":\"admission.k8s.io/v1\",\"request\":{\"uid\":\"u\",\"kind\":{\"kind\":\"Pod\"},\"object\":{\"spec\":{\"containers\":[{\"name\":\"a\"}]}}}}", "spec.containers[0].image")] {
            do {
                _ = try AdmissionRequest.parse(Array(body.utf8))
                Issue.record("accepted \(body)")
            } catch {
                #expect(error.description.contains(field), "\(error)")
            }
        }
    }

    /// Images whose digests, attestations and scans the test decides; counts what was asked.
    final class FakeAuthority: ImageAuthority {
        let digests: [String: String]
        let envelopes: [String: [UInt8]]
        let scanFindings: [String: [Finding]]
        let scanDelay: Double
        let calls = Mutex<[String]>([])
        init(digests: [String: String], envelopes: [String: [UInt8]] = [:], scanFindings: [String: [Finding]] = [:], scanDelay: Double = 0) {
            self.digests = digests
            self.envelopes = envelopes
            self.scanFindings = scanFindings
            self.scanDelay = scanDelay
        }
        func resolve(_ ref: ImageReference) throws(MinewatchError) -> String {
            calls.withLock { $0.append("resolve \(ref.repository)") }
            guard let d = digests[ref.repository] else { throw MinewatchError(.network, operation: "fetch", subject: ref.registry, message: "connection refused") }
            return d
        }
        func attestations(_ ref: ImageReference, digest: String) throws(MinewatchError) -> [(bytes: [UInt8], name: String)] {
            calls.withLock { $0.append("attestations \(ref.repository)") }
            return envelopes[digest].map { [($0, "att")] } ?? []
        }
        func scan(_ ref: ImageReference, digest: String) -> TargetReport {
            calls.withLock { $0.append("scan \(ref.repository)") }
            if scanDelay > 0 { Thread.sleep(forTimeInterval: scanDelay) }
            return TargetReport(target: ref.description, kind: "registry-image", findings: scanFindings[ref.repository] ?? [])
        }
        func publish(_ envelope: DSSEEnvelope, ref: ImageReference, digest: String) throws(MinewatchError) {
            calls.withLock { $0.append("publish \(ref.repository)") }
        }
        var asked: [String] { calls.withLock { $0 } }
    }

    static let rules = CompiledRules(BundledRules.load().0)
    static let good = "sha256:" + String(repeating: "1", count: 64)
    static let bad = "sha256:" + String(repeating: "2", count: 64)
    static let plain = "sha256:" + String(repeating: "3", count: 64)
    static let minerFinding = Finding(ruleId: "MW-BIN-XMRIG", severity: .critical, family: "xmrig", category: "miner-binary",
                                      title: "XMRig", path: "/usr/bin/svc", evidence: [])

    func keys() throws -> (AttestationSigner, TrustedKey) {
        let dir = try TempDir("mw-admit")
        let (key, pub) = try p256KeyPair(in: dir.path, name: "k")
        return (try AttestationSigner(pemFile: key), try TrustedKey(pemFile: pub))
    }

    func attestation(_ signer: AttestationSigner, digest: String, findings: [Finding]) throws -> [UInt8] {
        let p = ScanPredicate(report: TargetReport(target: "t", kind: "registry-image", findings: findings), image: "t", threshold: .high,
                              version: "test", rulesDigest: nil, scannedAt: Date())
        return try Attestations.envelope(ScanStatement(subjectName: "r/x", subjectDigest: digest, predicate: p), signer: signer).encoded()
    }

    func decide(_ c: AdmissionController, image: String, command: [String] = [], kind: String = "Deployment", labels: [String: String] = ["app": "web"]) throws -> AdmissionEvent {
        let (status, body, event) = c.review(AdmissionReviews.review(kind, spec: ["containers": [AdmissionReviews.container(image, command: command)]], labels: labels))
        #expect(status == 200)
        let answer = try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any]
        let response = answer?["response"] as? [String: Any]
        #expect(answer?["apiVersion"] as? String == "admission.k8s.io/v1" && answer?["kind"] as? String == "AdmissionReview")
        #expect(response?["patch"] == nil && response?["patchType"] == nil)
        let e = try #require(event)
        #expect(response?["uid"] as? String == e.uid)
        #expect(response?["allowed"] as? Bool == e.admitted)
        return e
    }

    @Test func attestedAdmitsFailingDeniesUnattestedFollowsPolicy() throws {
        let (signer, pub) = try keys()
        let authority = FakeAuthority(digests: ["shop/good": Self.good, "shop/bad": Self.bad, "shop/plain": Self.plain],
                                      envelopes: [Self.good: try attestation(signer, digest: Self.good, findings: []),
                                                  Self.bad: try attestation(signer, digest: Self.bad, findings: [Self.minerFinding])])
        var policy = AdmissionPolicy()
        policy.unattested = .deny
        let c = AdmissionController(policy: policy, rules: Self.rules, keys: [pub], authority: authority)
        #expect(try decide(c, image: "r.example/shop/good:1").decision == .allowed)
        let bad = try decide(c, image: "r.example/shop/bad:1")
        #expect(bad.decision == .denied && bad.reasons.first?.contains("xmrig") == true)
        let plain = try decide(c, image: "r.example/shop/plain:1")
        #expect(plain.decision == .denied && plain.images.first?.source == .unattested)
        // Cached: the second request for the good image asks the registry for nothing but (within the tag TTL) nothing at all.
        let before = authority.asked.count
        let again = try decide(c, image: "r.example/shop/good:1")
        #expect(again.images.first?.source == .cache && authority.asked.count == before)

        policy.unattested = .warn
        let w = AdmissionController(policy: policy, rules: Self.rules, keys: [pub], authority: authority)
        let warned = try decide(w, image: "r.example/shop/plain:1")
        #expect(warned.decision == .warned && warned.admitted)
        // Audit: what would be denied is admitted and reported.
        policy.audit = true
        policy.unattested = .deny
        let a = AdmissionController(policy: policy, rules: Self.rules, keys: [pub], authority: authority)
        let audited = try decide(a, image: "r.example/shop/bad:1")
        #expect(audited.decision == .denied && audited.admitted && audited.audit)
    }

    @Test func scanWithinDeadlineThenCached() throws {
        let authority = FakeAuthority(digests: ["shop/clean": Self.good, "shop/miner": Self.bad, "shop/slow": Self.plain],
                                      scanFindings: ["shop/miner": [Self.minerFinding]], scanDelay: 0)
        var policy = AdmissionPolicy()
        policy.unattested = .scan
        policy.scanDeadline = 5
        let c = AdmissionController(policy: policy, rules: Self.rules, keys: [], authority: authority)
        let clean = try decide(c, image: "r.example/shop/clean:1")
        #expect(clean.decision == .allowed && clean.images.first?.source == .scan, "\(clean)")
        let miner = try decide(c, image: "r.example/shop/miner:1")
        #expect(miner.decision == .denied && miner.images.first?.verdict == "fail")
        #expect(try decide(c, image: "r.example/shop/miner:1").images.first?.source == .cache)
        #expect(authority.asked.filter { $0.hasPrefix("scan") }.count == 2)

        // A scan longer than the deadline: refused now, admitted once it finished.
        let slow = FakeAuthority(digests: ["shop/slow": Self.plain], scanDelay: 1.0)
        policy.scanDeadline = 0.1
        let s = AdmissionController(policy: policy, rules: Self.rules, keys: [], authority: slow)
        let first = try decide(s, image: "r.example/shop/slow:1")
        #expect(first.decision == .denied && first.reasons.first?.contains("still running") == true)
        var later = first
        for _ in 0..<100 where later.decision == .denied {
            Thread.sleep(forTimeInterval: 0.1)
            later = try decide(s, image: "r.example/shop/slow:1")
        }
        #expect(later.decision == .allowed)
        #expect(slow.asked.filter { $0.hasPrefix("scan") }.count == 1)
    }

    @Test func specFindingsRegistryFailuresAndExceptions() throws {
        let authority = FakeAuthority(digests: [:])
        var policy = AdmissionPolicy()
        policy.unattested = .warn
        let c = AdmissionController(policy: policy, rules: Self.rules, keys: [], authority: authority)
        // Proxyware by its image name, a miner by its command line: refused from the spec alone, no registry asked.
        let hg = try decide(c, image: "honeygain/honeygain", kind: "DaemonSet")
        #expect(hg.decision == .denied && hg.findings.contains { $0.family == "honeygain" })
        let xm = try decide(c, image: "alpine:3", command: ["/tmp/x", "-o", "stratum+tcp://198.18.1.9:3333", "-u", "wallet", "--donate-level", "1", "-k"], kind: "Job")
        #expect(xm.decision == .denied && xm.reasons.contains { $0.contains("MW-") })
        #expect(authority.asked.isEmpty)
        // The registry is down: deny by default, admit with a warning under on-error allow.
        let down = try decide(c, image: "r.example/shop/gone:1")
        #expect(down.decision == .denied && down.images.first?.source == .error)
        policy.onError = .allow
        let open = AdmissionController(policy: policy, rules: Self.rules, keys: [], authority: authority)
        #expect(try decide(open, image: "r.example/shop/gone:1").decision == .warned)
        // An exception for the namespace's label admits the proxyware, and says which.
        var ex = ExceptionRule(name: "bandwidth-lab", reason: "measured on purpose", source: "test:1")
        ex.labels = ["team": "netlab"]
        let e = AdmissionController(policy: policy, rules: Self.rules, keys: [], authority: authority, exceptions: [ex])
        let excepted = try decide(e, image: "honeygain/honeygain", labels: ["app": "web", "team": "netlab"])
        #expect(excepted.decision == .allowed && excepted.exception == "bandwidth-lab")
        #expect(try decide(e, image: "honeygain/honeygain").decision == .denied)
    }

    @Test func deletesAndObjectsWithoutPodsAreAdmittedUnjudged() throws {
        let authority = FakeAuthority(digests: [:])
        let c = AdmissionController(policy: AdmissionPolicy(), rules: Self.rules, keys: [], authority: authority)
        let (_, _, event) = c.review(AdmissionReviews.review("Deployment", spec: ["containers": [AdmissionReviews.container("honeygain/honeygain")]], operation: "DELETE"))
        #expect(event?.decision == .allowed && event?.images.isEmpty == true)
        let (status, body, none) = c.review(Array("{\"kind\":\"Nope\"}".utf8))
        #expect(status == 400 && none == nil && String(decoding: body, as: UTF8.self).contains("kind"))
    }
}
