import Foundation
import Testing
import TestSupport

@Suite struct ScanCLITests {
    let dir: TempDir
    let clean: String
    let dirty: String
    let highOnly: String

    init() throws {
        dir = try TempDir("cli")
        _ = try dir.file("clean/etc/os-release", Array("ID=debian\n".utf8))
        _ = try dir.file("dirty/usr/bin/top2", Samples.elf(Samples.xmrigStrings))
        _ = try dir.file("high/srv/ann.json", Array("{\"payment_addr\":\"x\",\"pools\":[\"http://p\"]}".utf8))
        clean = dir.path + "/clean"
        dirty = dir.path + "/dirty"
        highOnly = dir.path + "/high"
    }

    @Test func exitCodes() throws {
        let ok = try minewatch(["scan", clean])
        #expect(ok.status == 0)
        #expect(ok.out.contains("Summary: 1 target, 0 findings, 0 errors"))
        #expect(ok.err.isEmpty, "stderr must stay empty when not a TTY: \(ok.err)")
        #expect(try minewatch(["scan", dirty]).status == 1)
        #expect(try minewatch(["scan", "--exit-code", "7", dirty]).status == 7)
        #expect(try minewatch(["scan", "--fail-on", "critical", highOnly]).status == 0)
        #expect(try minewatch(["scan", "--fail-on", "critical", dirty]).status == 1)
        let partial = try minewatch(["scan", "-f", "json", clean, dir.path + "/missing.tar"])
        #expect(partial.status == 2)
        #expect(partial.err.contains("missing.tar"))
        let obj = try JSONSerialization.jsonObject(with: Data(partial.out.utf8)) as? [String: Any]
        #expect((obj?["targets"] as? [Any])?.count == 2, "the readable target is still reported")
        // A missing archive given by a relative name is a file error, not an attempt to pull an image.
        let typo = try minewatch(["scan", "no-such-image.tar"])
        #expect(typo.status == 2)
        #expect(typo.err.contains("no-such-image.tar: open target: no such file or directory"))
        #expect(try minewatch(["scan", "--format", "xml", clean]).status == 64)
        #expect(try minewatch(["scan"]).status == 64)
    }

    @Test func jsonSchema() throws {
        let r = try minewatch(["scan", "-f", "json", dirty])
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any])
        #expect(obj["schemaVersion"] as? Int == 1)
        let t = try #require((obj["targets"] as? [[String: Any]])?.first)
        #expect(t["target"] as? String == dirty)
        #expect(t["kind"] as? String == "rootfs")
        #expect(t["errors"] is [Any])
        let f = try #require((t["findings"] as? [[String: Any]])?.first { $0["ruleId"] as? String == "MW-BIN-XMRIG" })
        for key in ["ruleId", "severity", "family", "category", "title", "path", "layer", "hidden", "evidence"] {
            #expect(f.keys.contains(key), "finding lacks \(key)")
        }
        #expect(f["layer"] is NSNull)
        #expect(f["severity"] as? String == "critical")
        let ev = try #require((f["evidence"] as? [[String: Any]])?.first)
        #expect(ev["kind"] as? String == "signature")
        #expect(ev["offset"] is Int)
    }

    @Test func sarif() throws {
        let r = try minewatch(["scan", "-f", "sarif", dirty])
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any])
        #expect(obj["version"] as? String == "2.1.0")
        let run = try #require((obj["runs"] as? [[String: Any]])?.first)
        let driver = try #require((run["tool"] as? [String: Any])?["driver"] as? [String: Any])
        let rules = try #require(driver["rules"] as? [[String: Any]])
        #expect(rules.contains { $0["id"] as? String == "MW-BIN-XMRIG" })
        let result = try #require((run["results"] as? [[String: Any]])?.first { $0["ruleId"] as? String == "MW-BIN-XMRIG" })
        #expect(result["level"] as? String == "error")
        let loc = (result["locations"] as? [[String: Any]])?.first?["physicalLocation"] as? [String: Any]
        #expect((loc?["artifactLocation"] as? [String: Any])?["uri"] as? String == "usr/bin/top2")
        #expect(((loc?["region"] as? [String: Any])?["startLine"] as? Int) == 1)
    }

    @Test func outputFileAndTable() throws {
        let out = dir.path + "/report.json"
        let r = try minewatch(["scan", "-f", "json", "-o", out, dirty])
        #expect(r.status == 1)
        #expect(r.out.isEmpty)
        #expect(FileManager.default.fileExists(atPath: out))
        let table = try minewatch(["scan", dirty]).out
        #expect(table.contains("CRITICAL MW-BIN-XMRIG"))
        #expect(table.contains("/usr/bin/top2"))
        #expect(!table.contains("\u{1b}["), "no colour when stdout is not a terminal")
    }
}

@Suite struct RulesCLITests {
    /// Rule and config files may be pipes (`<(...)`, /dev/stdin), read to their end.
    @Test func rulesAndConfigFromAPipe() throws {
        let rules = try run(["bash", "-c", "\(minewatchBinary()) rules validate <(printf 'version: 1\\nrules: []\\n')"])
        #expect(rules.status == 0, "\(rules.err)")
        #expect(String(decoding: rules.out, as: UTF8.self).contains("ok: 0 rules in 1 file"))
        let config = try run(["bash", "-c", "\(minewatchBinary()) config validate <(printf 'interval: 2s\\n')"])
        #expect(config.status == 0, "\(config.err)")
    }

    /// A target that cannot be opened is named once in its error line.
    @Test func missingTargetIsNamedOnce() throws {
        let r = try minewatch(["scan", "/nonexistent-target"])
        #expect(r.status == 2)
        #expect(r.err.contains("minewatch: /nonexistent-target: open target: no such file or directory"), "\(r.err)")
        #expect(!r.err.contains("/nonexistent-target:  /nonexistent-target"))
    }

    @Test func validateReportsFileLineAndRule() throws {
        let dir = try TempDir("rules")
        defer { dir.cleanup() }
        let bad = try dir.file("bad.yaml", Array("""
        rules:
          - id: X-1
            title: broken
            category: miner-binary
            severity: critical
            strings:
              a: "abcdef"
            condition: $a
        """.utf8))
        let r = try minewatch(["rules", "validate", bad])
        #expect(r.status == 1)
        #expect(r.out.contains("\(bad):8: rule X-1: category 'miner-binary' needs a condition of two or more strings"))
        let good = try dir.file("good.yaml", Array("""
        rules:
          - id: CORP-1
            title: internal miner build
            category: miner-binary
            family: corp-miner
            severity: high
            strings:
              a: "corp-miner-banner"
              b: "corp-pool.internal"
            condition: all of them
        """.utf8))
        let ok = try minewatch(["rules", "validate", good])
        #expect(ok.status == 0)
        #expect(ok.out.contains("ok: 1 rules"))
        // A user rule is used by scan.
        _ = try dir.file("t/bin/x", Samples.elf(["corp-miner-banner", "corp-pool.internal"]))
        let scan = try minewatch(["scan", "--rules", good, "-f", "json", dir.path + "/t"])
        #expect(scan.status == 1)
        #expect(scan.out.contains("\"ruleId\" : \"CORP-1\""))
        // A broken --rules file stops the scan with exit 2 and the diagnostic on stderr.
        let broken = try minewatch(["scan", "--rules", bad, dir.path + "/t"])
        #expect(broken.status == 2)
        #expect(broken.err.contains("bad.yaml:8"))
    }

    @Test func listShowsBundledRules() throws {
        let r = try minewatch(["rules", "list"])
        #expect(r.status == 0)
        #expect(r.out.contains("MW-BIN-PACKETCRYPT"))
        let j = try minewatch(["rules", "list", "-f", "json"])
        let rows = try JSONSerialization.jsonObject(with: Data(j.out.utf8)) as? [[String: Any]]
        #expect((rows?.count ?? 0) > 20)
    }
}

@Suite struct WatchCLITests {
    @Test func watchOptionsAreValidated() throws {
        #expect(try minewatch(["watch", "--interval", "0"]).status == 64)
        #expect(try minewatch(["watch", "--bw-min-upload", "fast"]).status == 64)
        #expect(try minewatch(["watch", "--bw-window", "1"]).status == 64)
        #expect(try minewatch(["watch", "--dry-run"]).status == 64, "--dry-run needs an action")
        #expect(try minewatch(["watch", "--action", "explode"]).status == 64)
        #expect(try minewatch(["watch", "--act-on", "urgent"]).status == 64)
    }

    @Test func anEngineThatIsNotThereIsReportedOnceAndWatchGoesOn() throws {
        // The host group (--include-host) always has processes, so there is telemetry to name in
        // every pass, whatever containers run (no content rules: the host's programs are not scanned).
        // 30 s: on a loaded machine the first pass over every host process (each executable read
        // once) can take ten seconds or more.
        let r = try minewatch(["watch", "--interval", "300ms", "--duration", "30s", "--format", "jsonl", "--telemetry", "--include-host",
                               "--no-capture", "--no-bundled-rules", "--rules", fixturePath("behaviour-only-rules.yaml"),
                               "--engine-socket", "/nonexistent/engine.sock", "--bw-min-upload", "1Mi", "--bw-window", "30s"])
        #expect(r.status == 0, "\(r.err)")
        let lines = r.out.split(separator: "\n")
        let objects = lines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(objects.count == lines.count, "every line is JSON: \(r.out.prefix(300))")
        let passes = objects.filter { $0["type"] as? String == "telemetry" && $0.containerID == "host" }
        #expect(passes.count >= 2, "telemetry of the host group in every pass: \(passes.count); \(r.err.suffix(600))")
        // The engine failure is reported exactly once however many lookups fail.
        #expect(r.err.components(separatedBy: "engine:").count == 2, "\(r.err)")
    }

    @Test func durationsAreTypedAsUsersTypeThem() throws {
        let bad = try minewatch(["watch", "--interval", "5x"])
        #expect(bad.status == 64 && bad.err.contains("--interval"), "\(bad.err)")
        #expect(try minewatch(["watch", "--duration", "1m5q"]).status == 64)
        let ok = try minewatch(["watch", "--interval", "500ms", "--duration", "1s", "--no-capture", "--container", "0123abcd", "--format", "jsonl"])
        #expect(ok.status == 0, "\(ok.err)")
        // A name no engine can resolve is an error, not a silent watch of nothing.
        let name = try minewatch(["watch", "--duration", "1s", "--container", "no-such-container", "--engine-socket", "/nonexistent/engine.sock"])
        #expect(name.status == 64 && name.err.contains("no-such-container"), "\(name.err)")
    }
}

@Suite struct PcapCLITests {
    static let pcaps = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/pcaps").path

    @Test func exitCodesAndFormats() throws {
        let xmr = Self.pcaps + "/xmr-eu1.nanopool.org.pcapng"
        let r = try minewatch(["pcap", xmr])
        #expect(r.status == 1 && r.out.contains("stratum-monero") && r.out.contains("CRITICAL"))
        #expect(try minewatch(["pcap", "--exit-code", "9", xmr]).status == 9)
        let j = try minewatch(["pcap", "-f", "json", xmr])
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(j.out.utf8)) as? [String: Any])
        #expect(obj["schemaVersion"] as? Int == 1 && (obj["captures"] as? [Any])?.count == 1)
        let dir = try TempDir("pcapcli")
        defer { dir.cleanup() }
        let junk = try dir.file("junk.pcap", Array("not a capture at all".utf8))
        let bad = try minewatch(["pcap", junk])
        #expect(bad.status == 2 && bad.err.contains("junk.pcap at offset 0"), "\(bad.err)")
        // Findings decide over read errors, as in scan.
        #expect(try minewatch(["pcap", xmr, junk]).status == 1)
        #expect(try minewatch(["pcap", "--fail-on", "critical", Self.pcaps + "/cgminer.s0.pcapng"]).status == 1)
        #expect(try minewatch(["pcap", "--format", "xml", xmr]).status == 64)
    }
}
