import Foundation
import Testing
import TestSupport
import Yams

/// Whole registries: `scan --all-tags`, `--from FILE` and `--shard N/M` against Debian's
/// docker-registry filled by scripts/fill-registry (images sharing base layers, two of them miners,
/// one image under two tags). Shards run as separate processes, each pushing its attestations to
/// the registry, as the pods of deploy/kubernetes/scan-registry.yaml do; their union must be the
/// full run.
@Suite(.serialized) struct RegistryListTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    struct Result: Hashable {
        var digest: String
        var references: Set<String>
        var rules: Set<String>
    }

    func results(_ file: String) throws -> (results: [Result], scanned: Int, cached: Int, targets: [String]) {
        try results(json: Array(try Data(contentsOf: URL(fileURLWithPath: file))))
    }

    func results(json: [UInt8]) throws -> (results: [Result], scanned: Int, cached: Int, targets: [String]) {
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(json)) as? [String: Any])
        let targets = try #require(obj["targets"] as? [[String: Any]])
        var out: [Result] = []
        var scanned = 0, cached = 0
        for t in targets {
            let image = (t["image"] as? [String: Any]) ?? [:]
            let findings = (t["findings"] as? [[String: Any]]) ?? []
            let stats = (t["stats"] as? [String: Any]) ?? [:]
            scanned += (stats["layersScanned"] as? Int) ?? 0
            cached += (stats["layersFromCache"] as? Int) ?? 0
            #expect(((t["errors"] as? [Any]) ?? []).isEmpty, "\(t["target"] ?? ""): \(t["errors"] ?? "")")
            out.append(Result(digest: (image["manifestDigest"] as? String) ?? "", references: Set((image["references"] as? [String]) ?? []),
                              rules: Set(findings.compactMap { $0["ruleId"] as? String })))
        }
        return (out, scanned, cached, targets.compactMap { $0["target"] as? String })
    }

    @Test func allTagsFromAListAndShardsThatAddUpToTheWholeRun() throws {
        try requireTools(["docker-registry", "openssl", "curl"])
        let dir = try TempDir("reglist")
        defer { dir.cleanup() }
        let (registry, host) = try startLoopbackRegistry(in: dir)
        defer { registry.stop() }
        let list = dir.path + "/images.txt"
        let fill = try run(["/usr/bin/python3", Self.root + "/scripts/fill-registry", "--registry", host, "--repo", "mw/fleet",
                            "--images", "12", "--bases", "3", "--base-mb", "1", "--top-kb", "8", "--miner-every", "5",
                            "--alias", "latest=v000", "--list", list])
        try #require(fill.status == 0, "\(fill.err)")

        // One run over every tag: 12 images (v000 and latest are one), each layer read once.
        let full = try minewatch(["scan", "--insecure", "--all-tags", "-f", "json", "-o", dir.path + "/full.json", "registry:\(host)/mw/fleet"])
        #expect(full.status == 1, "the two miners fail the scan: \(full.err)")
        let whole = try results(dir.path + "/full.json")
        #expect(whole.results.count == 12)
        #expect(whole.scanned == 3 + 12, "3 base layers and 12 top layers, each read once")
        #expect(whole.cached == 12 - 3, "every other image's base layer came from the run's cache")
        let miners = whole.results.filter { $0.rules.contains("MW-CFG-XMRIG") }
        #expect(miners.flatMap(\.references).sorted() == ["\(host)/mw/fleet:v004", "\(host)/mw/fleet:v009"])
        #expect(whole.results.filter { $0.rules.isEmpty }.count == 10, "the other images are clean")
        #expect(whole.results.contains { $0.references == ["\(host)/mw/fleet:latest", "\(host)/mw/fleet:v000"] })
        #expect(full.err.contains("15 layers read, 9 shared layers answered"), "\(full.err)")

        // The Indexed Job of deploy/kubernetes/scan-registry.yaml, one process per completion
        // index: its container's args with the pod's variables filled in, the repository pointed
        // at the test registry and the signing key at a test key (plus --insecure: plain HTTP).
        let (key, _) = try p256KeyPair(in: dir.path, name: "signer")
        let job = try #require(try Yams.load_all(yaml: String(contentsOfFile: Self.root + "/deploy/kubernetes/scan-registry.yaml", encoding: .utf8))
            .compactMap { $0 as? [String: Any] }.first { $0["kind"] as? String == "Job" })
        let spec = try #require(job["spec"] as? [String: Any])
        #expect(spec["completionMode"] as? String == "Indexed")
        let completions = try #require(spec["completions"] as? Int)
        let pod = try #require((spec["template"] as? [String: Any])?["spec"] as? [String: Any])
        let container = try #require((pod["containers"] as? [[String: Any]])?.first)
        var env: [String: String] = [:]
        for e in (container["env"] as? [[String: Any]]) ?? [] {
            if let n = e["name"] as? String, let v = e["value"] as? String { env[n] = v }
            if let n = e["name"] as? String, let from = e["valueFrom"] as? [String: Any], let f = from["fieldRef"] as? [String: Any] {
                #expect(n == "SHARD_INDEX" && (f["fieldPath"] as? String)?.contains("job-completion-index") == true)
            }
        }
        #expect(env["SHARDS"] == String(completions), "SHARDS must equal completions")
        env["REPOSITORY"] = "\(host)/mw/fleet"
        let args = try #require(container["args"] as? [String])
        var union: [String: Result] = [:]
        var shardTargets: [[String]] = []
        for i in 0..<completions {
            env["SHARD_INDEX"] = String(i)
            var podArgs = args.map { a in env.reduce(a) { $0.replacingOccurrences(of: "$(\($1.key))", with: $1.value) } }
            podArgs = podArgs.map { $0.hasPrefix("--attest=") ? "--attest=\(key)" : $0 } + ["--insecure"]
            #expect(!podArgs.contains { $0.contains("$(") }, "\(podArgs)")
            let r = try minewatch(podArgs)
            #expect(r.status == 0, "shard \(i) (pods exit 0; verdicts are in the reports): \(r.err)")
            let part = try results(json: Array(r.out.utf8))
            // By reference: one image's two tags may fall in one shard, which then reports them
            // as one result (one target) naming both.
            shardTargets.append(part.results.flatMap { $0.references })
            for res in part.results {
                var merged = union[res.digest] ?? Result(digest: res.digest, references: [], rules: res.rules)
                merged.references.formUnion(res.references)
                #expect(merged.rules == res.rules)
                union[res.digest] = merged
            }
        }
        #expect(shardTargets.filter { !$0.isEmpty }.count >= completions / 2, "13 tags spread over \(completions) shards: \(shardTargets)")
        let allTargets = shardTargets.flatMap { $0 }
        #expect(Set(allTargets).count == allTargets.count, "the shards are disjoint")
        #expect(Set(allTargets).count == 13, "and cover all 13 tags")
        #expect(Set(union.values) == Set(whole.results), "the shards' union is the full run")

        // The registry is the shared store: one attestation per image, under cosign's tag, which a
        // later --all-tags run does not mistake for images.
        let tags = try run(["curl", "-sf", "http://\(host)/v2/mw/fleet/tags/list"])
        let listed = ((try JSONSerialization.jsonObject(with: Data(tags.out)) as? [String: Any])?["tags"] as? [String]) ?? []
        #expect(Set(listed.filter { $0.hasSuffix(".att") }) == Set(whole.results.map { $0.digest.replacingOccurrences(of: ":", with: "-") + ".att" }))
        let again = try minewatch(["scan", "--insecure", "--all-tags", "-f", "json", "-o", dir.path + "/again.json", "registry:\(host)/mw/fleet"])
        #expect(again.status == 1)
        #expect(try results(dir.path + "/again.json").results.count == 12)

        // --from: the list file fill-registry wrote, with a comment; one bad line names file:line.
        try ("# the fleet's images\n" + String(contentsOfFile: list, encoding: .utf8)).write(toFile: list, atomically: true, encoding: .utf8)
        let fromList = try minewatch(["scan", "--insecure", "--from", list, "-f", "json", "-o", dir.path + "/from.json"])
        #expect(fromList.status == 1, "\(fromList.err)")
        let listedRun = try results(dir.path + "/from.json")
        #expect(listedRun.results.count == 12 && listedRun.scanned == 15)
        try "registry:\(host)/mw/fleet:v001\nnot one reference\n".write(toFile: dir.path + "/bad.txt", atomically: true, encoding: .utf8)
        let bad = try minewatch(["scan", "--insecure", "--from", dir.path + "/bad.txt"])
        #expect(bad.status == 2 && bad.err.contains("bad.txt:2"), "\(bad.err)")
        let badShard = try minewatch(["scan", "--shard", "3/3", "registry:\(host)/mw/fleet"])
        #expect(badShard.status == 64 && badShard.err.contains("--shard"), "\(badShard.err)")
    }
}
