import Foundation
import MinewatchConfig
import MinewatchCore
import MinewatchModel
import Testing

/// The agent's config file: loaded like the rules (file, line and key on every problem,
/// unknown keys are errors), and exceptions as Falco users write them.
@Suite struct ConfigLoaderTests {
    static let full = """
    interval: 5s
    engine_socket: /run/podman/podman.sock
    include_host: false
    capture: no
    rules: [local.yaml]
    detectors:
      cpu-miner: false
      relay: {enabled: true}
    models:
      relay: {window: 30s, minTargets: 4}
    action: {type: freeze, act_on: critical, dry_run: true}
    outputs:
      queue_size: 500
      jsonl: {path: /var/log/minewatch/alerts.jsonl, telemetry: true}
      ocsf: {path: "-"}
      falcosidekick: {url: "http://falcosidekick.falco:2801/", timeout: 2s, retries: 3}
    metrics_listen: 0.0.0.0:9376
    token_file: token
    exceptions:
      - name: fluent-bit
        reason: ships our logs to the collector
        image: "docker.io/fluent/fluent-bit:*"
        namespace: logging
        labels: {app: fluent-bit}
        detector: [bandwidth-miner]
        destination: [10.20.0.0/16, logs.example.com]
      - name: off
        reason: kept for later
        enabled: false
        container: x
    """

    @Test func everyKeyIsRead() throws {
        let (c, diags) = ConfigLoader.load(yaml: Self.full, file: "/etc/minewatch/minewatch.yaml", baseDirectory: "/etc/minewatch")
        #expect(diags.isEmpty, "\(diags)")
        let config = try #require(c)
        #expect(config.interval == 5)
        #expect(config.engineSocket == "/run/podman/podman.sock")
        #expect(config.capture == false)
        #expect(config.rules == ["/etc/minewatch/local.yaml"])
        #expect(config.detectors == [.cpuMiner: false, .relay: true])
        #expect(config.models["relay", "window"] == 30 && config.models["relay", "minTargets"] == 4)
        #expect(config.action == AgentConfig.Action(type: .freeze, actOn: .critical, dryRun: true))
        #expect(config.outputs.queueSize == 500)
        #expect(config.outputs.jsonl == .init(path: "/var/log/minewatch/alerts.jsonl", telemetry: true))
        #expect(config.outputs.ocsf?.path == "-")
        #expect(config.outputs.falcosidekick == .init(url: "http://falcosidekick.falco:2801/", timeout: 2, retries: 3))
        #expect(config.metricsListen == "0.0.0.0:9376")
        #expect(config.tokenFile == "/etc/minewatch/token")
        // The disabled exception is validated but not in force.
        #expect(config.exceptions.map(\.name) == ["fluent-bit"])
        let e = try #require(config.exceptions.first)
        #expect(e.source == "/etc/minewatch/minewatch.yaml:20")
        #expect(e.detectors == [.bandwidthMiner] && e.namespaces == ["logging"] && e.labels == ["app": "fluent-bit"])
        #expect(e.destinations.map(\.description) == ["10.20.0.0/16", "logs.example.com"])
    }

    @Test func anEmptyFileIsAllDefaults() throws {
        let (c, diags) = ConfigLoader.load(yaml: "# nothing yet\n", file: "m.yaml")
        #expect(diags.isEmpty)
        #expect(c?.interval == nil && c?.exceptions.isEmpty == true)
    }

    @Test func everyProblemHasFileLineAndKey() {
        let yaml = """
        interval: 5x
        colour: red
        detectors: {cpu-miner: maybe, gpu-miner: false}
        action: {type: explode}
        outputs:
          jsonl: {telemetry: true}
          falcosidekick: {url: "ftp://x"}
          syslog: {}
        metrics_listen: everywhere
        models: {relay: {window: soon}}
        exceptions:
          - name: a
            reason: r
          - name: a
            reason: r
            destination: [10.0.0.0/33]
          - reason: no name
            detector: [gpu-miner]
        """
        let (c, diags) = ConfigLoader.load(yaml: yaml, file: "m.yaml")
        #expect(c == nil)
        let text = diags.map(\.description)
        let expected = [
            "m.yaml:1: interval: expected a duration such as 2s, 500ms or 1m, not '5x'",
            "m.yaml:2: colour: unknown key",
            "m.yaml:3: detectors.cpu-miner: expected true or false, not 'maybe'",
            "m.yaml:3: detectors.gpu-miner: unknown detector",
            "m.yaml:4: action.type: expected alert, freeze, kill or stop, not 'explode'",
            "m.yaml:6: outputs.jsonl: needs a path",
            "m.yaml:7: outputs.falcosidekick.url: expected an http:// or https:// URL, not 'ftp://x'",
            "m.yaml:8: outputs.syslog: unknown key",
            "m.yaml:9: metrics_listen: expected host:port",
            "m.yaml:10: models: model 'relay' key 'window': expected a duration",
            "m.yaml:12: exceptions[0]: an exception needs at least one condition",
            "m.yaml:16: exceptions[1].destination: '10.0.0.0/33' is neither a CIDR",
            "m.yaml:14: exceptions[1].name: duplicate exception name 'a' (first at line 12)",
            "m.yaml:17: exceptions[2]: an exception needs a name",
            "m.yaml:18: exceptions[2].detector: unknown detector 'gpu-miner'",
        ]
        for e in expected { #expect(text.contains { $0.hasPrefix(e) }, "missing: \(e)\nin: \(text.joined(separator: "\n"))") }
        #expect(text.count == expected.count, "\(text.joined(separator: "\n"))")
    }

    @Test func yamlSyntaxErrorsHaveALine() {
        let (c, diags) = ConfigLoader.load(yaml: "interval: 2s\nexceptions: [\n  - a\n", file: "m.yaml")
        #expect(c == nil)
        #expect(diags.count == 1 && diags[0].line != nil && diags[0].description.hasPrefix("m.yaml:"), "\(diags)")
    }

    @Test func listenAddresses() {
        #expect(ListenAddress.parse("127.0.0.1:9376")?.isLoopback == true)
        #expect(ListenAddress.parse("[::1]:9376")?.isLoopback == true)
        #expect(ListenAddress.parse("localhost:1")?.isLoopback == true)
        #expect(ListenAddress.parse("0.0.0.0:9376")?.isLoopback == false)
        #expect(ListenAddress.parse(":9376")?.host == "0.0.0.0")
        #expect(ListenAddress.parse("9376") == nil)
        #expect(ListenAddress.parse("example.com:80") == nil)
        #expect(ListenAddress.parse("127.0.0.1:70000") == nil)
    }
}

@Suite struct ExceptionTests {
    static func alert(_ detector: DetectorID = .bandwidthMiner, image: String? = "docker.io/fluent/fluent-bit:3.0", name: String? = "logs",
                      k8s: KubernetesMetadata? = KubernetesMetadata(namespace: "logging", pod: "fluent-bit-x2", container: "fluent-bit"),
                      labels: [String: String]? = ["app": "fluent-bit", "tier": "ops"], evidence: [Evidence], exe: String? = "/fluent-bit/bin/fluent-bit",
                      family: String? = nil) -> Alert {
        let now = Date()
        return Alert(time: now, container: .init(id: String(repeating: "ab", count: 32), name: name, image: image, runtime: "kubernetes", k8s: k8s, labels: labels),
                     detector: detector, severity: .medium, family: family, summary: "s", evidence: evidence, metrics: [:], pid: 7, exe: exe,
                     startedAt: now, detectedAt: now, timeToDetect: 0)
    }

    static func rule(_ yaml: String) throws -> ExceptionRule {
        let (c, d) = ConfigLoader.load(yaml: "exceptions:\n" + yaml, file: "t.yaml")
        #expect(d.isEmpty, "\(d)")
        return try #require(c?.exceptions.first)
    }

    @Test func everyConditionMustMatch() throws {
        let r = try Self.rule("""
          - name: fluent-bit
            reason: ships our logs
            image: "docker.io/fluent/fluent-bit:*"
            namespace: [logging, ops-*]
            labels: {app: fluent-*}
            detector: bandwidth-miner
            destination: [10.20.0.0/16, logs.example.com]
            process: /fluent-bit/bin/*
        """)
        let ev = [Evidence(kind: .pool, name: "destination", value: "10.20.3.4:443 (2.1 MB/s)"),
                  Evidence(kind: .pool, name: "destination", value: "collector.logs.example.com:9200 (1.0 MB/s)"),
                  Evidence(kind: .attribute, name: "with", value: "mirrored")]
        #expect(r.matches(Self.alert(evidence: ev)))
        // Each condition on its own can fail the match.
        #expect(!r.matches(Self.alert(image: "docker.io/library/fluent-bit:3.0", evidence: ev)))
        // Docker reports the image as it was typed.
        #expect(r.matches(Self.alert(image: "fluent/fluent-bit:3.0", evidence: ev)))
        #expect(ExceptionRule.qualified("busybox:1") == "docker.io/library/busybox:1" && ExceptionRule.qualified("quay.io/x/y:1") == "quay.io/x/y:1")
        #expect(ExceptionRule.qualified("localhost/mw:1") == "localhost/mw:1" && ExceptionRule.qualified("*fluent*") == "*fluent*")
        #expect(!r.matches(Self.alert(k8s: KubernetesMetadata(namespace: "default", pod: "p", container: "c"), evidence: ev)))
        #expect(!r.matches(Self.alert(labels: ["app": "xmrig"], evidence: ev)))
        #expect(!r.matches(Self.alert(.minerProcess, evidence: ev)))
        #expect(!r.matches(Self.alert(evidence: ev, exe: "/tmp/xmrig")))
        // Every destination must be allowed: one more outside the list and it is not silenced.
        #expect(!r.matches(Self.alert(evidence: ev + [Evidence(kind: .pool, name: "destination", value: "203.0.113.9:3333 (1 MB/s)")])))
        // No destination named: a destination condition does not match.
        #expect(!r.matches(Self.alert(evidence: [])))
    }

    @Test func destinationsFromEveryDetectorsEvidence() {
        let a = Self.alert(evidence: [
            Evidence(kind: .pool, name: "pool", value: "stratum+tcp://pool.example.org:3333"),
            Evidence(kind: .pool, name: "connection", value: "[2001:db8::7]:4444"),
            Evidence(kind: .pool, name: "vendor", value: "198.18.1.130:443"),
            Evidence(kind: .pool, name: "grass.io", value: "SNI"),
            Evidence(kind: .attribute, name: "with", value: "10.0.0.1:80"),
        ])
        #expect(a.destinationHosts == ["pool.example.org", "2001:db8::7", "198.18.1.130", "grass.io"])
    }

    @Test func cidrsAndDomains() throws {
        #expect(CIDR.parse("10.20.0.0/16")?.contains(try #require(IPAddress("10.20.255.1"))) == true)
        #expect(CIDR.parse("10.20.0.0/16")?.contains(try #require(IPAddress("10.21.0.1"))) == false)
        #expect(CIDR.parse("192.0.2.7")?.contains(try #require(IPAddress("192.0.2.7"))) == true)
        #expect(CIDR.parse("2001:db8::/32")?.contains(try #require(IPAddress("2001:db8:1::5"))) == true)
        #expect(CIDR.parse("2001:db8::/32")?.contains(try #require(IPAddress("10.0.0.1"))) == false)
        #expect(CIDR.parse("10.0.0.0/8")?.contains(try #require(IPAddress("10.200.0.1"))) == true)
        #expect(CIDR.parse("10.0.0.0/8")?.contains(try #require(IPAddress("11.0.0.1"))) == false)
        #expect(CIDR.parse("0.0.0.0/0")?.contains(try #require(IPAddress("2001:db8::1"))) == false)
        #expect(CIDR.parse("198.18.1.7")?.contains(try #require(IPAddress("198.18.1.7"))) == true)
        #expect(CIDR.parse("0.0.0.0/0")?.contains(try #require(IPAddress("::1"))) == false)
        #expect(CIDR.parse("10.0.0.0/33") == nil && CIDR.parse("x/8") == nil)
        #expect(ExceptionRule.covers(.domain("example.com"), "a.b.example.com"))
        #expect(!ExceptionRule.covers(.domain("example.com"), "badexample.com"))
        #expect(ExceptionRule.covers(.domain("*.s3.amazonaws.com"), "bucket.s3.amazonaws.com"))
        #expect(Glob.match("a*b?d", "axxbcd") && !Glob.match("a*b?d", "axxbd") && Glob.match("*", ""))
    }

    @Test func silencedAlertsAreCountedAndReloadKeepsCounts() throws {
        let r = try Self.rule("""
          - name: backup
            reason: nightly restic to our bucket
            container: backup-*
            detector: [bandwidth-miner, relay]
        """)
        var set = ExceptionSet([r])
        let hit = Self.alert(name: "backup-nightly", evidence: [])
        #expect(set.silence(hit)?.name == "backup")
        #expect(set.silence(Self.alert(.minerProcess, name: "backup-nightly", evidence: [])) == nil)
        #expect(set.silence(hit)?.name == "backup")
        #expect(set.hits == ["backup": 2])
        var other = r
        other.name = "other"
        set.replace(with: [r, other])
        #expect(set.hits == ["backup": 2])
        set.replace(with: [other])
        #expect(set.hits.isEmpty)
    }
}
