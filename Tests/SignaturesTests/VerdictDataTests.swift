import MinewatchModel
import MinewatchSignatures
import Testing

/// Titles, severities and techniques of pcap findings and watch alerts are rule data.
@Suite struct VerdictDataTests {
    @Test func bundledVerdictsAreComplete() {
        let set = BundledRules.load().0
        #expect(set.incompleteVerdicts().isEmpty, "\(set.incompleteVerdicts())")
        let s = set.verdict("MW-NET-STRATUM", "proven", ["protocol": "Stratum (Monero dialect)"])
        #expect(s.title == "Stratum (Monero dialect) mining session" && s.severity == .critical && s.technique == "T1496.001")
        #expect(set.verdict("MW-NET-POOL-DOMAIN", "packetcrypt").technique == "T1496.002")
        #expect(set.verdict("MW-NET-SERVICE", "contact", ["service": "Honeygain"]).title == "contact with a bandwidth-sharing service: Honeygain")
        // Without the bundled detection rules, the verdicts are still the bundled ones.
        #expect(BundledRules.load(includeBundled: false).0.incompleteVerdicts().isEmpty)
    }

    @Test func aRuleFileOverridesKeyByKey() {
        let user = RuleLoader().load(yaml: """
        version: 1
        verdicts:
          - id: MW-NET-POOL-DOMAIN
            severity: high
          - id: MW-NET-STRATUM
            cases:
              session: {title: "{protocol} seen"}
        """, file: "site.yaml")
        #expect(user.diagnostics.isEmpty, "\(user.diagnostics)")
        let set = BundledRules.load().0.merged(with: user.ruleSet)
        #expect(set.verdict("MW-NET-POOL-DOMAIN").severity == .high)
        #expect(set.verdict("MW-NET-POOL-DOMAIN").title == "contact with a mining pool domain", "keys not named stay")
        #expect(set.verdict("MW-NET-STRATUM", "session", ["protocol": "Stratum"]).title == "Stratum seen")
        #expect(set.verdict("MW-NET-STRATUM", "session").severity == .high)
        #expect(set.verdict("MW-NET-STRATUM", "proven", ["protocol": "Stratum"]).title == "Stratum mining session")
    }

    @Test func mistakesNameTheirFileAndLine() {
        let out = RuleLoader().load(yaml: """
        version: 1
        verdicts:
          - id: MW-NET-NOPE
          - id: MW-NET-STRATUM
            severity: urgent
            cases:
              maybe: {severity: high}
              proven: {title: "{pool} session", colour: red}
          - id: MW-NET-GETWORK
            technique: mining
        """, file: "bad.yaml")
        let text = out.diagnostics.map(\.description)
        #expect(text.contains { $0.hasPrefix("bad.yaml:3: rule MW-NET-NOPE: unknown verdict") }, "\(text)")
        #expect(text.contains { $0.hasPrefix("bad.yaml:5: rule MW-NET-STRATUM: 'severity' must be") }, "\(text)")
        #expect(text.contains { $0.hasPrefix("bad.yaml:7: rule MW-NET-STRATUM: unknown case 'maybe'") }, "\(text)")
        #expect(text.contains { $0.hasPrefix("bad.yaml:8: rule MW-NET-STRATUM: title uses '{pool}'") }, "\(text)")
        #expect(text.contains { $0.hasPrefix("bad.yaml:8: rule MW-NET-STRATUM: case 'proven': unknown key 'colour'") }, "\(text)")
        #expect(text.contains { $0.hasPrefix("bad.yaml:10: rule MW-NET-GETWORK: 'technique' must be") }, "\(text)")
        #expect(out.ruleSet.verdicts.isEmpty, "no verdict with a mistake is taken")
    }
}

/// One size grammar: `64Ki` is the same number of bytes in a rule's `maxsize`, in `models:` and in
/// the agent's config (which reads `models:` with the same parser).
@Suite struct SizeGrammarTests {
    @Test func sameBytesEverywhere() throws {
        for (text, bytes) in [("64Ki", 65536.0), ("64KiB", 65536), ("65536", 65536), ("1MiB", 1_048_576), ("2M", 2_000_000)] {
            let out = RuleLoader().load(yaml: """
            version: 1
            models:
              bandwidth: {minUpload: \(text)}
            rules:
              - id: SIZE-1
                title: size grammar
                category: pool-url
                severity: low
                maxsize: \(text)
                strings:
                  a: "stratum+tcp://"
                condition: $a
            """, file: "size.yaml")
            #expect(out.diagnostics.isEmpty, "\(text): \(out.diagnostics)")
            #expect(out.ruleSet.rules.first?.maxSize == Int64(bytes), "\(text)")
            #expect(out.ruleSet.models["bandwidth", "minUpload"] == bytes, "\(text)")
        }
        let bad = RuleLoader().load(yaml: "version: 1\nrules:\n  - id: SIZE-2\n    title: t\n    category: pool-url\n    severity: low\n    maxsize: 0.3Ki\n    strings:\n      a: \"stratum+tcp://\"\n    condition: $a\n", file: "bad.yaml")
        #expect(bad.diagnostics.contains { $0.description.hasPrefix("bad.yaml:7: rule SIZE-2: 'maxsize' must be a size") }, "\(bad.diagnostics)")
    }
}
