import MinewatchAnalysis
import MinewatchCore
import MinewatchModel
import MinewatchSignatures
import Testing

/// The file analysis alone (what scan and watch both call): text and bytes against the bundled
/// rules, capping by benign context, and correlations.
@Suite struct FileAnalyzerTests {
    static let rules = CompiledRules(BundledRules.load().0)

    static func analyze(_ text: String, path: String) throws -> [Finding] {
        let analyzer = FileAnalyzer(rules: rules)
        let bytes = Array(text.utf8)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: FileAnalyzer.chunkSize, alignment: 16)
        defer { buffer.deallocate() }
        var offset = 0
        return try analyzer.analyze(path: path, layer: nil, read: { (b) throws(MinewatchError) -> Int in
            let n = min(b.count, bytes.count - offset)
            if n > 0 { bytes[offset..<(offset + n)].withUnsafeBytes { b.copyMemory(from: $0) } }
            offset += n
            return n
        }, buffer: buffer).findings
    }

    static let minerConfig = """
    {"pools": [{"url": "stratum+tcp://pool.supportxmr.com:3333", "user": "44AFFq5kSiGBoZ4NMDwYtN18obc8AemS33DBLWs3H7otXft3XjrpDtQGv7SqSsaBYBb98uNbr2VBBEt7f2wfn3RVGQBEP3A", "pass": "x"}],
     "donate-level": 1, "cpu": {"enabled": true}, "randomx": {"mode": "auto"}}
    """

    @Test func minerConfigIsFoundAndNothingCapsIt() throws {
        let f = try Self.analyze(Self.minerConfig, path: "/etc/xmrig/config.json")
        #expect(f.contains { $0.severity >= .high }, "\(f.map(\.ruleId))")
        #expect(f.allSatisfy { $0.cappedFrom == nil })
    }

    /// In a security tool's rule file the same strings are capped, typed (not read from the note),
    /// and a capped finding raises nothing by correlation.
    @Test func benignContextCapsWithATypedFlag() throws {
        let yara = "rule xmrig_config\n{\n  strings:\n    $a = \"donate-level\"\n  condition:\n    any of them\n}\n// " + Self.minerConfig
        let f = try Self.analyze(yara, path: "/usr/share/rules/miners.yar")
        let capped = f.filter { $0.cappedFrom != nil }
        #expect(!capped.isEmpty, "\(f.map(\.ruleId))")
        #expect(capped.allSatisfy { $0.severity == .info && ($0.cappedFrom ?? .info) > .info })
        #expect(capped.allSatisfy { $0.note?.hasPrefix("capped at info") == true })
        #expect(f.filter { $0.category != "benign-context" }.allSatisfy { $0.severity == .info })
    }

    @Test func correlationRaisesOnlyWithPartners() {
        let c = Correlation(id: "C", title: "t", scope: .file, targetCategories: ["packer"], withCategories: ["pool-url"],
                            withMinSeverity: .medium, raiseTo: .high, source: RuleSource(file: "x", line: 1))
        func finding(_ category: String, _ severity: Severity) -> Finding {
            Finding(ruleId: category, severity: severity, family: nil, category: category, title: category, path: "/f", evidence: [])
        }
        var alone = [finding("packer", .low)]
        Correlator.apply([c], to: &alone)
        #expect(alone[0].severity == .low)
        var paired = [finding("packer", .low), finding("pool-url", .medium)]
        Correlator.apply([c], to: &paired)
        #expect(paired[0].severity == .high && paired[0].note?.contains("raised from low by C") == true)
        // A partner that benign context capped raises nothing.
        var excluded = [finding("packer", .low), finding("pool-url", .medium)]
        excluded[1].cappedFrom = .high
        Correlator.apply([c], to: &excluded)
        #expect(excluded[0].severity == .low)
        // Nor is a capped finding raised.
        var cappedTarget = [finding("packer", .low), finding("pool-url", .medium)]
        cappedTarget[0].cappedFrom = .critical
        Correlator.apply([c], to: &cappedTarget)
        #expect(cappedTarget[0].severity == .low)
    }
}
