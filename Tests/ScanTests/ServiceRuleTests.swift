import Foundation
import MinewatchCore
import MinewatchImage
import MinewatchSignatures
import Testing
import TestSupport

/// Proxyware and DePIN services by what they are: rule data for their images, arguments,
/// environment and files; high where it is what runs (a manifest, an image's entrypoint),
/// medium for a leftover or a name; T1496.002 everywhere, T1496.001 for compute miners.
@Suite struct ServiceRuleTests {
    @Test func dockerfileComposeAndKubernetesManifestsWithLines() throws {
        let dockerfile = """
            # syntax=docker/dockerfile:1
            ARG TAG=latest
            FROM traffmonetizer/cli_v2:${TAG}
            WORKDIR /app
            CMD ["start", "accept", "--token", "cXVpY2stYnJvd24tZm94LTEyMzQ1Ng=="]

            """
        let d = try scanFile(Array(dockerfile.utf8), name: "Dockerfile.prod")
        let tm = try #require(d.finding("MW-BW-TRAFFMONETIZER"))
        #expect(tm.severity == .high && tm.family == "traffmonetizer" && tm.technique == "T1496.002")
        #expect(tm.line == 3)
        #expect(tm.evidence.contains { $0.value.contains("cXVpY2stYnJvd24tZm94LTEyMzQ1Ng==") && $0.line == 5 }, "the token: \(tm.evidence)")
        let compose = """
            services:
              web:
                image: nginx:1.25
              hg:
                image: honeygain/honeygain:latest
                command: -tou-accept -email someone@example.com -pass secret -device n1
              miner:
                image: docker.io/metal3d/xmrig:latest

            """
        let c = try scanFile(Array(compose.utf8), name: "docker-compose.yml")
        let hg = try #require(c.finding("MW-BW-HONEYGAIN"))
        #expect(hg.severity == .high && hg.line == 5)
        #expect(hg.evidence.contains { $0.value == "-email someone@example.com" })
        let miner = try #require(c.finding("MW-IMG-MINER-IMAGE"))
        #expect(miner.severity == .high && miner.line == 8 && miner.technique == "T1496.001")
        let k8s = """
            apiVersion: apps/v1
            kind: DaemonSet
            metadata:
              name: node-agent
            spec:
              template:
                spec:
                  containers:
                    - name: agent
                      image: repocket/repocket
                      env:
                        - name: RP_EMAIL
                          value: someone@example.com
                        - name: RP_API_KEY
                          value: 00000000-1111-2222-3333-444444444444

            """
        let k = try scanFile(Array(k8s.utf8), name: "agent.yaml")
        let rp = try #require(k.finding("MW-BW-REPOCKET"))
        #expect(rp.severity == .high && rp.line == 10)
        let benign = """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
            spec:
              containers:
                - name: web
                  image: nginx:1.25
                  env:
                    - name: EMAIL
                      value: ops@example.com

            """
        #expect(try scanFile(Array(benign.utf8), name: "web.yaml").findings.isEmpty)
    }

    @Test func manifestsAreRecognisedByContent() {
        func kind(_ s: String) -> ManifestKind? { Array(s.utf8).withUnsafeBytes { ManifestKind.detect($0) } }
        #expect(kind("FROM alpine\nRUN apk add curl\nCMD [\"sh\"]\n") == .dockerfile)
        #expect(kind("# comment\nARG V=1\nFROM debian:${V}\nRUN true \\\n  && echo\n") == .dockerfile)
        #expect(kind("services:\n  a:\n    image: x\n") == .compose)
        #expect(kind("apiVersion: v1\nkind: ConfigMap\ndata:\n  a: b\n") == .kubernetes)
        #expect(kind("from the start, this is prose\nand more prose\n") == nil)
        #expect(kind("services:\n  - dns\n  - ntp\n") == nil, "a YAML list of services is not a compose file")
        #expect(kind("{\"apiVersion\": 1}") == nil)
    }

    @Test func whatTheImageRunsIsHighALeftoverIsMedium() throws {
        // The official image layout: /app/honeygain run from WORKDIR /app as ./honeygain.
        let elf = Samples.elf(["honeygain client", "plain"])
        var img = ImageBuilder(layers: [layer { t in
            t.file("app/honeygain", elf, mode: 0o755)
            t.file("usr/lib/libhg.so", elf)
        }])
        img.entrypoint = ["./honeygain"]
        img.workingDir = "/app"
        let r = try scanArchive(img.dockerArchive())[0]
        let bin = try #require(r.finding("MW-BW-HONEYGAIN-FILE", at: "/app/honeygain"))
        #expect(bin.severity == .high && bin.note?.contains("entrypoint") == true)
        #expect(r.finding("MW-BW-HONEYGAIN-FILE", at: "/usr/lib/libhg.so")?.severity == .medium, "a library is not what runs")
        // The same binary left in an image that runs something else.
        var other = ImageBuilder(layers: [layer { t in t.file("opt/hg/honeygain", elf, mode: 0o755); t.file("usr/bin/web", Samples.elf(["plain"])) }])
        other.entrypoint = ["web"]
        other.env = ["PATH=/usr/local/bin:/usr/bin"]
        let o = try scanArchive(other.dockerArchive())[0]
        #expect(o.finding("MW-BW-HONEYGAIN-FILE")?.severity == .medium)
        // Arguments and environment of the config are what runs.
        var cfg = ImageBuilder(layers: [layer { t in t.file("etc/hostname", "x\n") }])
        cfg.entrypoint = ["/usr/bin/tini", "--", "/app/Cli"]
        cfg.cmd = ["start", "accept", "--token", "abcdef123456"]
        cfg.env = ["EARNFM_TOKEN=0f0f0f0f"]
        let m = try scanArchive(cfg.dockerArchive())[0]
        #expect(m.finding("MW-BW-TRAFFMONETIZER", at: "config:Entrypoint+Cmd")?.severity == .high)
        #expect(m.finding("MW-BW-EARNFM", at: "config:Env")?.severity == .high)
    }

    @Test func runPathsFollowWrappersShellsAndInterpreters() {
        var c = ImageConfigInfo()
        c.entrypoint = ["/sbin/tini", "-g", "--"]
        c.cmd = ["sh", "-c", "exec ./svc --flag"]
        c.workingDir = "/srv/app"
        #expect(c.runPaths.contains("/srv/app/svc"))
        c.entrypoint = ["node"]
        c.cmd = ["--max-old-space-size=64", "annmine.js", "--paymentAddr", "pkt1"]
        #expect(c.runPaths.contains("/srv/app/annmine.js") && c.runPaths.contains("/usr/bin/node"))
        c.entrypoint = []
        c.cmd = ["xmrig"]
        c.env = ["PATH=/opt/bin"]
        #expect(c.runPaths == ["/opt/bin/xmrig"])
    }

    @Test func everyServiceRuleIsBandwidthHijackingWithDomainsOrStrings() throws {
        let set = BundledRules.load().0
        let services = set.rules.filter { $0.category == "bandwidth-hijacking" }
        #expect(services.count >= 40, "\(services.count)")
        #expect(services.allSatisfy { $0.technique == "T1496.002" })
        #expect(set.rules.filter { $0.category.hasPrefix("miner-") }.allSatisfy { $0.technique == "T1496.001" || $0.family == "packetcrypt" })
        #expect(set.serviceRule(for: "proxy.wynd.network")?.rule.family == "grass")
        #expect(set.serviceRule(for: "API.Honeygain.com.")?.domain == "honeygain.com")
        #expect(set.serviceRule(for: "nothoneygain.com") == nil)
        #expect(set.environmentKeys.isSuperset(of: ["RP_API_KEY", "EARNAPP_UUID", "POOL_URL"]))
    }

    @Test func serviceRuleDataIsValidated() {
        let yaml = """
            version: 1
            rules:
              - id: X-SVC
                title: a service
                category: bandwidth-hijacking
                severity: medium
                runs: urgent
                technique: 1496
                domains: [ok.example, "not a domain"]
            process:
              environment: [GOOD_NAME, "bad name"]

            """
        let out = RuleLoader().load(yaml: yaml, file: "svc.yaml")
        let text = out.diagnostics.map(\.description)
        #expect(text.contains { $0.hasPrefix("svc.yaml:7: rule X-SVC:") && $0.contains("'runs' must be a severity") }, "\(text)")
        #expect(text.contains { $0.hasPrefix("svc.yaml:8:") && $0.contains("MITRE ATT&CK") })
        #expect(text.contains { $0.hasPrefix("svc.yaml:9:") && $0.contains("not a domain name") })
        #expect(text.contains { $0.hasPrefix("svc.yaml:11:") && $0.contains("environment variable name") })
    }
}
