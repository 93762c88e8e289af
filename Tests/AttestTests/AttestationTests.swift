import Crypto
import Foundation
import MinewatchAttest
import MinewatchCore
import MinewatchModel
import Testing

/// DSSE envelopes, in-toto Statements and the verifier's checks, without a registry.
@Suite struct AttestationTests {
    static let digest = "sha256:" + String(repeating: "ab", count: 32)

    func keyFiles(_ name: String) throws -> (signer: AttestationSigner, pub: TrustedKey) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mw-attest-\(getpid())-\(name)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let key = P256.Signing.PrivateKey()
        try key.pemRepresentation.write(toFile: dir + "/key.pem", atomically: true, encoding: .utf8)
        try key.publicKey.pemRepresentation.write(toFile: dir + "/key.pub", atomically: true, encoding: .utf8)
        return (try AttestationSigner(pemFile: dir + "/key.pem"), try TrustedKey(pemFile: dir + "/key.pub"))
    }

    func report(findings: [Finding] = [], errors: [ScanIssue] = []) -> TargetReport {
        TargetReport(target: "registry:r/app:1", kind: "registry-image", findings: findings, errors: errors)
    }

    func envelope(_ signer: AttestationSigner, report r: TargetReport? = nil, digest: String = digest, at: Date = Date()) throws -> [UInt8] {
        let p = ScanPredicate(report: r ?? report(), image: "r/app:1", threshold: .high, version: "test", rulesDigest: "sha256:00", scannedAt: at)
        return try Attestations.envelope(ScanStatement(subjectName: "r/app", subjectDigest: digest, predicate: p), signer: signer).encoded()
    }

    /// The DSSE specification's own test vector: PAE bytes and an ECDSA P-256 signature (raw r||s)
    /// made by its reference implementation verify here.
    @Test func specificationTestVector() throws {
        let pae = DSSEEnvelope.pae(payloadType: "http://example.com/HelloWorld", payload: Array("hello world".utf8))
        #expect(String(decoding: pae, as: UTF8.self) == "DSSEv1 29 http://example.com/HelloWorld 11 hello world")
        // d from protocol.md / signing_spec.py, as 32 big-endian bytes.
        let d = "d73ec437fd6346e3619c5ebfdfff0f6916804955ad32ac9ac492b0ede1f6ffb7"
        let dBytes = stride(from: 0, to: 64, by: 2).map { UInt8(d.dropFirst($0).prefix(2), radix: 16) ?? 0 }
        let key = try P256.Signing.PrivateKey(rawRepresentation: dBytes)
        let pub = try TrustedKey(pem: key.publicKey.pemRepresentation, name: "spec")
        let env = try DSSEEnvelope.decode(Array("""
        {"payload":"aGVsbG8gd29ybGQ=","payloadType":"http://example.com/HelloWorld","signatures":[{"keyid":"66301bbf","sig":"A3JqsQGtVsJ2O2xqrI5IcnXip5GToJ3F+FnZ+O88SjtR6rDAajabZKciJTfUiHqJPcIAriEGAHTVeCUjW2JIZA=="}]}
        """.utf8), name: "vector")
        #expect(env.pae == pae)
        #expect(pub.verifies(env.signatures[0].sig, of: env.pae))
        #expect(!pub.verifies(env.signatures[0].sig, of: Array(env.pae.dropLast())))
    }

    @Test func signedScanVerifiesAndSaysWhatItFound() throws {
        let (signer, pub) = try keyFiles("ok")
        let miner = Finding(ruleId: "MW-BIN-XMRIG", severity: .critical, family: "xmrig", category: "miner-binary", title: "XMRig", path: "/x", evidence: [])
        let good = try envelope(signer)
        let v = AttestationVerifier(keys: [pub], maxAge: 3600)
        guard case .valid(let p, _, _) = v.verify([(good, "good")], digest: Self.digest) else { Issue.record("not valid"); return }
        #expect(p.verdict == .pass && p.threshold == "high" && p.scanner.rulesDigest == "sha256:00")
        let bad = try envelope(signer, report: report(findings: [miner]))
        guard case .invalid(let f) = v.verify([(bad, "bad")], digest: Self.digest) else { Issue.record("miner admitted"); return }
        #expect(f == .verdict(.fail, families: ["xmrig"]))
        let partial = try envelope(signer, report: report(errors: [ScanIssue(message: "layer unreadable")]))
        guard case .invalid(.verdict(.incomplete, _)) = v.verify([(partial, "partial")], digest: Self.digest) else { Issue.record("incomplete admitted"); return }
        // The statement carries only the fields cosign's parser accepts.
        let env = try DSSEEnvelope.decode(good, name: "good")
        let statement = try JSONSerialization.jsonObject(with: Data(env.payload)) as? [String: Any]
        #expect(Set(statement?.keys.map { $0 } ?? []) == ["_type", "subject", "predicateType", "predicate"])
        #expect(env.payloadType == "application/vnd.in-toto+json" && env.signatures.first?.keyid == "")
    }

    @Test func tamperedWrongKeySubjectAndAgeAreRefused() throws {
        let (signer, pub) = try keyFiles("refuse")
        let (other, _) = try keyFiles("other")
        let v = AttestationVerifier(keys: [pub], maxAge: 7 * 86400)
        // Tampered: the payload changed after signing.
        var env = try DSSEEnvelope.decode(try envelope(signer), name: "t")
        env.payload = Array(String(decoding: env.payload, as: UTF8.self).replacingOccurrences(of: "\"total\":0", with: "\"total\":1").utf8)
        #expect(v.verify([(env.encoded(), "t")], digest: Self.digest).failure == .untrusted)
        #expect(v.verify([(try envelope(other), "o")], digest: Self.digest).failure == .untrusted)
        let elsewhere = "sha256:" + String(repeating: "cd", count: 32)
        #expect(v.verify([(try envelope(signer, digest: elsewhere), "s")], digest: Self.digest).failure == .subjectMismatch(found: [elsewhere]))
        let old = try envelope(signer, at: Date().addingTimeInterval(-8 * 86400))
        guard case .expired(let age, _)? = v.verify([(old, "old")], digest: Self.digest).failure else { Issue.record("old admitted"); return }
        #expect(age > 7 * 86400)
        #expect(v.verify([], digest: Self.digest).failure == AttestationVerifier.Failure.none)
        // The best of several wins: an old one and a fresh one.
        if case .valid = v.verify([(old, "old"), (try envelope(signer), "new")], digest: Self.digest) {} else { Issue.record("fresh refused") }
    }

    @Test func malformedEnvelopesNameTheField() {
        for (text, field) in [("[]", "envelope"), ("{\"payloadType\":\"x\",\"signatures\":[]}", "payload"),
                              ("{\"payload\":\"!!\",\"payloadType\":\"x\",\"signatures\":[]}", "payload"),
                              ("{\"payload\":\"\",\"payloadType\":\"x\",\"signatures\":[{\"sig\":7}]}", "signatures[0].sig")] {
            do {
                _ = try DSSEEnvelope.decode(Array(text.utf8), name: "e.json")
                Issue.record("accepted \(text)")
            } catch {
                #expect(error.description.contains("e.json") && error.description.contains(field), "\(error)")
            }
        }
    }
}

extension AttestationVerifier.Outcome {
    var failure: AttestationVerifier.Failure? {
        if case .invalid(let f) = self { return f }
        return nil
    }
}
