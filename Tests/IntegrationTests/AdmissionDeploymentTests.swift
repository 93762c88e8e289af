import Foundation
import Testing
import TestSupport
import Yams

/// The artifacts that deploy the admission side: the webhook's Kubernetes manifests (consistent
/// with each other, with scripts/webhook-cert and with `minewatch admit`, which is started with
/// the Deployment's own arguments), the Kyverno policy (the predicate minewatch writes), the
/// GitHub composite action (its scan step run as a runner would) and the GitLab job.
@Suite(.serialized) struct AdmissionDeploymentTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    func docs(_ path: String) throws -> [[String: Any]] {
        let text = try String(contentsOfFile: Self.root + "/" + path, encoding: .utf8)
        return try Yams.load_all(yaml: text).compactMap { Self.map($0) }
    }

    static func map(_ v: Any?) -> [String: Any]? {
        guard let d = v as? [AnyHashable: Any] else { return nil }
        var out: [String: Any] = [:]
        for (k, x) in d { out[String(describing: k.base)] = x }
        return out
    }

    static func list(_ v: Any?) -> [[String: Any]] { ((v as? [Any]) ?? []).compactMap { map($0) } }

    @Test func webhookManifestsAgreeWithTheCertificateScriptAndTheBinary() throws {
        try requireTools(["openssl", "curl"])
        let workload = try docs("deploy/kubernetes/admission/minewatch-admission.yaml")
        let registration = try docs("deploy/kubernetes/admission/validating-webhook.yaml")
        func first(_ kind: String) -> [String: Any] { workload.first { $0["kind"] as? String == kind } ?? [:] }
        let service = first("Service"), deployment = first("Deployment"), configMap = first("ConfigMap")
        let svcMeta = Self.map(service["metadata"]) ?? [:]
        let svcName = svcMeta["name"] as? String ?? "", namespace = svcMeta["namespace"] as? String ?? ""
        #expect(Self.map(first("Namespace")["metadata"])?["name"] as? String == namespace)

        // The registration: v1 reviews, no side effects, a timeout within 1-30 s, fail closed,
        // its own namespace and kube-system left out, pods and every pod template covered.
        let hooks = Self.list(registration.first?["webhooks"])
        let hook = try #require(hooks.first)
        #expect(hook["sideEffects"] as? String == "None" && hook["failurePolicy"] as? String == "Fail")
        #expect((hook["admissionReviewVersions"] as? [String]) == ["v1"])
        let timeout = hook["timeoutSeconds"] as? Int ?? 0
        #expect((1...30).contains(timeout))
        let client = Self.map(Self.map(hook["clientConfig"])?["service"]) ?? [:]
        #expect(client["name"] as? String == svcName && client["namespace"] as? String == namespace && client["path"] as? String == "/validate")
        let expressions = Self.list(Self.map(hook["namespaceSelector"])?["matchExpressions"])
        let excluded = Set((expressions.first { $0["operator"] as? String == "NotIn" }?["values"] as? [String]) ?? [])
        #expect(excluded.contains("kube-system") && excluded.contains(namespace))
        let resources = Set(Self.list(hook["rules"]).flatMap { ($0["resources"] as? [String]) ?? [] })
        let wanted: Set<String> = ["pods", "deployments", "replicasets", "statefulsets", "daemonsets", "jobs", "cronjobs"]
        #expect(wanted.isSubset(of: resources))

        // The Deployment: two replicas; the Service reaches the container's port.
        let spec = Self.map(deployment["spec"]) ?? [:]
        #expect(spec["replicas"] as? Int == 2)
        let pod = Self.map(Self.map(spec["template"])?["spec"]) ?? [:]
        let containers = Self.list(pod["containers"])
        let container = try #require(containers.first)
        let args = (container["args"] as? [String]) ?? []
        let port = Self.list(container["ports"]).first
        let servicePorts = Self.list(Self.map(service["spec"])?["ports"])
        #expect(servicePorts.first?["targetPort"] as? String == port?["name"] as? String)
        #expect(servicePorts.first?["port"] as? Int == client["port"] as? Int)
        #expect(args.contains("--listen=0.0.0.0:\(port?["containerPort"] as? Int ?? 0)"))
        let deadline = args.first { $0.hasPrefix("--scan-deadline=") }.flatMap { Double($0.dropFirst(16).dropLast()) } ?? 99
        #expect(deadline < Double(timeout), "the scan deadline must stay below the webhook timeout")

        // scripts/webhook-cert makes a certificate valid for the Service's name.
        let dir = try TempDir("admit-deploy")
        defer { dir.cleanup() }
        let made = try run([Self.root + "/scripts/webhook-cert", "--service", svcName, "--namespace", namespace, "--out", dir.path + "/tls"])
        #expect(made.status == 0, "\(made.err)")
        let host = "\(svcName).\(namespace).svc"
        let verify = try run(["openssl", "verify", "-CAfile", dir.path + "/tls/ca.crt", "-verify_hostname", host, dir.path + "/tls/tls.crt"])
        #expect(verify.status == 0, "\(String(decoding: verify.out, as: UTF8.self)) \(verify.err)")

        // The config map's file is a valid agent config.
        let configText = try #require(Self.map(configMap["data"])?["minewatch.yaml"] as? String)
        _ = try dir.file("config/minewatch.yaml", Array(configText.utf8))
        let validated = try minewatch(["config", "validate", dir.path + "/config/minewatch.yaml"])
        #expect(validated.status == 0, "\(validated.err)")

        // The Deployment's own arguments start the webhook (paths under the test's folder, a free
        // port), and a client that knows only the CA and the Service's name gets an answer.
        _ = try dir.file("keys/ci.pub", Array(try String(contentsOfFile: try p256KeyPair(in: dir.path, name: "k").pub, encoding: .utf8).utf8))
        let free = freeLoopbackPort()
        let local = args.map { a -> String in
            a.replacingOccurrences(of: "/etc/minewatch/tls", with: dir.path + "/tls")
                .replacingOccurrences(of: "/etc/minewatch/keys", with: dir.path + "/keys")
                .replacingOccurrences(of: "/etc/minewatch/config", with: dir.path + "/config")
                .replacingOccurrences(of: "0.0.0.0:\(port?["containerPort"] as? Int ?? 0)", with: "127.0.0.1:\(free)")
                .replacingOccurrences(of: "127.0.0.1:9377", with: "127.0.0.1:\(freeLoopbackPort())")
        }
        let webhook = try BackgroundProcess([minewatchBinary()] + local, label: "admit-manifest")
        defer { webhook.stop() }
        #expect(webhook.wait { loopbackPortOpen(free) }, "\(webhook.output)")
        let health = try run(["curl", "-sS", "--cacert", dir.path + "/tls/ca.crt", "--resolve", "\(host):\(free):127.0.0.1", "https://\(host):\(free)/healthz"])
        #expect(String(decoding: health.out, as: UTF8.self) == "ok\n", "\(health.err)")
        let review = try dir.file("review.json", Array(AdmissionReviews.text("Pod", spec: ["containers": [AdmissionReviews.container("honeygain/honeygain")]]).utf8))
        let answer = try run(["curl", "-sS", "--cacert", dir.path + "/tls/ca.crt", "--resolve", "\(host):\(free):127.0.0.1",
                              "--data-binary", "@\(review)", "https://\(host):\(free)/validate"])
        #expect(String(decoding: answer.out, as: UTF8.self).contains("\"allowed\":false"), "\(answer.err)")
    }

    /// The Kyverno policy asks for the predicate type minewatch writes and reads fields its
    /// predicate has. (Kyverno itself cannot run on these machines.)
    @Test func kyvernoPolicyMatchesThePredicate() throws {
        let policy = try #require(try docs("deploy/kyverno/require-minewatch-attestation.yaml").first)
        #expect(policy["kind"] as? String == "ClusterPolicy")
        let rules = Self.list(Self.map(policy["spec"])?["rules"])
        let rule = try #require(rules.first)
        let verifies = Self.list(rule["verifyImages"])
        let verify = try #require(verifies.first)
        #expect(verify["failureAction"] as? String == "Enforce")
        let atts = Self.list(verify["attestations"])
        let att = try #require(atts.first)
        #expect(att["predicateType"] as? String == "https://minewatch.dev/attestation/scan/v1")
        let keys = Self.map(Self.map(Self.list(Self.list(att["attestors"]).first?["entries"]).first?["keys"]))
        #expect(Self.map(keys?["rekor"])?["ignoreTlog"] as? Bool == true)
        let conditions = Self.list(Self.list(att["conditions"]).first?["all"])
        // Every field a condition reads is in the predicate `scan --attest` writes.
        let predicate: [String: Any] = ["verdict": "pass", "scanner": ["name": "minewatch"]]
        for c in conditions {
            let key = (c["key"] as? String ?? "").trimmingCharacters(in: CharacterSet(charactersIn: "{} "))
            var v: Any? = predicate
            for part in key.split(separator: ".") { v = (v as? [String: Any])?[String(part)] }
            #expect(v as? String == c["value"] as? String, "\(key)")
        }
    }

    /// The composite action's scan step, run as a runner runs it, against a local registry: SARIF
    /// always; the attestation only on the default branch.
    @Test func githubActionScanStepAttestsOnTheDefaultBranch() throws {
        let action = try #require(try docs("action.yml").first)
        let runs = try #require(Self.map(action["runs"]))
        #expect(runs["using"] as? String == "composite")
        let steps = Self.list(runs["steps"])
        #expect(steps.contains { ($0["uses"] as? String)?.hasPrefix("github/codeql-action/upload-sarif") == true })
        let scanStep = try #require(steps.first { ($0["name"] as? String)?.hasPrefix("Scan") == true })
        let script = try #require(scanStep["run"] as? String)

        let lab = try AttestLab(label: "action")
        defer { lab.stop() }
        let (key, pub) = try lab.keyPair("ci")
        let keyPEM = try String(contentsOfFile: key, encoding: .utf8)
        _ = try lab.dir.file("step.sh", Array(script.utf8))
        func step(ref: String) throws -> Int32 {
            let env = ["MINEWATCH": minewatchBinary(), "IMAGE": lab.benign, "FAIL_ON": "high", "ATTEST_KEY": keyPEM, "PUSH_ATTESTATION": "default-branch",
                       "SARIF": lab.dir.path + "/out.sarif", "INSECURE": "true", "REF": ref, "DEFAULT_BRANCH": "main", "PATH": "/usr/bin:/bin"]
            return try run(["bash", lab.dir.path + "/step.sh"], env: env).status
        }
        #expect(try step(ref: "refs/heads/feature") == 0)
        let sarif = (try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: lab.dir.path + "/out.sarif")))) as? [String: Any]
        #expect(sarif?["runs"] != nil)
        #expect(try minewatch(["verify", "--insecure", "--key", pub, lab.benign]).status == 1, "no attestation off the default branch")
        #expect(try step(ref: "refs/heads/main") == 0)
        let v = try minewatch(["verify", "--insecure", "--key", pub, lab.benign])
        #expect(v.status == 0, "\(v.out) \(v.err)")
    }

    @Test func gitlabJobsAttestOnlyOnTheDefaultBranch() throws {
        let jobs = try #require(try docs("deploy/ci/minewatch.gitlab-ci.yml").first)
        let plain = try #require(Self.map(jobs["minewatch-scan"]))
        let attest = try #require(Self.map(jobs["minewatch-scan-and-attest"]))
        #expect((Self.list(plain["rules"]).first?["if"] as? String)?.contains("!= $CI_DEFAULT_BRANCH") == true)
        #expect((Self.list(attest["rules"]).first?["if"] as? String)?.contains("== $CI_DEFAULT_BRANCH") == true)
        let script = ((attest["script"] as? [String]) ?? []).joined(separator: "\n")
        #expect(script.contains("--attest") && script.contains("--push"))
        // The command lines parse: every option they use exists.
        for line in ((plain["script"] as? [String]) ?? []) + ((attest["script"] as? [String]) ?? []) {
            let words = line.split(separator: " ").map { String($0).replacingOccurrences(of: "\"", with: "") }
            let args = Array(words.dropFirst()).map { $0.hasPrefix("$") ? "x" : $0 }.map { $0.hasPrefix("registry:$") ? "registry:x" : $0 }
            let r = try minewatch(args + ["--help"])
            #expect(r.status == 0, "\(line): \(r.err)")
        }
    }

    /// The README's deploy-time walkthrough, as scripts/demo-admit runs it.
    @Test func readmeWalkthroughDeniesTheMinerAndAdmitsTheAttestedImage() throws {
        try requireTools(["podman", "docker-registry", "openssl", "curl"])
        // The test's own build (scripts/minewatch would run swift build, whose lock swift test holds).
        var env = ProcessInfo.processInfo.environment
        env["MINEWATCH"] = minewatchBinary()
        let r = try run([Self.root + "/scripts/demo-admit"], env: env)
        let out = String(decoding: r.out, as: UTF8.self)
        #expect(r.status == 0, "\(out) \(r.err.suffix(3000))")
        #expect(out.contains("unscanned miner image: {") && out.contains("\"allowed\":false"), "\(out)")
        #expect(r.err.contains("VALID") || out.contains("VALID"), "\(r.err.suffix(2000))")
    }
}
