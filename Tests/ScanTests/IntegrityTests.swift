import Foundation
import MinewatchCore
import MinewatchModel
import MinewatchScan
import MinewatchImage
import MinewatchSignatures
import Testing
import TestSupport

/// Images that lie about their digests: the lie is reported, the real bytes are scanned, and no
/// cache (per run or `--cache DIR`) ever holds a result under a digest that was not verified.
@Suite struct ImageIntegrityTests {
    let benign = layer { t in t.file("bin/sh", Samples.elf(["GNU C Library"], seed: 2)); t.file("etc/os-release", "ID=debian\n") }
    let miner = layer { t in t.file("usr/local/bin/kworker", Samples.elf(Samples.xmrigStrings, seed: 5)) }
    var benignDigest: String { ContentDigest.of(benign) }
    var minerDigest: String { ContentDigest.of(miner) }

    func mismatch(_ r: TargetReport, at location: String) -> Finding? {
        r.findings.first { $0.ruleId == "MW-IMG-DIGEST" && $0.path == location }
    }

    @Test func dockerArchiveMinerLayerClaimingTheBenignDiffID() throws {
        var img = ImageBuilder(layers: [benign, miner])
        img.claimedDiffIDs = [1: benignDigest]
        let r = try scanArchive(img.dockerArchive())[0]
        #expect(r.errors.isEmpty, "\(r.errors)")
        #expect(r.finding("MW-BIN-XMRIG", at: "/usr/local/bin/kworker")?.severity == .critical, "the miner layer is read in full")
        let m = try #require(mismatch(r, at: "config:rootfs.diff_ids[1]"))
        #expect(m.severity == .high)
        #expect(m.evidence.first?.value == "image claims \(benignDigest) for content \(minerDigest)")
        #expect(r.stats.layersScanned == 2 && r.stats.layersFromCache == 0)
        #expect(mismatch(r, at: "config:rootfs.diff_ids[0]") == nil, "the honest layer is not reported")
    }

    @Test func ociArchiveBlobStoredUnderAnotherDigest() throws {
        let raw = [benign, miner]
        var img = ImageBuilder(layers: [try gzip(benign), try gzip(miner)], uncompressed: raw)
        let benignBlob = ContentDigest.of(img.layers[0])
        // The miner's gzip blob is filed under the name of a blob that is not in the archive.
        let fake = "sha256:" + String(repeating: "ab", count: 32)
        img.claimedBlobDigests = [1: fake]
        let r = try scanArchive(img.ociArchive())[0]
        #expect(r.finding("MW-BIN-XMRIG")?.severity == .critical)
        let m = try #require(mismatch(r, at: "manifest:layers[1]"))
        #expect(m.evidence.first?.value == "image claims \(fake) for content \(ContentDigest.of(img.layers[1]))")
        #expect(m.layer == fake)
        #expect(mismatch(r, at: "config:rootfs.diff_ids[1]") == nil, "its diff id is true")
        #expect(r.findings.allSatisfy { $0.layer != benignBlob || $0.ruleId != "MW-IMG-DIGEST" })
    }

    @Test func ociLayoutWithLyingConfigAndDiffID() throws {
        let dir = try TempDir("lie")
        defer { dir.cleanup() }
        var img = ImageBuilder(layers: [benign, miner])
        img.claimedDiffIDs = [1: benignDigest]
        img.claimedConfigDigest = "sha256:" + String(repeating: "cd", count: 32)
        let r = ImageScanner(rules: compiledRules).scan(path: try img.ociLayout(in: dir))[0]
        #expect(r.errors.isEmpty, "\(r.errors)")
        #expect(r.finding("MW-BIN-XMRIG") != nil)
        #expect(mismatch(r, at: "manifest:config") != nil)
        #expect(mismatch(r, at: "config:rootfs.diff_ids[1]") != nil)
    }

    @Test func lyingManifestDigestInTheIndex() throws {
        var files = ImageBuilder(layers: [benign]).ociFiles()
        // Rewrite the manifest blob (content changes, name stays): index -> manifest no longer holds.
        let i = try #require(files.firstIndex { $0.0.hasPrefix("blobs/") && String(decoding: $0.1, as: UTF8.self).contains("\"config\":{\"digest\"") })
        files[i].1 = Array(String(decoding: files[i].1, as: UTF8.self).replacingOccurrences(of: "\"schemaVersion\":2", with: "\"schemaVersion\":2 ").utf8)
        var t = TarBuilder()
        for (name, data) in files { t.file(name, data, mode: 0o644) }
        let r = try scanArchive(t.finished())[0]
        #expect(mismatch(r, at: "index:manifests[0]") != nil)
    }

    @Test func perRunCacheNeverServesAClaim() throws {
        // Honest benign image first: its layer result is cached under its real digest.
        let scanner = ImageScanner(rules: compiledRules)
        _ = try scanArchive(ImageBuilder(layers: [benign]).dockerArchive(), scanner: scanner)
        // Then a miner layer that claims the benign digest: the cache is checked against the bytes.
        var liar = ImageBuilder(layers: [miner])
        liar.claimedDiffIDs = [0: benignDigest]
        let r = try scanArchive(liar.dockerArchive(), scanner: scanner)[0]
        #expect(r.finding("MW-BIN-XMRIG")?.severity == .critical)
        #expect(mismatch(r, at: "config:rootfs.diff_ids[0]") != nil)
        #expect(r.stats.layersFromCache == 0)
        // An honest image with the same benign layer is still served from the cache.
        let again = try scanArchive(ImageBuilder(layers: [benign]).dockerArchive(), scanner: scanner)[0]
        #expect(again.stats.layersFromCache == 1)
        #expect(again.findings.isEmpty)
    }

    @Test func persistentCacheCannotBePoisoned() throws {
        let dir = try TempDir("poison")
        defer { dir.cleanup() }
        var opts = ScanOptions()
        opts.cacheDirectory = dir.path + "/cache"
        // A lying image: benign bytes under the miner layer's diff id, scanned into a shared cache.
        var liar = ImageBuilder(layers: [benign])
        liar.claimedDiffIDs = [0: minerDigest]
        let lie = try scanArchive(liar.dockerArchive(), scanner: ImageScanner(rules: compiledRules, options: opts))[0]
        #expect(mismatch(lie, at: "config:rootfs.diff_ids[0]") != nil)
        let entries = try FileManager.default.contentsOfDirectory(atPath: dir.path + "/cache")
        #expect(!entries.contains { $0.contains(String(minerDigest.dropFirst(7))) }, "a claimed digest never names a cache entry: \(entries)")
        // The honest miner image, with a new scanner and the same cache, is still found.
        for archive in [ImageBuilder(layers: [miner]).dockerArchive(), ImageBuilder(layers: [miner]).ociArchive()] {
            let honest = try scanArchive(archive, scanner: ImageScanner(rules: compiledRules, options: opts))[0]
            #expect(honest.finding("MW-BIN-XMRIG")?.severity == .critical)
            #expect(honest.findings.allSatisfy { $0.ruleId != "MW-IMG-DIGEST" })
        }
        // And a cached honest result still serves an honest image (after its bytes were hashed).
        let benignAgain = try scanArchive(ImageBuilder(layers: [benign]).dockerArchive(),
                                          scanner: ImageScanner(rules: compiledRules, options: opts))[0]
        #expect(benignAgain.stats.layersFromCache == 1)
    }

    @Test func disabledCheckRuleReportsNothing() throws {
        let loader = RuleLoader()
        let user = loader.load(yaml: "version: 1\nrules:\n  - id: MW-IMG-DIGEST\n    enabled: false\n", file: "user.yaml")
        let (bundled, _) = BundledRules.load()
        let set = bundled.merged(with: user.ruleSet, disabled: user.disabled)
        var img = ImageBuilder(layers: [benign, miner])
        img.claimedDiffIDs = [1: benignDigest]
        let r = try scanArchive(img.dockerArchive(), scanner: ImageScanner(rules: CompiledRules(set)))[0]
        #expect(r.findings.allSatisfy { $0.ruleId != "MW-IMG-DIGEST" })
        #expect(r.finding("MW-BIN-XMRIG") != nil)
    }
}
