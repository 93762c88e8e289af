import Foundation
import MinewatchCore
@testable import MinewatchImage
import Testing
import TestSupport

/// Image lists: list files, shards, cosign's tags, and a real registry's tag list.
@Suite struct ImageListTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    @Test func listFilesSkipCommentsAndNameTheBadLine() throws {
        let refs = try ImageList.parse("# nightly\nregistry:r.example/a:1\n\n  registry:r.example/b@sha256:\(String(repeating: "a", count: 64))  \n", file: "images.txt")
        #expect(refs == ["registry:r.example/a:1", "registry:r.example/b@sha256:\(String(repeating: "a", count: 64))"])
        do {
            _ = try ImageList.parse("a:1\nb:2 c:3\n", file: "images.txt")
            Issue.record("a line with two references was accepted")
        } catch {
            #expect(error.description.contains("images.txt:2"))
        }
    }

    @Test func shardsSplitEveryListDisjointlyAndEvenly() {
        #expect(Shard(parsing: "0/1") != nil && Shard(parsing: "7/8") != nil)
        for bad in ["8/8", "-1/4", "1", "a/b", "1/0", "1/2/3"] { #expect(Shard(parsing: bad) == nil, "\(bad)") }
        let refs = (0..<1000).map { "registry:r.example/app:v\($0)" }
        let shards = (0..<4).map { Shard(index: $0, count: 4) }
        var seen = Set<String>()
        for s in shards {
            let part = refs.filter(s.contains)
            #expect(part.count > 180 && part.count < 320, "shard \(s) has \(part.count) of 1000")
            #expect(seen.isDisjoint(with: part))
            seen.formUnion(part)
        }
        #expect(seen.count == refs.count)
        // The same reference lands in the same shard whatever else the list holds.
        #expect(refs.filter(shards[2].contains) == refs.shuffled().filter(shards[2].contains).sorted { refs.firstIndex(of: $0)! < refs.firstIndex(of: $1)! })
    }

    @Test func cosignTagsAndLinkHeaders() {
        let hex = String(repeating: "ab", count: 32)
        #expect(RegistryClient.isSignatureTag("sha256-\(hex).att") && RegistryClient.isSignatureTag("sha256-\(hex).sig"))
        #expect(!RegistryClient.isSignatureTag("sha256-short.att") && !RegistryClient.isSignatureTag("v1.att"))
        #expect(RegistryClient.nextLink("</v2/a/b/tags/list?last=v5&n=5>; rel=\"next\"") == "/v2/a/b/tags/list?last=v5&n=5")
        #expect(RegistryClient.nextLink("<https://r.example/v2/a/tags/list?n=2&last=x>; rel=\"next\"") == "/v2/a/tags/list?n=2&last=x")
        #expect(RegistryClient.nextLink("<https://elsewhere/x>; rel=\"next\"") == nil)
    }

    @Test func tagsFromARealRegistry() throws {
        try requireTools(["docker-registry"])
        let dir = try TempDir("taglist")
        defer { dir.cleanup() }
        let (registry, host) = try startLoopbackRegistry(in: dir)
        defer { registry.stop() }
        let fill = try run(["/usr/bin/python3", Self.root + "/scripts/fill-registry", "--registry", "\(host)", "--repo", "t/app",
                            "--images", "7", "--bases", "2", "--base-mb", "0.2", "--top-kb", "4", "--alias", "latest=v000"])
        #expect(fill.status == 0, "\(fill.err)")
        let ref = try #require(ImageReference(parsing: "\(host)/t/app"))
        let client = try RegistryClient(ref: ref, insecure: true, credentials: nil)
        let expected = ["latest"] + (0..<7).map { String(format: "v%03d", $0) }
        // Debian's registry (2.8) ignores `n` and sends every tag, unsorted, in one page; the
        // pages of newer registries are followed through Link headers (cosignTagsAndLinkHeaders).
        #expect(try client.tags(pageSize: 3) == expected)
        #expect(try client.tags() == expected)
        let listed = try ImageList(insecure: true, credentials: nil).allTags(of: "registry:\(host)/t/app:v003")
        #expect(listed == expected.map { "registry:\(host)/t/app:\($0)" })
        #expect(throws: MinewatchError.self) { try ImageList(insecure: true, credentials: nil).allTags(of: "/some/folder") }
    }
}
