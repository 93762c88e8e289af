import Foundation
import MinewatchCore
import MinewatchModel
import MinewatchOutput
import MinewatchSignatures
import Testing

/// Golden-file tests for every format. Refresh with UPDATE_GOLDEN=1 swift test --filter OutputTests.
@Suite struct RenderingTests {
    static let report: ScanReport = {
        let l0 = "sha256:" + String(repeating: "a", count: 64), l1 = "sha256:" + String(repeating: "b", count: 64)
        var t = TargetReport(target: "img.tar", kind: "docker-archive",
                             image: ImageInfo(references: ["localhost/app:1"], configDigest: "sha256:" + String(repeating: "c", count: 64), layers: [l0, l1]))
        t.findings = [
            Finding(ruleId: "MW-BIN-XMRIG", severity: .critical, family: "xmrig", category: "miner-binary",
                    title: "XMRig Monero miner executable", path: "/usr/bin/kworker", layer: l0, hidden: true,
                    evidence: [Evidence(kind: .signature, name: "banner", value: "XMRig/%s libuv/%s%s", offset: 4121),
                               Evidence(kind: .wallet, name: "XMR", value: "44AFFq5k...", offset: 9000)]),
            Finding(ruleId: "MW-CMD-PACKETCRYPT", severity: .high, family: "packetcrypt", category: "miner-cmdline",
                    title: "PacketCrypt announcement miner command line", path: "config:Entrypoint+Cmd",
                    evidence: [Evidence(kind: .signature, name: "annp", value: "ann -p pkt1", offset: 14)]),
            Finding(ruleId: "MW-POOL-URL", severity: .info, family: nil, category: "pool-url", title: "Mining pool URL (Stratum)",
                    path: "/usr/share/doc/x/README.md", layer: l1,
                    evidence: [Evidence(kind: .pool, name: "tcp", value: "stratum+tcp://p:3333", offset: 3)],
                    note: "capped at info from medium: file is a Documentation (MW-CTX-DOCS)"),
        ]
        t.errors = [ScanIssue(layer: l1, path: "/x", message: "layer 1: read tar header: bad header checksum")]
        t.stats.files = 12
        t.stats.bytes = 123_456
        t.stats.layersScanned = 2
        return ScanReport(targets: [t], version: "0.0.0-test")
    }()

    static let rules: RuleSet = BundledRules.load().0

    func golden(_ name: String, _ text: String) throws {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden")
        let file = dir.appendingPathComponent(name)
        if ProcessInfo.processInfo.environment["UPDATE_GOLDEN"] == "1" {
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            try text.write(to: file, atomically: true, encoding: .utf8)
        }
        let expected = try String(contentsOf: file, encoding: .utf8)
        #expect(text == expected, "\(name) differs from golden; run UPDATE_GOLDEN=1 to refresh after checking")
    }

    @Test(arguments: OutputFormat.allCases)
    func formatsMatchGolden(format: OutputFormat) throws {
        let text = ReportRenderer.render(Self.report, format: format, rules: Self.rules, color: false)
        try golden("report.\(format.rawValue)", text)
    }

    @Test func colourOnlyWhenAsked() {
        let plain = ReportRenderer.render(Self.report, format: .table, rules: Self.rules, color: false)
        let coloured = ReportRenderer.render(Self.report, format: .table, rules: Self.rules, color: true)
        #expect(!plain.contains("\u{1b}["))
        #expect(coloured.contains("\u{1b}[1;31mCRITICAL"), "\(coloured.unicodeScalars.filter { $0.value == 0x1b }.count) escapes; \(coloured.debugDescription.prefix(300))")
    }
}
