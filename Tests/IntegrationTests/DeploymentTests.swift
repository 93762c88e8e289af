import Foundation
import Testing
import TestSupport
import Yams

/// The deployment artifacts: deploy/kubernetes/minewatch.yaml is a consistent manifest whose
/// agent config `minewatch config validate` accepts, and the image scripts/build-image assembles
/// runs the agent the way the DaemonSet does (host pid namespace, the manifest's capabilities and
/// arguments, a read-only root filesystem, the host's cgroup tree) and alerts on a mining sibling
/// container but not on benign ones.
@Suite(.serialized) struct DeploymentTests {
    @Test func manifestsAreValid() throws {
        let manifest = try DeploymentManifest(path: manifestPath)
        let kinds = manifest.documents.compactMap { $0["kind"] as? String }
        #expect(Set(kinds).isSuperset(of: ["Namespace", "ServiceAccount", "ConfigMap", "DaemonSet"]), "\(kinds)")
        let namespace = try #require(mapping(manifest.first("Namespace")?["metadata"])?["name"] as? String)
        for doc in manifest.documents {
            let meta = mapping(doc["metadata"]) ?? [:]
            let what = "\(doc["kind"] ?? "?") \(meta["name"] ?? "?")"
            #expect(!((doc["apiVersion"] as? String) ?? "").isEmpty, "\(what): no apiVersion")
            #expect(!((doc["kind"] as? String) ?? "").isEmpty, "\(what): no kind")
            #expect(!((meta["name"] as? String) ?? "").isEmpty, "\(what): no metadata.name")
            if doc["kind"] as? String != "Namespace" {
                #expect(meta["namespace"] as? String == namespace, "\(what): not in namespace \(namespace)")
            }
        }

        // The DaemonSet selects its own pods and runs them as the manifest's service account.
        let ds = manifest.daemonSet
        let selector = stringMap(mapping(mapping(ds["spec"])?["selector"])?["matchLabels"])
        let podLabels = stringMap(mapping(manifest.podTemplate["metadata"])?["labels"])
        #expect(!selector.isEmpty && selector == podLabels, "selector \(selector) vs template labels \(podLabels)")
        let serviceAccount = mapping(manifest.first("ServiceAccount")?["metadata"])?["name"] as? String
        #expect(manifest.podSpec["serviceAccountName"] as? String == serviceAccount)
        #expect(manifest.podSpec["hostPID"] as? Bool == true, "the agent reads every process's /proc/<pid>")

        // Least privilege instead of privileged: drop ALL, add exactly the documented set.
        let agent = manifest.agent
        try #require(!agent.isEmpty, "no container named minewatch")
        let security = mapping(agent["securityContext"]) ?? [:]
        let privileged = security["privileged"] as? Bool
        #expect(!security.keys.contains("privileged") || privileged == false, "privileged: \(security["privileged"] ?? "")")
        #expect(security["readOnlyRootFilesystem"] as? Bool == true)
        let caps = mapping(security["capabilities"]) ?? [:]
        #expect(strings(caps["drop"]) == ["ALL"], "\(caps)")
        let added = strings(caps["add"])
        #expect(Set(added) == agentCapabilities && added.count == agentCapabilities.count, "capabilities.add \(added)")

        // Every mount names a declared volume and every volume is mounted.
        let mountNames = manifest.mounts.compactMap { $0["name"] as? String }
        let volumeNames = manifest.volumes.compactMap { $0["name"] as? String }
        #expect(Set(mountNames).count == mountNames.count && Set(volumeNames).count == volumeNames.count, "duplicate names: \(mountNames) \(volumeNames)")
        #expect(Set(mountNames) == Set(volumeNames), "mounts \(mountNames) vs volumes \(volumeNames)")

        // Host state: the cgroup tree writable (freeze), runtime state read-only, no /proc mount
        // (hostPID gives the host's /proc).
        #expect(manifest.source(of: "/sys/fs/cgroup") == PodFile.writable(volume: manifest.volumeName(hostPath: "/sys/fs/cgroup") ?? "?"))
        #expect(manifest.source(of: "/run/containers/storage/overlay-containers") == PodFile.host(path: "/run/containers/storage/overlay-containers", readOnly: true))
        let task = "/run/containerd/io.containerd.runtime.v2.task/k8s.io"
        #expect(manifest.source(of: task) == PodFile.host(path: task, readOnly: true), "\(manifest.source(of: task))")
        #expect(!manifest.mounts.contains { ($0["mountPath"] as? String)?.hasPrefix("/proc") == true })
        #expect(manifest.volumeName(hostPath: "/proc") == nil)

        // The arguments name the config file that the ConfigMap puts in the container.
        let args = strings(agent["args"])
        try #require(args.count == 3 && args[0] == "watch" && args[1] == "--config", "args \(args)")
        let configPath = args[2]
        let configSource = manifest.source(of: configPath)
        guard case .configMap(let cmName, let cmKey) = configSource else {
            Issue.record("\(configPath) is not a ConfigMap file in the container: \(configSource)")
            return
        }
        let data = try #require(manifest.configMap(cmName), "ConfigMap \(cmName) is not in the manifest")
        let configText = try #require(data[cmKey], "ConfigMap \(cmName) has no key \(cmKey)")
        let config = try #require(mapping(try Yams.load(yaml: configText)), "\(cmKey) is not a mapping")

        // Every path the config names is there in the container: the token from the required
        // Secret, rule files from the ConfigMap, the OCSF log on a writable volume.
        let tokenFile = try #require(config["token_file"] as? String, "metrics off loopback need a token_file")
        #expect(manifest.source(of: tokenFile) == PodFile.secret(name: "minewatch-token", key: "token", required: true), "\(tokenFile): \(manifest.source(of: tokenFile))")
        let ruleFiles = strings(config["rules"]) + ((config["rules"] as? String).map { [$0] } ?? [])
        for rules in ruleFiles {
            guard case .configMap(let n, let k) = manifest.source(of: rules) else {
                Issue.record("rule file \(rules) is not provided by a ConfigMap: \(manifest.source(of: rules))")
                continue
            }
            #expect(manifest.configMap(n)?[k] != nil, "rule file \(rules): ConfigMap \(n) has no key \(k)")
        }
        let outputs = mapping(config["outputs"]) ?? [:]
        #expect(mapping(outputs["jsonl"])?["path"] as? String == "-", "alerts on stdout (kubectl logs)")
        if let ocsf = mapping(outputs["ocsf"])?["path"] as? String, ocsf != "-" {
            let ocsfDir = (ocsf as NSString).deletingLastPathComponent
            let holder = manifest.source(of: ocsfDir)
            if case .writable = holder {} else {
                Issue.record("OCSF output folder \(ocsfDir) is not on a writable volume (the root is read-only): \(holder)")
            }
        }
        if let socket = config["engine_socket"] as? String {
            #expect(manifest.source(of: socket) != PodFile.absent, "engine_socket \(socket) is not mounted")
        }

        // Metrics: the listen port is the container's metrics port and the scrape annotations'.
        let listen = try #require(config["metrics_listen"] as? String)
        let port = String(listen.split(separator: ":").last ?? "")
        let annotations = stringMap(mapping(manifest.podTemplate["metadata"])?["annotations"])
        #expect(annotations["prometheus.io/scrape"] == "true")
        #expect(annotations["prometheus.io/port"] == port, "\(annotations) vs metrics_listen \(listen)")
        #expect(annotations["prometheus.io/path"] == "/metrics")
        let ports = list(agent["ports"]).compactMap { mapping($0) }
        #expect(ports.contains { ($0["containerPort"] as? Int).map { String($0) } == port }, "\(ports)")

        // Scheduling and resources.
        let tolerations = list(manifest.podSpec["tolerations"]).compactMap { mapping($0) }
        #expect(tolerations.contains { $0["key"] as? String == "node-role.kubernetes.io/control-plane" && $0["effect"] as? String == "NoSchedule" })
        let resources = mapping(agent["resources"]) ?? [:]
        #expect(stringMap(resources["requests"]) == ["cpu": "100m", "memory": "64Mi"], "\(resources)")
        #expect(stringMap(resources["limits"]) == ["cpu": "500m", "memory": "128Mi"], "\(resources)")

        // minewatch accepts the config as the pod sees it: the projected files written below a
        // temporary root (the ConfigMap's keys, a token for the Secret), the config's paths moved
        // there with them, the writable volumes' folders made.
        let dir = try TempDir("deploy-config")
        defer { dir.cleanup() }
        let mountPaths = manifest.mounts.compactMap { $0["mountPath"] as? String }
        for mp in mountPaths { try FileManager.default.createDirectory(atPath: dir.path + mp, withIntermediateDirectories: true) }
        for (path, source) in manifest.projectedFiles {
            switch source {
            case .configMap(let n, let k):
                let content = try #require(manifest.configMap(n)?[k], "\(path): ConfigMap \(n) has no key \(k)")
                _ = try dir.file(String(path.dropFirst()), Array(rerooted(content, under: dir.path, prefixes: mountPaths).utf8))
            case .secret:
                _ = try dir.file(String(path.dropFirst()), Array("0123456789abcdef0123456789abcdef\n".utf8), mode: 0o400)
            default: break
            }
        }
        let podConfig = dir.path + configPath
        let validated = try minewatch(["config", "validate", podConfig])
        #expect(validated.status == 0, "config validate \(configPath) (ConfigMap \(cmName), key \(cmKey)): \(validated.err)")
        for rules in ruleFiles {
            let r = try minewatch(["rules", "validate", dir.path + rules])
            #expect(r.status == 0, "rules validate \(rules): \(r.out) \(r.err)")
        }
        // The validator does validate: an unknown key is reported with its file and line.
        let bad = configText.hasSuffix("\n") ? configText + "bogus_key: 1\n" : configText + "\nbogus_key: 1\n"
        let badLine = bad.split(separator: "\n", omittingEmptySubsequences: false).count - 1
        let badPath = try dir.file("bad-minewatch.yaml", Array(rerooted(bad, under: dir.path, prefixes: mountPaths).utf8))
        let rejected = try minewatch(["config", "validate", badPath])
        #expect(rejected.status != 0 && rejected.err.contains("\(badPath):\(badLine):"), "\(rejected.status): \(rejected.err)")

        // The image's own default config (scripts/build-image, Containerfile) is valid on its own.
        let imageDefault = try minewatch(["config", "validate", repositoryRoot + "/deploy/minewatch.yaml"])
        #expect(imageDefault.status == 0, "deploy/minewatch.yaml: \(imageDefault.err)")
    }

    @Test func agentInAContainerAlertsOnMiningSibling() throws {
        try Podman.require()
        try prerequisite(getuid() == 0, "root is required under CI=true: the agent shares the host's pid namespace")
        // Run as the DaemonSet runs it: its capabilities and its arguments.
        let manifest = try DeploymentManifest(path: manifestPath)
        let caps = strings(mapping(mapping(manifest.agent["securityContext"])?["capabilities"])?["add"])
        let args = strings(manifest.agent["args"])
        try #require(!caps.isEmpty && args.count == 3 && args[1] == "--config", "manifest: caps \(caps), args \(args)")
        let configDir = (args[2] as NSString).deletingLastPathComponent
        let configName = (args[2] as NSString).lastPathComponent

        let dir = try TempDir("deploy")
        defer { dir.cleanup() }
        let suffix = UUID().uuidString.prefix(8).lowercased()
        let tag = "localhost/mw-agent-test:\(suffix)"
        defer { Podman.removeImage(tag) }
        let built = try TestSupport.run(["bash", repositoryRoot + "/scripts/build-image", "--binary", minewatchBinary(), "--tag", tag])
        try #require(built.status == 0, "scripts/build-image: \(built.err)")
        #expect(String(decoding: built.out, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) == tag, "stdout is the tag")

        // The bundled rules are in the image (found where BundledRules looks for installed copies).
        let listed = try TestSupport.run(["podman", "--cgroup-manager=cgroupfs", "run", "--rm", "--runtime", "runc", "--network", "none",
                                          "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", "--read-only", tag, "rules", "list"])
        let lastLine = String(decoding: listed.out, as: UTF8.self).split(separator: "\n").last ?? ""
        let bundled = Int(lastLine.split(separator: " ").first ?? "") ?? 0
        #expect(listed.status == 0 && bundled > 0, "rules list in the image: \(lastLine) \(listed.err)")

        // The agent's config: no content rules (the workload binary carries Stratum strings that
        // the bundled rules would name in every container that runs it), so only behaviour counts.
        let config = """
        interval: 1s
        include_host: false
        capture: false
        bundled_rules: false
        rules: [\(configDir)/rules.d/behaviour-only.yaml]
        outputs:
          jsonl: {path: "-", telemetry: true}

        """
        _ = try dir.file("etc/\(configName)", Array(config.utf8))
        _ = try dir.file("etc/rules.d/behaviour-only.yaml", Array(try Data(contentsOf: URL(fileURLWithPath: fixturePath("behaviour-only-rules.yaml")))))

        let lab = try WorkloadLab("deploy", dir: dir, run: suffix)
        defer { lab.cleanup() }
        try lab.createNetwork(subnet: "198.18.1.224/27")
        let pool = try lab.start("pool", ip: "198.18.1.230", ["stratum-pool", "--listen", "198.18.1.230:3333", "--dialect", "bitcoin", "--target", "ffffffff", "--duration", "90"])
        let web = try lab.start("web", ip: "198.18.1.231", ["http-server", "--listen", "198.18.1.231:80", "--duration", "90"])

        // The agent: host pid and cgroup namespaces, the manifest's capabilities, a read-only root,
        // the host's cgroup tree writable, runtime state read-only, the config folder read-only.
        var runtimeState: [String] = []
        for path in ["/run/containers/storage", "/run/containerd/io.containerd.runtime.v2.task"] where FileManager.default.fileExists(atPath: path) {
            runtimeState += ["-v", "\(path):\(path):ro"]
        }
        // A private cgroup namespace, as containerd gives an unprivileged pod container on cgroup
        // v2: the agent joins pid 1's (hostPID, CAP_SYS_ADMIN) so other containers' cgroup paths
        // are absolute.
        var agentArgs: [String] = ["--pid=host", "--cgroupns=private", "--cap-drop=ALL"]
        agentArgs += caps.map { "--cap-add=\($0)" }
        agentArgs += ["--security-opt", "label=disable", "--read-only", "-v", "/sys/fs/cgroup:/sys/fs/cgroup"]
        agentArgs += runtimeState
        agentArgs += ["-v", "\(dir.path)/etc:\(configDir):ro"]
        let agent = try lab.container("agent", network: "none", options: agentArgs, command: [tag] + args + ["--duration", "90"])
        func agentLogs() -> (alerts: [[String: Any]], telemetry: [[String: Any]], err: String) {
            guard let r = try? TestSupport.run(["podman", "logs", agent]) else { return ([], [], "") }
            let records = String(decoding: r.out, as: UTF8.self).split(separator: "\n")
                .compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            return (records.filter { $0["type"] as? String != "telemetry" }, records.filter { $0["type"] as? String == "telemetry" }, r.err)
        }
        usleep(2_000_000)
        try #require(Podman.inspect(agent, "{{.State.Running}}") == "true", "the agent exited: \(agentLogs().err)")

        let api = try lab.start("api", ["api-client", "--url", "http://198.18.1.231/api", "--rps", "5", "--duration", "90"])
        let wallet = "1BoatSLRHtKNngkdXEeobR76b53LETtpyT"
        let miner = try lab.start("miner", options: ["--cpus", "0.25"], ["stratum-miner", "--pool", "198.18.1.230:3333", "--dialect", "bitcoin", "--wallet", wallet, "--duration", "90"])
        let minerStarted = Podman.startedAt(miner) ?? Date()

        // Until the miner is alerted and the benign containers have had 10 s to be (wrongly) alerted
        // too; bounded at 40 s.
        let deadline = Date().addingTimeInterval(40)
        while Date() < deadline {
            if agentLogs().alerts.contains(where: { $0.containerID == miner }) && Date().timeIntervalSince(minerStarted) >= 10 { break }
            if Podman.inspect(agent, "{{.State.Running}}") != "true" { break }
            usleep(1_000_000)
        }
        // SIGTERM, as the kubelet stops a pod: the agent writes what it has and exits 0.
        _ = try? TestSupport.run(["podman", "stop", "-t", "10", agent])
        #expect(Podman.inspect(agent, "{{.State.ExitCode}}") == "0", "exit status \(Podman.inspect(agent, "{{.State.ExitCode}}"))")
        let (alerts, telemetry, err) = agentLogs()
        #expect(err.contains("alerts raised"), "the agent's summary line is missing: \(err)")
        #expect(err.contains("joined the host's cgroup namespace"), "\(err)")

        let forMiner = alerts.filter { $0.containerID == miner }
        let detectors = Set(forMiner.compactMap { $0["detector"] as? String })
        let summaries = alerts.map { a -> String in
            let id = a.containerID.map { String($0.prefix(12)) } ?? "?"
            return id + " " + String(describing: a["summary"] ?? "")
        }
        let contact = try #require(forMiner.first { $0["detector"] as? String == "pool-contact" },
                                   "no pool-contact alert for the miner \(miner.prefix(12)): \(summaries) \(err)")
        #expect(contact["severity"] as? String == "low")
        #expect((contact["evidence"] as? [[String: Any]])?.contains { $0["value"] as? String == "198.18.1.230:3333" } == true, "\(contact)")
        #expect(detectors.isSubset(of: ["pool-contact", "cpu-miner", "miner-process", "mining-protocol"]), "\(detectors)")
        let detected = ISO8601DateFormatter().date(from: contact["detectedAt"] as? String ?? "") ?? .distantFuture
        #expect(detected.timeIntervalSince(minerStarted) <= 10, "pool contact alerted \(detected.timeIntervalSince(minerStarted)) s after the miner started")
        for (role, id) in [("pool", pool), ("web server", web), ("API client", api), ("agent", agent)] {
            let mine = alerts.filter { $0.containerID == id }
            #expect(mine.isEmpty, "\(role) alerted: \(mine.map { $0["summary"] ?? "" })")
        }
        // The host's cgroup tree is read from inside the agent's container: the miner's CPU limit
        // and memory are in its telemetry.
        let minerTelemetry = telemetry.filter { $0.containerID == miner }
        #expect(minerTelemetry.contains { ($0["cpuLimitCores"] as? Double) == 0.25 && $0["memoryBytes"] != nil },
                "miner telemetry without cgroup figures: \(minerTelemetry.last ?? [:])")
    }
}

/// The repository's root (this file is Tests/IntegrationTests/DeploymentTests.swift).
private let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().path
private let manifestPath = repositoryRoot + "/deploy/kubernetes/minewatch.yaml"

/// The capabilities the agent needs (the manifest says why, one by one).
private let agentCapabilities: Set<String> = ["SYS_PTRACE", "SYS_ADMIN", "NET_ADMIN", "NET_RAW", "KILL", "DAC_READ_SEARCH"]

/// A YAML mapping as [String: Any] (Yams gives [AnyHashable: Any]).
private func mapping(_ v: Any?) -> [String: Any]? {
    guard let v, let d = v as? [AnyHashable: Any] else { return nil }
    var out: [String: Any] = [:]
    for (k, x) in d { out[String(describing: k.base)] = x }
    return out
}

private func list(_ v: Any?) -> [Any] { (v as? [Any]) ?? [] }
private func strings(_ v: Any?) -> [String] { list(v).compactMap { $0 as? String } }
private func stringMap(_ v: Any?) -> [String: String] { (mapping(v) ?? [:]).compactMapValues { $0 as? String } }

/// `text` with every path below one of `prefixes` moved below `root` (each occurrence once,
/// longest prefix first).
private func rerooted(_ text: String, under root: String, prefixes: [String]) -> String {
    let sorted = Set(prefixes).sorted { $0.count > $1.count }
    var t = text
    for (i, p) in sorted.enumerated() { t = t.replacingOccurrences(of: p + "/", with: "\u{1}\(i)\u{1}/") }
    for (i, p) in sorted.enumerated() { t = t.replacingOccurrences(of: "\u{1}\(i)\u{1}/", with: root + p + "/") }
    return t
}

/// What the agent container finds at a path, from its mounts and their volumes.
private enum PodFile: Equatable, CustomStringConvertible {
    case configMap(name: String, key: String)
    case secret(name: String, key: String, required: Bool)
    /// A writable folder (a hostPath or emptyDir mounted read-write).
    case writable(volume: String)
    /// A host path mounted read-only.
    case host(path: String, readOnly: Bool)
    case absent

    var description: String {
        switch self {
        case .configMap(let n, let k): "ConfigMap \(n) key \(k)"
        case .secret(let n, let k, let r): "Secret \(n) key \(k)\(r ? "" : " (optional)")"
        case .writable(let v): "writable volume \(v)"
        case .host(let p, let ro): "host \(p)\(ro ? " (read-only)" : "")"
        case .absent: "nothing mounted"
        }
    }
}

/// deploy/kubernetes/minewatch.yaml: its documents, and the agent container's view of its volumes.
private struct DeploymentManifest {
    let documents: [[String: Any]]

    init(path: String) throws {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        var seq = try Yams.load_all(yaml: text)
        var docs: [[String: Any]] = []
        var index = 0
        while let doc = seq.next() {
            index += 1
            if let m = mapping(doc) { docs.append(m) } else { Issue.record("document \(index) of \(path) is not a mapping: \(doc)") }
        }
        if let error = seq.error { throw error }
        documents = docs
    }

    func first(_ kind: String) -> [String: Any]? { documents.first { $0["kind"] as? String == kind } }
    var daemonSet: [String: Any] { first("DaemonSet") ?? [:] }
    var podTemplate: [String: Any] { mapping(mapping(daemonSet["spec"])?["template"]) ?? [:] }
    var podSpec: [String: Any] { mapping(podTemplate["spec"]) ?? [:] }
    var agent: [String: Any] { list(podSpec["containers"]).compactMap { mapping($0) }.first { $0["name"] as? String == "minewatch" } ?? [:] }
    var volumes: [[String: Any]] { list(podSpec["volumes"]).compactMap { mapping($0) } }
    var mounts: [[String: Any]] { list(agent["volumeMounts"]).compactMap { mapping($0) } }

    /// A ConfigMap's data, when the manifest has it.
    func configMap(_ name: String) -> [String: String]? {
        documents.first { $0["kind"] as? String == "ConfigMap" && mapping($0["metadata"])?["name"] as? String == name }
            .map { stringMap($0["data"]) }
    }

    func volumeName(hostPath: String) -> String? {
        volumes.first { mapping($0["hostPath"])?["path"] as? String == hostPath }?["name"] as? String
    }

    /// The files a ConfigMap, Secret or projected volume puts in its folder, by path in it.
    func files(ofVolume v: [String: Any]) -> [String: PodFile] {
        var out: [String: PodFile] = [:]
        func addConfigMap(_ cm: [String: Any]) {
            let name = cm["name"] as? String ?? ""
            let items = list(cm["items"]).compactMap { mapping($0) }
            if items.isEmpty {
                for key in (configMap(name) ?? [:]).keys { out[key] = .configMap(name: name, key: key) }
            }
            for item in items {
                if let key = item["key"] as? String, let path = item["path"] as? String { out[path] = .configMap(name: name, key: key) }
            }
        }
        func addSecret(_ secret: [String: Any], name: String) {
            let required = (secret["optional"] as? Bool) != true
            for item in list(secret["items"]).compactMap({ mapping($0) }) {
                if let key = item["key"] as? String, let path = item["path"] as? String { out[path] = .secret(name: name, key: key, required: required) }
            }
        }
        if let cm = mapping(v["configMap"]) { addConfigMap(cm) }
        if let s = mapping(v["secret"]) { addSecret(s, name: s["secretName"] as? String ?? "") }
        if let projected = mapping(v["projected"]) {
            for source in list(projected["sources"]).compactMap({ mapping($0) }) {
                if let cm = mapping(source["configMap"]) { addConfigMap(cm) }
                if let s = mapping(source["secret"]) { addSecret(s, name: s["name"] as? String ?? "") }
            }
        }
        return out
    }

    /// What the agent finds at `path`: the deepest mount that holds it and what its volume puts there.
    func source(of path: String) -> PodFile {
        var best: (mount: [String: Any], mountPath: String)?
        for m in mounts {
            guard let mp = m["mountPath"] as? String else { continue }
            let under = path == mp || path.hasPrefix(mp.hasSuffix("/") ? mp : mp + "/")
            if under && mp.count > (best?.mountPath.count ?? -1) { best = (m, mp) }
        }
        guard let best, let name = best.mount["name"] as? String,
              let volume = volumes.first(where: { $0["name"] as? String == name }) else { return .absent }
        let mp = best.mountPath
        let rel = path == mp ? "" : String(path.dropFirst(mp.hasSuffix("/") ? mp.count : mp.count + 1))
        let readOnly = best.mount["readOnly"] as? Bool == true
        if volume["emptyDir"] != nil { return readOnly ? .absent : .writable(volume: name) }
        if let hostPath = mapping(volume["hostPath"]) {
            guard readOnly else { return .writable(volume: name) }
            let base = hostPath["path"] as? String ?? ""
            return .host(path: rel.isEmpty ? base : base + "/" + rel, readOnly: true)
        }
        if let file = files(ofVolume: volume)[rel] { return file }
        // A Secret volume without items holds every key of the Secret.
        if let s = mapping(volume["secret"]), list(s["items"]).isEmpty, !rel.isEmpty, !rel.contains("/") {
            return .secret(name: s["secretName"] as? String ?? "", key: rel, required: (s["optional"] as? Bool) != true)
        }
        return .absent
    }

    /// Every file the ConfigMap, Secret and projected volumes put in the container, by absolute path.
    var projectedFiles: [(path: String, source: PodFile)] {
        var out: [(path: String, source: PodFile)] = []
        for m in mounts {
            guard let mp = m["mountPath"] as? String, let name = m["name"] as? String,
                  let volume = volumes.first(where: { $0["name"] as? String == name }) else { continue }
            for (rel, source) in files(ofVolume: volume).sorted(by: { $0.key < $1.key }) {
                out.append(((mp.hasSuffix("/") ? mp : mp + "/") + rel, source))
            }
        }
        return out
    }
}
