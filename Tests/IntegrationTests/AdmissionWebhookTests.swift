import Foundation
import Testing
import TestSupport

/// `minewatch admit` over TLS (a certificate from scripts/webhook-cert) in front of a real
/// registry: AdmissionReviews shaped as the API server sends them, posted with curl, for every
/// policy and every way an attestation can be wrong; decisions in the JSON lines and OCSF files
/// and in Prometheus; the certificate replaced while serving.
@Suite(.serialized) struct AdmissionWebhookTests {
    struct Webhook {
        let process: BackgroundProcess
        let port: Int
        let events: String
    }

    /// Starts `minewatch admit` with `args`; its decisions go to DIR/NAME.jsonl.
    func start(_ lab: AttestLab, _ name: String, _ args: [String]) throws -> Webhook {
        let port = freeLoopbackPort()
        let events = lab.dir.path + "/\(name).jsonl"
        let p = try BackgroundProcess([minewatchBinary(), "admit", "--listen", "127.0.0.1:\(port)", "--tls-cert", lab.dir.path + "/tls/tls.crt",
                                       "--tls-key", lab.dir.path + "/tls/tls.key", "--insecure-registry", "127.0.0.1:\(lab.port)",
                                       "--output", events] + args, label: "admit-\(name)")
        #expect(p.wait { loopbackPortOpen(port) }, "\(p.output)")
        return Webhook(process: p, port: port, events: events)
    }

    /// Posts a review over TLS (trusting only the webhook's CA); returns the response object.
    func post(_ lab: AttestLab, _ w: Webhook, _ review: String) throws -> [String: Any] {
        let body = try lab.dir.file("review-\(UUID().uuidString.prefix(6)).json", Array(review.utf8))
        let r = try run(["curl", "-sS", "--max-time", "20", "--cacert", lab.dir.path + "/tls/ca.crt", "-H", "Content-Type: application/json",
                         "--data-binary", "@\(body)", "https://localhost:\(w.port)/validate?timeout=10s"])
        let obj = (try? JSONSerialization.jsonObject(with: Data(r.out))) as? [String: Any]
        #expect(obj?["apiVersion"] as? String == "admission.k8s.io/v1" && obj?["kind"] as? String == "AdmissionReview", "\(r.err) \(String(decoding: r.out, as: UTF8.self))")
        let response = (obj?["response"] as? [String: Any]) ?? [:]
        let sent = (try? JSONSerialization.jsonObject(with: Data(review.utf8))) as? [String: Any]
        #expect(response["uid"] as? String == (sent?["request"] as? [String: Any])?["uid"] as? String)
        #expect(response["patch"] == nil)
        return response
    }

    func pod(_ image: String, command: [String] = []) -> [String: Any] {
        ["containers": [AdmissionReviews.container(image, command: command)]]
    }

    func allowed(_ r: [String: Any]) -> Bool { r["allowed"] as? Bool == true }
    func message(_ r: [String: Any]) -> String { ((r["status"] as? [String: Any])?["message"] as? String) ?? "" }
    func warnings(_ r: [String: Any]) -> [String] { (r["warnings"] as? [String]) ?? [] }

    @Test func attestedAdmittedUnattestedMinerDeniedEveryPolicy() throws {
        try requireTools(["curl", "openssl", "prometheus"])
        let lab = try AttestLab(label: "admit")
        defer { lab.stop() }
        let cert = try run([repositoryPath("scripts/webhook-cert"), "--out", lab.dir.path + "/tls", "--san", "localhost", "--san", "127.0.0.1"])
        #expect(cert.status == 0, "\(cert.err)")
        let (key, pub) = try lab.keyPair("ci")
        let (_, otherPub) = try lab.keyPair("other")
        // CI attested the benign image; nobody scanned the miner.
        let scan = try minewatch(["scan", "--insecure", "-f", "json", "-o", lab.dir.path + "/r.json", "--attest", key, "--push", "registry:\(lab.benign)"])
        #expect(scan.status == 0, "\(scan.err)")
        let config = try lab.dir.file("minewatch.yaml", Array("""
        exceptions:
          - name: bandwidth-lab
            reason: the network team measures proxyware here on purpose
            namespace: netlab
        """.utf8))
        let metricsPort = freeLoopbackPort(), falcoPort = freeLoopbackPort()
        let ocsf = lab.dir.path + "/ocsf.jsonl", falco = lab.dir.path + "/falco.jsonl"
        let receiver = try BackgroundProcess(["python3", fixturePath("falco-receiver.py"), String(falcoPort), falco], label: "falco")
        defer { receiver.stop() }
        #expect(receiver.wait { loopbackPortOpen(falcoPort) })
        let deny = try start(lab, "deny", ["--key", pub, "--policy", "deny", "--config", config, "--ocsf-output", ocsf,
                                           "--falcosidekick-url", "http://127.0.0.1:\(falcoPort)/", "--metrics-listen", "127.0.0.1:\(metricsPort)"])
        defer { deny.process.stop() }

        // Attested: admitted. Unattested miner: denied under deny, naming the digest.
        let ok = try post(lab, deny, AdmissionReviews.text("Deployment", spec: pod(lab.benign)))
        #expect(allowed(ok), "\(ok)")
        let miner = try post(lab, deny, AdmissionReviews.text("Deployment", spec: pod(lab.miner)))
        #expect(!allowed(miner) && message(miner).contains("sha256:") && (miner["status"] as? [String: Any])?["code"] as? Int == 403, "\(miner)")
        // The spec alone: proxyware by its image, XMRig by its command line; the exception admits the first in its namespace.
        let hg = try post(lab, deny, AdmissionReviews.text("DaemonSet", spec: pod("honeygain/honeygain")))
        #expect(!allowed(hg) && message(hg).contains("MW-BW-HONEYGAIN"), "\(hg)")
        let xm = try post(lab, deny, AdmissionReviews.text("CronJob", spec: pod(lab.benign, command: ["/bin/x", "-o", "stratum+tcp://198.18.1.9:3333",
                                                                                                       "-u", "w", "-p", "x", "--donate-level", "1"])))
        #expect(!allowed(xm) && message(xm).contains("MW-"), "\(xm)")
        let excepted = try post(lab, deny, AdmissionReviews.text("DaemonSet", spec: pod("honeygain/honeygain"), namespace: "netlab"))
        #expect(allowed(excepted), "\(excepted)")

        // Warn admits the miner with a warning; scan finds XMRig within the deadline and denies it.
        let warn = try start(lab, "warn", ["--key", pub, "--policy", "warn"])
        defer { warn.process.stop() }
        let warned = try post(lab, warn, AdmissionReviews.text("Pod", spec: pod(lab.miner)))
        #expect(allowed(warned) && warnings(warned).contains { $0.contains("not attested") }, "\(warned)")
        let scanning = try start(lab, "scan", ["--key", pub, "--policy", "scan", "--scan-deadline", "8s", "--attest", key])
        defer { scanning.process.stop() }
        let scanned = try post(lab, scanning, AdmissionReviews.text("StatefulSet", spec: pod(lab.miner)))
        #expect(!allowed(scanned) && message(scanned).contains("failed its scan") && message(scanned).contains("xmrig"), "\(scanned)")
        #expect(message(scanned).contains(try lab.digest("miner")), "the response names the digest: \(scanned)")
        // The webhook attested what it scanned: anyone (another replica, CI's verify) reads the verdict.
        var shared = ""
        _ = scanning.process.wait(seconds: 15) {
            shared = (try? minewatch(["verify", "--insecure", "--key", pub, "-f", "json", lab.miner]).out) ?? ""
            return shared.contains("failing-verdict")
        }
        #expect(shared.contains("failing-verdict"), "\(shared)")
        // Audit: admitted, with what enforcing would have said.
        let audit = try start(lab, "audit", ["--key", pub, "--policy", "deny", "--audit"])
        defer { audit.process.stop() }
        let audited = try post(lab, audit, AdmissionReviews.text("Job", spec: pod(lab.miner)))
        #expect(allowed(audited) && warnings(audited).contains { $0.contains("would deny") }, "\(audited)")

        // Another key than the one CI signed with: the benign image counts as unattested.
        let stranger = try start(lab, "stranger", ["--key", otherPub, "--policy", "deny"])
        defer { stranger.process.stop() }
        let s = try post(lab, stranger, AdmissionReviews.text("Pod", spec: pod(lab.benign)))
        #expect(!allowed(s) && message(s).contains("trusted key"), "\(s)")
        // Too old for --max-age.
        usleep(2_100_000)
        let strict = try start(lab, "strict", ["--key", pub, "--policy", "deny", "--max-age", "2s"])
        defer { strict.process.stop() }
        let old = try post(lab, strict, AdmissionReviews.text("Pod", spec: pod(lab.benign)))
        #expect(!allowed(old) && message(old).contains("old"), "\(old)")

        // Every decision is a JSON line and an OCSF finding; Prometheus scrapes the counts.
        let lines = (try String(contentsOfFile: deny.events, encoding: .utf8)).split(separator: "\n")
        #expect(lines.count == 5, "\(lines)")
        #expect(lines.contains { $0.contains("\"exception\":\"bandwidth-lab\"") })
        let ocsfLines = (try String(contentsOfFile: ocsf, encoding: .utf8)).split(separator: "\n")
        #expect(ocsfLines.count == 5 && ocsfLines.filter { $0.contains("\"disposition\":\"Blocked\"") }.count == 3, "\(ocsfLines)")
        // Falcosidekick got every decision, in the shape its FalcoPayload decodes.
        var received: [[String: Any]] = []
        _ = receiver.wait(seconds: 15) {
            received = ((try? String(contentsOfFile: falco, encoding: .utf8)) ?? "").split(separator: "\n")
                .compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            return received.count == 5
        }
        #expect(received.count == 5)
        #expect(received.allSatisfy { ($0["problems"] as? [Any])?.isEmpty == true }, "\(received)")
        #expect(received.filter { (($0["event"] as? [String: Any])?["rule"] as? String) == "minewatch admission denied" }.count == 3, "\(received)")
        let promPort = freeLoopbackPort()
        let promConfig = try lab.dir.file("prometheus.yml", Array("""
        global: {scrape_interval: 1s, evaluation_interval: 1s}
        scrape_configs:
          - job_name: minewatch-admission
            static_configs: [{targets: ["127.0.0.1:\(metricsPort)"]}]
        """.utf8))
        let prom = try BackgroundProcess(["prometheus", "--config.file=\(promConfig)", "--storage.tsdb.path=\(lab.dir.path)/tsdb",
                                          "--web.listen-address=127.0.0.1:\(promPort)"], label: "prometheus")
        defer { prom.stop() }
        #expect(prom.wait(seconds: 30) { loopbackPortOpen(promPort) })
        var seen = ""
        let query = "sum(minewatch_admission_decisions_total{decision=\"denied\"})"
        let got = prom.wait(seconds: 30) {
            let r = try? run(["curl", "-s", "--get", "--data-urlencode", "query=\(query)", "http://127.0.0.1:\(promPort)/api/v1/query"])
            seen = r.map { String(decoding: $0.out, as: UTF8.self) } ?? ""
            return seen.contains("\"3\"")
        }
        #expect(got, "\(seen)")
    }

    @Test func tamperedMisplacedRegistryDownAndCertificateReload() throws {
        try requireTools(["curl", "openssl"])
        let lab = try AttestLab(label: "admit-bad")
        defer { lab.stop() }
        #expect(try run([repositoryPath("scripts/webhook-cert"), "--out", lab.dir.path + "/tls", "--san", "localhost"]).status == 0)
        let (key, pub) = try lab.keyPair("ci")
        let envFile = lab.dir.path + "/env.jsonl"
        _ = try minewatch(["scan", "--insecure", "-f", "json", "-o", lab.dir.path + "/r.json", "--attest", key, "--attestation-output", envFile,
                           "registry:\(lab.benign)", "registry:\(lab.miner)"])
        let lines = (try String(contentsOfFile: envFile, encoding: .utf8)).split(separator: "\n").map(String.init)
        #expect(lines.count == 2)
        let minerDigest = try lab.digest("miner")
        let put = [AttestLab.pythonOrSystem, fixturePath("put-attestation.py"), "127.0.0.1:\(lab.port)", "mw/app", minerDigest]
        let w = try start(lab, "bad", ["--key", pub, "--policy", "deny", "--tag-ttl", "0", "--cache-ttl", "0"])
        defer { w.process.stop() }

        // The benign image's valid attestation stored for the miner: a subject mismatch.
        #expect(try run(put + [try lab.dir.file("benign.json", Array(lines[0].utf8))]).status == 0)
        let misplaced = try post(lab, w, AdmissionReviews.text("Pod", spec: pod(lab.miner)))
        #expect(!allowed(misplaced) && message(misplaced).contains("not this digest"), "\(misplaced)")
        // The miner's own attestation with its verdict rewritten to pass: the signature no longer holds.
        var env = (try JSONSerialization.jsonObject(with: Data(lines[1].utf8)) as? [String: Any]) ?? [:]
        let payload = String(decoding: Data(base64Encoded: env["payload"] as? String ?? "") ?? Data(), as: UTF8.self)
        env["payload"] = Data(payload.replacingOccurrences(of: "\"verdict\":\"fail\"", with: "\"verdict\":\"pass\"").utf8).base64EncodedString()
        #expect(try run(put + [try lab.dir.file("forged.json", Array(try JSONSerialization.data(withJSONObject: env)))]).status == 0)
        let forged = try post(lab, w, AdmissionReviews.text("Pod", spec: pod(lab.miner)))
        #expect(!allowed(forged) && message(forged).contains("trusted key"), "\(forged)")

        // The certificate is replaced while serving: new handshakes get the new one.
        func serial() throws -> String {
            let r = try run(["sh", "-c", "echo | openssl s_client -connect 127.0.0.1:\(w.port) -servername localhost 2>/dev/null | openssl x509 -noout -serial"])
            return String(decoding: r.out, as: UTF8.self)
        }
        let before = try serial()
        #expect(before.hasPrefix("serial="))
        #expect(try run([repositoryPath("scripts/webhook-cert"), "--out", lab.dir.path + "/tls", "--san", "localhost"]).status == 0)
        var after = before
        _ = w.process.wait(seconds: 10) {
            after = (try? serial()) ?? before
            return after != before
        }
        #expect(after != before && after.hasPrefix("serial="), "\(before) \(after)")
        // Still trusted through the same CA, and still answering.
        let still = try post(lab, w, AdmissionReviews.text("Pod", spec: pod(lab.miner)))
        #expect(!allowed(still))

        // The registry goes down: deny (fail closed) by default, admit with a warning under --on-error allow.
        let open = try start(lab, "open", ["--key", pub, "--policy", "deny", "--on-error", "allow"])
        defer { open.process.stop() }
        lab.registry.stop()
        let down = try post(lab, w, AdmissionReviews.text("Pod", spec: pod(lab.benign)))
        #expect(!allowed(down) && message(down).contains("cannot be checked"), "\(down)")
        let failOpen = try post(lab, open, AdmissionReviews.text("Pod", spec: pod(lab.benign)))
        #expect(allowed(failOpen) && warnings(failOpen).contains { $0.contains("unchecked") }, "\(failOpen)")
    }
}
