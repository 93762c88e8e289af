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
