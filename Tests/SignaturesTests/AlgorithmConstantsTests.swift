import Foundation
import Testing
@testable import MinewatchSignatures

/// Binary constants as rule data: the number forms, `within`, the refusal of common constants,
/// and the bundled algorithm rules on bytes laid out as compilers lay them out.
@Suite struct AlgorithmConstantsTests {
    func load(_ yaml: String) -> RuleLoader.Output { RuleLoader().load(yaml: yaml, file: "c.yaml") }

    func rule(_ strings: String, condition: String? = nil, category: String = "miner-algorithm") -> String {
        """
        version: 1
        rules:
          - id: T-C
            title: constants
            category: \(category)
            severity: info
            strings:
        \(strings)
        \(condition.map { "    condition: \($0)" } ?? "")
        """
    }

    func matches(_ set: RuleSet, _ bytes: [UInt8], chunk: Int = 4096) -> [RuleMatch] {
        var m = FileMatcher(rules: CompiledRules(set), path: "/f", fileType: .binary)
        var i = 0
        while i < bytes.count {
            let e = min(i + chunk, bytes.count)
            bytes[i..<e].withUnsafeBytes { m.feed($0) }
            i = e
        }
        return m.finish()
    }

    @Test func numberFormsLayBytesOutAsInMemory() throws {
        let out = load(rule("""
              v: { epi32: [0xd7983aad, 0xcc82db47, 0x9fa856de, 0x92b52c0d] }
              w: { u32: [0x01020304, 0x05060708], order: be }
              q: { u64: 0x810a978a59f5a1fc }
        """, condition: "2 of them"))
        #expect(out.diagnostics.isEmpty, "\(out.diagnostics)")
        let s = try #require(out.ruleSet.rules.first).strings
        #expect(s[0].bytes == [0x0d, 0x2c, 0xb5, 0x92, 0xde, 0x56, 0xa8, 0x9f, 0x47, 0xdb, 0x82, 0xcc, 0xad, 0x3a, 0x98, 0xd7])
        #expect(s[1].bytes == [1, 2, 3, 4, 5, 6, 7, 8])
        #expect(s[2].bytes == [0xfc, 0xa1, 0xf5, 0x59, 0x8a, 0x97, 0x0a, 0x81])
    }

    @Test func badConstantsNameFileAndLine() {
        let cases: [(String, String)] = [
            ("      a: { u32: 0x1ffffffff }\n      b: { u32: 7777777 }", "c.yaml:8: rule T-C: string 'a': 'u32' must be a number or a list of numbers"),
            ("      a: { epi32: [1, 2, 3] }\n      b: { u32: 7777777 }", "c.yaml:8: rule T-C: string 'a': 'epi32' takes 128-bit vectors"),
            ("      a: { u32: [0x428a2f98, 0x71374491] }\n      b: { u32: 7777777 }", "c.yaml:8: rule T-C: string 'a' holds the SHA-256 round constant"),
            ("      a: { u32: [0x428a2f98, 0x71374491, 0x6a09e667, 0xbb67ae85] }\n      b: { u32: 7777777 }",
             "c.yaml:8: rule T-C: string 'a' is made only of common constants (SHA-256 initial value, SHA-256 round constant)"),
            ("      a: { u64: 0x5851f42d4c957f2d }\n      b: { u32: 7777777 }", "c.yaml:8: rule T-C: string 'a' holds the PCG/MMIX multiplier"),
            ("      a: { u32: 0x01000193, order: be }\n      b: { u32: 7777777 }", "c.yaml:8: rule T-C: string 'a' holds the FNV-1 prime/offset"),
            ("      a: { u32: 12345678, order: middle }\n      b: { u32: 7777777 }", "c.yaml:8: rule T-C: string 'a': order must be 'le' or 'be'"),
        ]
        for (strings, want) in cases {
            let out = load(rule(strings, condition: "2 of them"))
            #expect(out.diagnostics.contains { $0.description.hasPrefix(want) }, "\(want) not in \(out.diagnostics)")
        }
        // One short constant cannot convict; one long one can.
        let short = load(rule("      a: { u32: 7777777 }"))
        #expect(short.diagnostics.contains { $0.description.contains("needs a condition of two or more constants") }, "\(short.diagnostics)")
        let long = load(rule("      a: { hex: \"\(String(repeating: "a1b2c3d4", count: 8))\" }"))
        #expect(long.diagnostics.isEmpty, "\(long.diagnostics)")
        let within = load(rule("      a: { u32: 7777777 }\n      b: { u32: 8888888 }", condition: "2 of them within 0"))
        #expect(within.diagnostics.contains { $0.description.contains("'within 0' is not a size") }, "\(within.diagnostics)")
    }

    @Test func withinNeedsTheStringsTogether() throws {
        let out = load(rule("""
              a: { u32: 0x11223344 }
              b: { u32: 0x55667788 }
              c: { u32: 0x99aabbcc }
        """, condition: "3 of them within 1Ki"))
        #expect(out.diagnostics.isEmpty, "\(out.diagnostics)")
        func file(_ places: [Int], size: Int = 64 << 10) -> [UInt8] {
            var b = [UInt8](repeating: 0, count: size)
            let words: [[UInt8]] = [[0x44, 0x33, 0x22, 0x11], [0x88, 0x77, 0x66, 0x55], [0xcc, 0xbb, 0xaa, 0x99]]
            for (w, at) in zip(words, places) { b.replaceSubrange(at..<(at + 4), with: w) }
            return b
        }
        // Together, across a chunk boundary: matched, with the window in the evidence.
        let near = matches(out.ruleSet, file([4000, 4094, 4900]))
        #expect(near.count == 1)
        #expect(near.first?.evidence.contains { $0.name == "window" && $0.offset == 4000 } == true, "\(near.first?.evidence ?? [])")
        // Scattered over the file: no match.
        #expect(matches(out.ruleSet, file([100, 30000, 60000])).isEmpty)
    }

    func xmrigLikeBlocks() throws -> [UInt8] {
        let (set, diags) = BundledRules.load()
        #expect(diags.isEmpty, "\(diags)")
        let rx = try #require(set.rules.first { $0.id == "MW-ALG-RANDOMX" })
        let xm = try #require(set.rules.first { $0.id == "MW-ALG-XMRIG" })
        var b: [UInt8] = Array(repeating: 0x90, count: 8192)
        for s in rx.strings where s.bytes.count == 16 { b += s.bytes }
        for s in xm.strings where s.id.hasPrefix("wow") { b += s.bytes }
        return b + Array(repeating: 0x90, count: 8192)
    }

    @Test func bundledRulesTellRandomXCodeFromXMRig() throws {
        let (set, _) = BundledRules.load()
        let all = try xmrigLikeBlocks()
        #expect(Set(matches(set, all).map(\.rule.id)).isSuperset(of: ["MW-ALG-RANDOMX", "MW-ALG-XMRIG"]))
        // What tevador's library (a Monero node) holds: RandomX, not XMRig.
        let wow = set.rules.first { $0.id == "MW-ALG-XMRIG" }?.strings.filter { $0.id.hasPrefix("wow") }.map(\.bytes) ?? []
        var node = all
        for w in wow { if let r = node.firstRange(of: w) { node.replaceSubrange(r, with: [UInt8](repeating: 0, count: 16)) } }
        let ids = Set(matches(set, node).map(\.rule.id))
        #expect(ids.contains("MW-ALG-RANDOMX") && !ids.contains("MW-ALG-XMRIG"), "\(ids)")
        #expect(set.rules.first { $0.id == "MW-ALG-RANDOMX" }?.severity == .info)
    }
}

@Suite struct PublicWalletTests {
    @Test func publishedProjectAddressesAreNoEvidence() {
        let addr = "888tNkZrPN6JsEgekjMnABU4TBzc2Dt29EPAvkRxbANsAnjyPbb3iQ1YBRk1UXcdRsiKc9dhwMVgN5S9cQUiyoogDavup3H"
        let yaml = """
        version: 1
        rules:
          - id: T-W
            title: wallet
            category: wallet
            severity: medium
            wallets: [XMR]
        wallets:
          public: [\(addr), "not an address!"]
        """
        let out = RuleLoader().load(yaml: yaml, file: "w.yaml")
        #expect(out.diagnostics.map(\.description) == ["w.yaml:9: 'not an address!' is not a wallet address"])
        func matches(_ set: RuleSet) -> [String] {
            var m = FileMatcher(rules: CompiledRules(set), path: "/usr/bin/monero-wallet-cli", fileType: .binary)
            Array("donate to \(addr) thanks".utf8).withUnsafeBytes { m.feed($0) }
            return m.finish().map(\.rule.id)
        }
        #expect(matches(out.ruleSet).isEmpty)
        var without = out.ruleSet
        without.publicWallets = []
        #expect(matches(without) == ["T-W"])
    }
}
