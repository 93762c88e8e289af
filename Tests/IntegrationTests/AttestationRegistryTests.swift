import Foundation
import Testing
import TestSupport

/// `scan --attest --push`, `attest` and `verify` against a real registry (Debian's docker-registry),
/// with the layout read back through the registry's plain HTTP API and the envelopes checked by
/// independent verifiers: PyPI's securesystemslib and Debian 13's cosign.
@Suite(.serialized) struct AttestationRegistryTests {
    static let predicateType = "https://minewatch.dev/attestation/scan/v1"

    func json(_ bytes: [UInt8]) -> [String: Any] { ((try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any]) ?? [:] }

    @Test func attestPushAndVerifyWithIndependentVerifiers() throws {
        let lab = try AttestLab(label: "attest")
        defer { lab.stop() }
        try prerequisite(FileManager.default.isExecutableFile(atPath: AttestLab.python), "securesystemslib venv missing (scripts/install-deps)")
        try prerequisite(FileManager.default.isExecutableFile(atPath: AttestLab.cosign), "cosign missing (scripts/install-deps)")
        let (key, pub) = try lab.keyPair("signer")
        let (_, otherPub) = try lab.keyPair("other")
        let envFile = lab.dir.path + "/envelopes.jsonl"
        let scan = try minewatch(["scan", "--insecure", "-f", "json", "-o", lab.dir.path + "/report.json", "--attest", key, "--push",
                                  "--attestation-output", envFile, "registry:\(lab.benign)", "registry:\(lab.miner)"])
        #expect(scan.status == 1, "the miner fails the gate: \(scan.err)")
        #expect(scan.err.contains("verdict pass at high") && scan.err.contains("verdict fail at high"), "\(scan.err)")
        let benignDigest = try lab.digest("benign"), minerDigest = try lab.digest("miner")
        #expect(benignDigest.hasPrefix("sha256:") && minerDigest.hasPrefix("sha256:"))

        // The layout, read back with the registry's own API: cosign's tag, a DSSE layer, the subject.
        let tag = benignDigest.replacingOccurrences(of: ":", with: "-") + ".att"
        let manifest = json(try lab.get("/v2/mw/app/manifests/\(tag)"))
        #expect(manifest["mediaType"] as? String == "application/vnd.oci.image.manifest.v1+json")
        let layer = (manifest["layers"] as? [[String: Any]])?.first ?? [:]
        #expect(layer["mediaType"] as? String == "application/vnd.dsse.envelope.v1+json")
        let ann = layer["annotations"] as? [String: String] ?? [:]
        #expect(ann["predicateType"] == Self.predicateType && ann["dev.cosignproject.cosign/signature"] == "")
        #expect((manifest["subject"] as? [String: Any])?["digest"] as? String == benignDigest)
        let blob = try lab.get("/v2/mw/app/blobs/\(layer["digest"] as? String ?? "")", accept: "*/*")
        let stored = try lab.dir.file("stored.json", blob)

        // securesystemslib verifies the envelope the registry holds, and refuses the other key.
        let ok = try run([AttestLab.python, fixturePath("verify-dsse.py"), stored, pub, benignDigest])
        #expect(ok.status == 0, "\(String(decoding: ok.out, as: UTF8.self)) \(ok.err)")
        let predicate = (json(ok.out)["predicate"] as? [String: Any]) ?? [:]
        #expect(predicate["verdict"] as? String == "pass" && predicate["threshold"] as? String == "high")
        #expect(((predicate["scanner"] as? [String: Any])?["rulesDigest"] as? String)?.hasPrefix("sha256:") == true)
        let wrong = try run([AttestLab.python, fixturePath("verify-dsse.py"), stored, otherPub, benignDigest])
        #expect(wrong.status == 1 && String(decoding: wrong.out, as: UTF8.self).contains("signature"))
        // The --attestation-output file holds the same kind of envelope for the miner, with a failing verdict.
        let lines = (try String(contentsOfFile: envFile, encoding: .utf8)).split(separator: "\n")
        #expect(lines.count == 2)
        let minerEnv = try lab.dir.file("miner-env.json", Array(lines[1].utf8))
        let minerCheck = try run([AttestLab.python, fixturePath("verify-dsse.py"), minerEnv, pub, minerDigest])
        #expect(String(decoding: minerCheck.out, as: UTF8.self).contains("\"verdict\": \"fail\""))

        // cosign reads the same attestation with the public key (no transparency log offline).
        let cosign = [AttestLab.cosign, "verify-attestation", "--insecure-ignore-tlog", "--allow-insecure-registry", "--allow-http-registry",
                      "--type", Self.predicateType]
        let cv = try run(cosign + ["--key", pub, lab.benign])
        #expect(cv.status == 0, "\(cv.err)")
        let cw = try run(cosign + ["--key", otherPub, lab.benign])
        #expect(cw.status != 0)

        // minewatch verify: valid; the miner's verdict; another key; exit statuses 0 and 1.
        let v = try minewatch(["verify", "--insecure", "--key", pub, "--max-age", "1h", lab.benign])
        #expect(v.status == 0 && v.out.hasPrefix("VALID"), "\(v.out) \(v.err)")
        let vm = try minewatch(["verify", "--insecure", "--key", pub, "-f", "json", lab.miner])
        #expect(vm.status == 1 && json(Array(vm.out.utf8))["reason"] as? String == "failing-verdict", "\(vm.out)")
        let vk = try minewatch(["verify", "--insecure", "--key", otherPub, "-f", "json", lab.benign])
        #expect(vk.status == 1 && json(Array(vk.out.utf8))["reason"] as? String == "untrusted-signature", "\(vk.out)")
    }

    @Test func tamperedMisplacedAndExpiredAttestationsAreRefused() throws {
        let lab = try AttestLab(label: "attest-bad")
        defer { lab.stop() }
        let (key, pub) = try lab.keyPair("signer")
        let report = lab.dir.path + "/report.json"
        let envFile = lab.dir.path + "/env.jsonl"
        _ = try minewatch(["scan", "--insecure", "-f", "json", "-o", report, "registry:\(lab.benign)", "registry:\(lab.miner)"])
        let a = try minewatch(["attest", report, "--attest", key, "--attestation-output", envFile])
        #expect(a.status == 0, "\(a.err)")
        let benignDigest = try lab.digest("benign"), minerDigest = try lab.digest("miner")
        let lines = (try String(contentsOfFile: envFile, encoding: .utf8)).split(separator: "\n").map(String.init)
        #expect(lines.count == 2)
        let benignEnv = try lab.dir.file("benign.json", Array(lines[0].utf8))
        func verify(_ image: String, _ extra: [String] = []) throws -> String {
            let r = try minewatch(["verify", "--insecure", "--key", pub, "-f", "json"] + extra + [image])
            return (json(Array(r.out.utf8))["reason"] as? String) ?? (r.status == 0 ? "valid" : r.err)
        }
        #expect(try verify(lab.miner) == "no-attestation")

        // Subject mismatch: the benign image's valid attestation stored for the miner.
        let put = [AttestLab.pythonOrSystem, fixturePath("put-attestation.py"), "127.0.0.1:\(lab.port)", "mw/app"]
        #expect(try run(put + [minerDigest, benignEnv]).status == 0)
        #expect(try verify(lab.miner) == "subject-mismatch")

        // Tampered: the miner's envelope with its verdict rewritten to pass, signature kept.
        var env = json(Array(lines[1].utf8))
        let payload = Data(base64Encoded: env["payload"] as? String ?? "") ?? Data()
        let forged = String(decoding: payload, as: UTF8.self).replacingOccurrences(of: "\"verdict\":\"fail\"", with: "\"verdict\":\"pass\"")
        #expect(forged.contains("\"verdict\":\"pass\""))
        env["payload"] = Data(forged.utf8).base64EncodedString()
        let forgedFile = try lab.dir.file("forged.json", Array(try JSONSerialization.data(withJSONObject: env)))
        #expect(try run(put + [minerDigest, forgedFile]).status == 0)
        #expect(try verify(lab.miner) == "untrusted-signature")

        // Expired: a report scanned ten days ago, attested and pushed; refused with --max-age 7d only.
        var old = json(Array(try Data(contentsOf: URL(fileURLWithPath: report))))
        old["scannedAt"] = ISO8601DateFormatter().string(from: Date().addingTimeInterval(-10 * 86400))
        let oldReport = try lab.dir.file("old.json", Array(try JSONSerialization.data(withJSONObject: old)))
        let pushOld = try minewatch(["attest", oldReport, "--attest", key, "--push", "--insecure"])
        #expect(pushOld.status == 0, "\(pushOld.err)")
        #expect(try verify(lab.benign, ["--max-age", "7d"]) == "expired-attestation")
        #expect(try verify(lab.benign) == "valid")
        #expect(benignDigest != minerDigest)

        // A report that is not one, and a key that is not one: one line naming the file.
        let notReport = try lab.dir.file("nope.json", Array("{\"targets\": 3}".utf8))
        let bad = try minewatch(["attest", notReport, "--attest", key, "--attestation-output", lab.dir.path + "/x"])
        #expect(bad.status == 2 && bad.err.contains("nope.json"), "\(bad.err)")
        let badKey = try lab.dir.file("bad.pem", Array("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".utf8))
        let bk = try minewatch(["attest", report, "--attest", badKey, "--attestation-output", lab.dir.path + "/x"])
        #expect(bk.status != 0 && bk.err.contains("bad.pem"), "\(bk.err)")
    }

    /// An attestation cosign makes (its own Statement v0.1, its own signing code) for minewatch's
    /// predicate is accepted by `minewatch verify` with cosign's public key.
    @Test func cosignMadeAttestationIsAccepted() throws {
        let lab = try AttestLab(label: "attest-cosign")
        defer { lab.stop() }
        try prerequisite(FileManager.default.isExecutableFile(atPath: AttestLab.cosign), "cosign missing (scripts/install-deps)")
        let (key, _) = try lab.keyPair("signer")
        let envFile = lab.dir.path + "/env.jsonl"
        _ = try minewatch(["scan", "--insecure", "-f", "json", "--attest", key, "--attestation-output", envFile, "registry:\(lab.benign)"])
        let env = json(Array((try String(contentsOfFile: envFile, encoding: .utf8)).utf8))
        let statement = json(Array(Data(base64Encoded: env["payload"] as? String ?? "") ?? Data()))
        let predicate = try lab.dir.file("predicate.json", Array(try JSONSerialization.data(withJSONObject: statement["predicate"] ?? [:])))
        let cenv = ["COSIGN_PASSWORD": "", "HOME": lab.dir.path, "PATH": "/usr/bin:/bin"]
        let gen = try run(["sh", "-c", "cd \(lab.dir.path) && \(AttestLab.cosign) generate-key-pair"], env: cenv)
        #expect(gen.status == 0, "\(gen.err)")
        let at = try run([AttestLab.cosign, "attest", "--yes", "--key", lab.dir.path + "/cosign.key", "--type", Self.predicateType,
                          "--predicate", predicate, "--tlog-upload=false", "--allow-insecure-registry", "--allow-http-registry", lab.benign], env: cenv)
        #expect(at.status == 0, "\(at.err)")
        let v = try minewatch(["verify", "--insecure", "--key", lab.dir.path + "/cosign.pub", lab.benign])
        #expect(v.status == 0 && v.out.hasPrefix("VALID"), "\(v.out) \(v.err)")
    }
}
