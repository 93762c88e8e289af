import Testing
@testable import MinewatchSignatures

@Suite struct ConditionTests {
    func parse(_ text: String, _ ids: [String]) throws -> Condition {
        var p = ConditionParser(stringIDs: ids)
        return try p.parse(text)
    }

    @Test func precedenceAndSets() throws {
        let c = try parse("$a and ($b or $c) or not $d", ["a", "b", "c", "d"])
        #expect(c.evaluate { [0, 2].contains($0) })
        #expect(!c.evaluate { [0, 3].contains($0) })
        #expect(c.evaluate { _ in false })  // not $d
        let n = try parse("2 of ($x*) and any of them", ["x1", "x2", "y"])
        #expect(n.evaluate { [0, 1].contains($0) })
        #expect(!n.evaluate { [0, 2].contains($0) })
        #expect(try parse("all of them", ["a", "b"]).minimumStrings == 2)
        #expect(try parse("$a or 2 of them", ["a", "b", "c"]).minimumStrings == 1)
        #expect(try parse("$a and $b", ["a", "b"]).minimumStrings == 2)
    }

    @Test func errorsAreReported() {
        #expect(throws: ConditionParseError.self) { try parse("$zz", ["a"]) }
        #expect(throws: ConditionParseError.self) { try parse("3 of them", ["a", "b"]) }
        #expect(throws: ConditionParseError.self) { try parse("$a and", ["a"]) }
        #expect(throws: ConditionParseError.self) { try parse("2 of ($q*)", ["a"]) }
        #expect(throws: ConditionParseError.self) { try parse("($a", ["a"]) }
    }
}

@Suite struct RuleLoaderTests {
    @Test func bundledRulesLoadCleanly() throws {
        let (set, diags) = BundledRules.load()
        #expect(diags.isEmpty, "\(diags)")
        let families = Set(set.rules.filter { $0.category == "miner-binary" }.compactMap(\.family))
        for f in ["xmrig", "xmr-stak", "cpuminer", "ccminer", "cgminer", "ethminer", "packetcrypt"] {
            #expect(families.contains(f), "no miner-binary rule for \(f)")
        }
        for r in set.rules where r.category == "miner-binary" {
            #expect((r.condition?.minimumStrings ?? 0) >= 2, "\(r.id) can convict on one string")
        }
        _ = CompiledRules(set)
        #expect(set.minerPorts.contains(3333) && set.minerPorts.contains(14444))
    }

    @Test func networkSectionIsValidated() {
        let out = RuleLoader().load(yaml: "network:\n  minerPorts: [3333, 70000, x]\n", file: "n.yaml")
        #expect(out.ruleSet.minerPorts == [3333])
        #expect(out.diagnostics.map(\.description) == ["n.yaml:2: port '70000' is not 1-65535", "n.yaml:2: port 'x' is not 1-65535"])
    }

    @Test func diagnosticsNameFileLineAndRule() {
        let yaml = """
        version: 1
        rules:
          - id: T-1
            title: ok
            category: pool-url
            severity: medium
            strings:
              a: "abcd"
          - id: T-2
            title: short string
            category: pool-url
            severity: medium
            strings:
              a: "ab"
          - id: T-3
            title: bad severity
            category: pool-url
            severity: severe
            strings:
              a: "abcdef"
          - id: T-4
            title: one string convicts
            category: miner-binary
            severity: critical
            strings:
              a: "abcdef"
              b: "ghijkl"
            condition: any of them
            colour: red
          - id: T-1
            title: dup
            category: pool-url
            severity: low
            strings:
              a: "zzzz"
        """
        let out = RuleLoader().load(yaml: yaml, file: "my.yaml")
        #expect(out.ruleSet.rules.map(\.id) == ["T-1"])
        let text = out.diagnostics.map(\.description)
        #expect(text.contains("my.yaml:14: rule T-2: string 'a' is shorter than 4 bytes"))
        #expect(text.contains { $0.hasPrefix("my.yaml:18: rule T-3: severity must be") })
        #expect(text.contains { $0.hasPrefix("my.yaml:28: rule T-4: category 'miner-binary' needs a condition of two or more strings") })
        #expect(text.contains("my.yaml:29: rule T-4: unknown key 'colour'"))
        #expect(text.contains { $0.hasPrefix("my.yaml:30: rule T-1: duplicate rule id") })
    }

    @Test func yamlSyntaxErrorHasLine() {
        let out = RuleLoader().load(yaml: "rules:\n  - id: [unclosed\n", file: "bad.yaml")
        #expect(out.diagnostics.count == 1)
        #expect(out.diagnostics[0].line != nil)
        #expect(out.diagnostics[0].description.hasPrefix("bad.yaml:"))
    }

    @Test func userRulesOverrideAndDisable() {
        let base = RuleLoader().load(yaml: """
        rules:
          - {id: A-1, title: a, category: c, severity: low, strings: {s: "aaaa"}}
          - {id: A-2, title: b, category: c, severity: low, strings: {s: "bbbb"}}
        """, file: "base.yaml")
        let user = RuleLoader().load(yaml: """
        rules:
          - {id: A-1, title: a2, category: c, severity: high, strings: {s: "cccc"}}
          - {id: A-2, enabled: false}
        """, file: "user.yaml")
        #expect(base.diagnostics.isEmpty && user.diagnostics.isEmpty)
        let merged = base.ruleSet.merged(with: user.ruleSet, disabled: user.disabled)
        #expect(merged.rules.map(\.id) == ["A-1"])
        #expect(merged.rules[0].severity == .high)
    }

    @Test func hexStringsAndCapture() {
        let out = RuleLoader().load(yaml: """
        rules:
          - id: H-1
            title: hex
            category: c
            severity: low
            strings:
              m: {hex: "55 50 58 21"}
              u: {text: "stratum+tcp://", capture: url, nocase: true}
        """, file: "h.yaml")
        #expect(out.diagnostics.isEmpty)
        #expect(out.ruleSet.rules[0].strings[0].bytes == Array("UPX!".utf8))
        #expect(out.ruleSet.rules[0].strings[1].capture == .url)
        #expect(out.ruleSet.rules[0].strings[1].nocase)
    }
}
