import Foundation
import MinewatchConfig
import MinewatchCore
import MinewatchHost
import MinewatchModel
@testable import MinewatchRuntime
import MinewatchSignatures
import Testing
import TestSupport

/// What the fleet agent adds to the pipeline: exceptions silence and count, a reload keeps every
/// container's state, and pod metadata comes from the runtimes' OCI bundles.
@Suite struct AgentConfigPipelineTests {
    static let rules = CompiledRules(BundledRules.load().0)

    @Test func exceptionsSilenceCountAndShowInTelemetry() throws {
        let proc = try FakeProc()
        let quiet = String(repeating: "6e", count: 32), loud = String(repeating: "7f", count: 32)
        try proc.add(pid: 630, comm: "kworker", cgroup: "/docker/\(quiet)", cmdline: ["kworker"], exe: Samples.elf(Samples.xmrigStrings))
        try proc.add(pid: 631, comm: "kworker", cgroup: "/docker/\(loud)", cmdline: ["kworker"], exe: Samples.elf(Samples.xmrigStrings))
        let w = Watcher(rules: Self.rules, proc: ProcfsReader(root: proc.root), clock: FixedClock(date: Date(timeIntervalSince1970: 3_200_000)))
        w.settings.scratchPrefixes = []
        w.describe = { id in id == quiet ? ContainerMetadata(name: "lab-1", image: "registry.example.com/research/xmrig-bench:1") : nil }
        var rule = ExceptionRule(name: "research", reason: "the benchmark lab mines on purpose", source: "t.yaml:3")
        rule.images = ["registry.example.com/research/*"]
        w.exceptions = ExceptionSet([rule])
        let alerts = w.poll()
        #expect(alerts.map(\.container.id) == [loud], "only the container no exception covers is alerted")
        #expect(w.silenced.map(\.exception) == ["research"] && w.silenced.first?.alert.container.id == quiet)
        #expect(w.exceptions.hits == ["research": 1])
        #expect(w.telemetry[quiet]?.silenced == ["research (miner-process)"])
        #expect(w.poll().isEmpty && w.exceptions.hits == ["research": 1], "counted once, like the alert it replaces")
    }

    @Test func aSilencedVerdictDoesNotUseUpItsDetector() throws {
        let proc = try FakeProc()
        let cid = String(repeating: "5a", count: 32)
        try proc.add(pid: 650, comm: "benchminer", cgroup: "/docker/\(cid)", cmdline: ["benchminer"], exe: Samples.elf(Samples.xmrigStrings))
        let w = Watcher(rules: Self.rules, proc: ProcfsReader(root: proc.root), clock: FixedClock(date: Date(timeIntervalSince1970: 3_250_000)))
        w.settings.scratchPrefixes = []
        var rule = ExceptionRule(name: "bench", reason: "our benchmark", source: "t.yaml:1")
        rule.processes = ["*-benchminer"]
        w.exceptions = ExceptionSet([rule])
        #expect(w.poll().isEmpty && w.exceptions.hits == ["bench": 1])
        #expect(w.poll().isEmpty && w.exceptions.hits == ["bench": 1], "the same verdict is counted once")
        // Something the exception does not cover, in the same container: alerted.
        try proc.add(pid: 651, comm: "kworker", cgroup: "/docker/\(cid)", cmdline: ["kworker"], exe: Samples.elf(Samples.xmrigStrings), startTicks: 95000)
        let alerts = w.poll()
        #expect(alerts.map(\.detector) == [.minerProcess] && alerts.first?.exe?.hasSuffix("651-kworker") == true, "\(alerts.map(\.exe))")
        // After a reload without the exception, what it silenced is judged again.
        w.replaceExceptions([])
        #expect(w.exceptions.hits.isEmpty)
    }

    @Test func reconfigureKeepsStateAndSwitchesDetectors() throws {
        let proc = try FakeProc()
        let cid = String(repeating: "8a", count: 32)
        try proc.add(pid: 640, comm: "kworker", cgroup: "/docker/\(cid)", cmdline: ["kworker"], exe: Samples.elf(Samples.xmrigStrings))
        let w = Watcher(rules: Self.rules, proc: ProcfsReader(root: proc.root), clock: FixedClock(date: Date(timeIntervalSince1970: 3_300_000)))
        w.settings.scratchPrefixes = []
        #expect(w.poll().map(\.detector) == [.minerProcess])
        var settings = w.settings
        settings.disabled = [.cpuMiner, .relay]
        settings.packetCryptWait = 5
        settings.bandwidth.window = 40
        w.reconfigure(rules: Self.rules, settings: settings)
        #expect(!w.detectorIDs.contains(.cpuMiner) && !w.detectorIDs.contains(.relay))
        #expect(w.detectorIDs.contains(.minerProcess))
        #expect(w.detectors.drift?.scratchPrefixes == [], "settings made outside the rules carry over")
        #expect(w.store[cid]?.alerted == [.minerProcess], "which detectors alerted is kept")
        #expect(w.poll().isEmpty, "no second alert after a reload")
        // New rules alone keep every setting (packetCryptWait was reset by a reload before).
        w.reconfigure(rules: Self.rules)
        #expect(w.detectors.miningProtocol?.packetCryptWait == 5)
        #expect(w.detectors.bandwidthMiner?.model.window == 40)
        #expect(w.detectors.drift?.scratchPrefixes == [])
        settings.disabled = []
        w.reconfigure(rules: Self.rules, settings: settings)
        #expect(w.detectorIDs.contains(.cpuMiner) && w.detectorIDs.contains(.relay))
    }

    @Test func podMetadataFromBundles() throws {
        let dir = try TempDir("bundles")
        defer { dir.cleanup() }
        let cri = String(repeating: "9b", count: 32), crio = String(repeating: "ac", count: 32)
        _ = try dir.file("tasks/k8s.io/\(cri)/config.json", Array(#"{"ociVersion":"1.0.2","annotations":{"io.kubernetes.cri.container-type":"container","io.kubernetes.cri.container-name":"nginx","io.kubernetes.cri.sandbox-name":"web-7d9f","io.kubernetes.cri.sandbox-namespace":"shop","io.kubernetes.cri.image-name":"docker.io/library/nginx:1.25"}}"#.utf8))
        _ = try dir.file("storage/\(crio)/userdata/config.json", Array(#"{"annotations":{"io.kubernetes.pod.name":"cache-0","io.kubernetes.pod.namespace":"shop","io.kubernetes.container.name":"redis","io.kubernetes.cri-o.ImageName":"docker.io/library/redis:7","io.kubernetes.cri-o.Labels":"{\"app\":\"cache\",\"io.kubernetes.pod.name\":\"cache-0\"}"}}"#.utf8))
        let reader = RuntimeStateReader(containerdTaskRoots: [dir.path + "/tasks"], storageRoots: [dir.path + "/storage"])
        let resolver = MetadataResolver(engine: nil, bundles: reader)
        let a = try #require(resolver.lookup(cri))
        #expect(a.k8s == KubernetesMetadata(namespace: "shop", pod: "web-7d9f", container: "nginx") && a.image == "docker.io/library/nginx:1.25")
        let b = try #require(resolver.lookup(crio))
        #expect(b.k8s == KubernetesMetadata(namespace: "shop", pod: "cache-0", container: "redis") && b.labels["app"] == "cache")
        #expect(resolver.lookup(String(repeating: "bd", count: 32)) == nil)
        // The engine's answer comes first; the bundle fills what it lacks.
        let merged = MetadataResolver(engine: { _ in ContainerMetadata(name: "k8s_nginx_web", image: nil, labels: ["tier": "front"]) }, bundles: reader)
        let m = try #require(merged.lookup(cri))
        #expect(m.name == "k8s_nginx_web" && m.image == "docker.io/library/nginx:1.25" && m.k8s?.pod == "web-7d9f" && m.labels == ["tier": "front"])
        // A container without a bundle where the reader looks is looked for again after 10 s,
        // then twice as long each time, at most every 5 minutes.
        #expect([1, 2, 3, 4, 5, 6, 7, 60].map { MetadataResolver.retryAfter(misses: $0) } == [10, 20, 40, 80, 160, 300, 300, 300])
    }

    /// Rootful podman keeps its bundles under containers/storage's graph root, with annotations
    /// that name no pod or image (these are a real podman 4.3 container's): found by the default
    /// roots, read once, and not looked for again.
    @Test func podmanBundlesAreFoundOnceByDefault() throws {
        let dir = try TempDir("podmanbundles")
        defer { dir.cleanup() }
        let id = String(repeating: "7a", count: 32)
        let path = "var/lib/containers/storage/overlay-containers/\(id)/userdata/config.json"
        _ = try dir.file(path, Array(#"{"ociVersion":"1.0.2-dev","annotations":{"io.container.manager":"libpod","io.kubernetes.cri-o.Created":"2026-12-07T19:03:20.553401003Z","io.kubernetes.cri-o.TTY":"false","io.podman.annotations.autoremove":"FALSE","io.podman.annotations.init":"FALSE","io.podman.annotations.privileged":"FALSE","io.podman.annotations.publish-all":"FALSE","org.opencontainers.image.stopSignal":"15"}}"#.utf8))
        let reader = RuntimeStateReader(hostRoot: dir.path)
        #expect(reader.annotations(id: id)?["io.container.manager"] == "libpod")
        let resolver = MetadataResolver(engine: nil, bundles: reader)
        #expect(resolver.lookup(id) == nil, "nothing to name it by")
        #expect(resolver.cache.withLock { $0[id] }.map { $0.read && $0.misses == 0 } == true, "read, not missed: not looked for again")
        // A bundle-less container is a miss, retried later.
        _ = resolver.lookup(String(repeating: "7b", count: 32))
        #expect(resolver.cache.withLock { $0[String(repeating: "7b", count: 32)] }.map { !$0.read && $0.misses == 1 } == true)
    }

    /// Telemetry reads at most `telemetryBundleReadsPerSecond` bundles a second (a dense node's
    /// first pass had every bundle to read); those over the budget are read when next asked,
    /// not counted as misses, and alerts are never held back.
    @Test func telemetryBundleReadsAreBudgeted() throws {
        let dir = try TempDir("bundlebudget")
        defer { dir.cleanup() }
        let n = MetadataResolver.telemetryBundleReadsPerSecond + 20
        let ids = (0..<n).map { i -> String in
            let hex = String(0xc0ffee00 + i, radix: 16)
            return String(repeating: "0", count: 64 - hex.count) + hex
        }
        for id in ids {
            _ = try dir.file("storage/\(id)/userdata/config.json", Array(#"{"annotations":{"io.kubernetes.pod.name":"p","io.kubernetes.pod.namespace":"ns","io.kubernetes.container.name":"c"}}"#.utf8))
        }
        let resolver = MetadataResolver(engine: nil, bundles: RuntimeStateReader(containerdTaskRoots: [], storageRoots: [dir.path + "/storage"]))
        let t0 = Date(timeIntervalSince1970: 1_800_000_000.25)
        let first = ids.map { resolver.resolve($0, nil, budgeted: true, now: t0) }
        #expect(first.prefix(MetadataResolver.telemetryBundleReadsPerSecond).allSatisfy { $0?.k8s?.pod == "p" })
        #expect(first.dropFirst(MetadataResolver.telemetryBundleReadsPerSecond).allSatisfy { $0 == nil }, "over the budget: not read this second")
        let deferred = ids[MetadataResolver.telemetryBundleReadsPerSecond...]
        #expect(deferred.allSatisfy { id in resolver.cache.withLock { $0[id] } == nil }, "not a miss: no back-off")
        // An alert's lookup is not held back, the same second.
        #expect(resolver.lookup(try #require(deferred.first))?.k8s?.pod == "p")
        // The next second, the rest are read.
        #expect(deferred.dropFirst().allSatisfy { resolver.resolve($0, nil, budgeted: true, now: t0.addingTimeInterval(1))?.k8s?.pod == "p" })
        // With an engine that names every container: a deferred bundle gives telemetry nothing
        // (so it is asked for again), not the engine's name without the bundle's pod.
        let named = MetadataResolver(engine: { _ in ContainerMetadata(name: "web", image: nil) },
                                     bundles: RuntimeStateReader(containerdTaskRoots: [], storageRoots: [dir.path + "/storage"]))
        let answers = ids.map { named.resolve($0, { _ in ContainerMetadata(name: "web", image: nil) }, budgeted: true, now: t0) }
        #expect(answers.prefix(MetadataResolver.telemetryBundleReadsPerSecond).allSatisfy { $0?.name == "web" && $0?.k8s?.pod == "p" })
        #expect(answers.dropFirst(MetadataResolver.telemetryBundleReadsPerSecond).allSatisfy { $0 == nil })
        #expect(named.resolve(ids[ids.count - 1], { _ in ContainerMetadata(name: "web", image: nil) }, budgeted: true,
                              now: t0.addingTimeInterval(1)).map { $0.name == "web" && $0.k8s?.pod == "p" } == true)
    }

    @Test func bundlesBehindLinksAreNotRead() throws {
        let dir = try TempDir("bundlelinks")
        defer { dir.cleanup() }
        let id = String(repeating: "ce", count: 32)
        _ = try dir.file("elsewhere/config.json", Array(#"{"annotations":{"io.kubernetes.pod.name":"x"}}"#.utf8))
        try FileManager.default.createDirectory(atPath: dir.path + "/storage/\(id)", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: dir.path + "/storage/\(id)/userdata", withDestinationPath: dir.path + "/elsewhere")
        let reader = RuntimeStateReader(containerdTaskRoots: [], storageRoots: [dir.path + "/storage"])
        #expect(reader.annotations(id: id) == nil)
        #expect(reader.annotations(id: "../../etc") == nil, "ids are 64 hex digits")
        #expect(BundleAnnotations.parse(Array("not json".utf8)).isEmpty)
        // Only the annotations are decoded, whatever precedes them; values that are not strings,
        // and keys or values over the bounds, are left out.
        let long = String(repeating: "v", count: 4097), longKey = String(repeating: "k", count: 257)
        let spec = #"{"ociVersion":"1.0.2","linux":{"seccomp":{"syscalls":[{"names":["read","write"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":1}]}]}},"#
            + #""annotations":{"io.kubernetes.pod.name":"web-1","n":5,"o":{"a":"b"},"k":"\#(long)","\#(longKey)":"x"},"process":{"args":["/bin/sh"]}}"#
        #expect(BundleAnnotations.parse(Array(spec.utf8)) == ["io.kubernetes.pod.name": "web-1"])
        #expect(BundleAnnotations.parse(Array(#"{"annotations":["a"]}"#.utf8)).isEmpty)
        #expect(BundleAnnotations.parse(Array(#"[{"annotations":{"a":"b"}}]"#.utf8)).isEmpty)
    }
}
