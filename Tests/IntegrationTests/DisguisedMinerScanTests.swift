import Foundation
import Testing
import TestSupport

/// `scan` judges the algorithm a miner must run: real XMRig builds (amd64, arm64, i386) rebranded,
/// with every printable string overwritten, and rebranded then UPX-packed with its headers wiped, are each
/// named XMRig (critical) by the algorithm rule, as files and inside image archives. Honest crypto,
/// proof-of-work and compression code stays at info.
@Suite(.serialized) struct DisguisedMinerScanTests {
    func findings(_ out: String) -> [[String: Any]] {
        let obj = try? JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any]
        return ((obj?["targets"] as? [[String: Any]]) ?? []).flatMap { ($0["findings"] as? [[String: Any]]) ?? [] }
    }

    func algorithmVerdict(_ out: String) -> [String: Any]? { findings(out).first { $0["ruleId"] as? String == "MW-ALG-XMRIG" } }

    @Test(arguments: UPXTools.architectures)
    func rebrandedAndStringlessXMRigIsStillXMRig(arch: String) throws {
        try UPXTools.require()
        let dir = try TempDir("disguise")
        defer { dir.cleanup() }
        let original = Array(try Data(contentsOf: URL(fileURLWithPath: UPXTools.xmrig(arch))))
        let rebranded = Disguises.rebrand(original)
        let stringless = Disguises.overwriteStrings(rebranded)
        #expect(!String(decoding: stringless, as: UTF8.self).lowercased().contains("xmrig"))
        let files = [
            ("rebranded", try dir.file("sysupdate", rebranded, mode: 0o755)),
            ("stringless", try dir.file("kworker", stringless, mode: 0o755)),
        ]
        for (label, file) in files {
            let r = try minewatch(["scan", "-f", "json", file])
            let x = algorithmVerdict(r.out)
            #expect(r.status == 1, "\(arch) \(label): \(r.err)")
            #expect(x?["severity"] as? String == "critical" && x?["family"] as? String == "xmrig",
                    "\(arch) \(label): \(findings(r.out).map { "\($0["ruleId"] ?? "") \($0["severity"] ?? "")" })")
        }
        // No string rule is left to name the stringless build: the constants alone do it.
        let r = try minewatch(["scan", "-f", "json", files[1].1])
        let ids = Set(findings(r.out).compactMap { $0["ruleId"] as? String })
        #expect(ids.isSubset(of: ["MW-ALG-XMRIG", "MW-ALG-RANDOMX", "MW-ALG-CRYPTONOTE"]), "\(arch): \(ids)")
        guard arch == "amd64" else { return }
        // The rebranded build packed and wiped on top (upx refuses a file whose section names are
        // overwritten): unpacked, then named by its constants.
        let packed = dir.path + "/packed"
        try UPXTools.pack(files[0].1, method: "nrv2e", to: packed)
        let wiped = try dir.file("wiped", UPXTools.wipeHeaders(Array(try Data(contentsOf: URL(fileURLWithPath: packed)))), mode: 0o755)
        let p = try minewatch(["scan", "-f", "json", wiped])
        #expect(algorithmVerdict(p.out)?["severity"] as? String == "critical", "packed: \(findings(p.out).map { $0["ruleId"] ?? "" })")
    }

    @Test func stringlessXMRigInImageArchives() throws {
        try UPXTools.require()
        try Podman.require()
        let dir = try TempDir("disguiseimg")
        defer { dir.cleanup() }
        let bytes = Disguises.overwriteStrings(Disguises.rebrand(Array(try Data(contentsOf: URL(fileURLWithPath: UPXTools.xmrig("amd64"))))))
        _ = try dir.file("root/usr/local/bin/node-exporter", bytes, mode: 0o755)
        _ = try dir.file("root/etc/os-release", Array("ID=debian\n".utf8))
        let tag = "localhost/mw-it-disguise:\(UUID().uuidString.prefix(8).lowercased())"
        try Podman.importRootfs(dir.path + "/root", tag: tag)
        defer { Podman.removeImage(tag) }
        for (format, out) in try Podman.savedArchives(tag, in: dir.path) {
            let r = try minewatch(["scan", "-f", "json", out])
            let x = algorithmVerdict(r.out)
            #expect(x?["severity"] as? String == "critical", "\(format): \(findings(r.out).map { $0["ruleId"] ?? "" })")
            #expect(x?["path"] as? String == "/usr/local/bin/node-exporter")
        }
    }

    /// A Monero node and wallet with tevador's RandomX library, libsodium, Argon2, mbed TLS, a Go
    /// program with AES (age), a Rust program (ripgrep), and this machine's OpenSSL, GnuTLS, Nettle,
    /// libgcrypt, zlib, liblzma, zstd and podman (Go): nothing above info.
    @Test func honestCryptoAndProofOfWorkCodeStaysInfo() throws {
        try prerequisite(FileManager.default.fileExists(atPath: Disguises.benignCrypto + "/.complete"),
                         "the benign crypto corpus is missing (scripts/install-deps fetches it into \(Disguises.benignCrypto))")
        let dir = try TempDir("honestcrypto")
        defer { dir.cleanup() }
        let system = ["/usr/lib/x86_64-linux-gnu/libcrypto.so.3", "/usr/lib/x86_64-linux-gnu/libssl.so.3",
                      "/usr/lib/x86_64-linux-gnu/libgnutls.so.30", "/usr/lib/x86_64-linux-gnu/libnettle.so.8",
                      "/usr/lib/x86_64-linux-gnu/libgcrypt.so.20", "/usr/lib/x86_64-linux-gnu/libz.so.1",
                      "/usr/lib/x86_64-linux-gnu/liblzma.so.5", "/usr/lib/x86_64-linux-gnu/libzstd.so.1", "/usr/bin/podman"]
        var copied = 0
        for path in system where FileManager.default.fileExists(atPath: path) {
            let real = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
            _ = try dir.file("root" + path, Array(try Data(contentsOf: URL(fileURLWithPath: real))), mode: 0o755)
            copied += 1
        }
        #expect(copied >= 3)
        let r = try minewatch(["scan", "-f", "json", Disguises.benignCrypto, dir.path + "/root"])
        let all = findings(r.out)
        let algorithm = all.filter { ($0["ruleId"] as? String)?.hasPrefix("MW-ALG-") == true }
        #expect(algorithm.allSatisfy { $0["severity"] as? String == "info" }, "\(algorithm.map { "\($0["ruleId"] ?? "") \($0["path"] ?? "") \($0["severity"] ?? "")" })")
        // They are there as information: RandomX in librandomx, CryptoNote code in the Monero programs.
        #expect(algorithm.contains { $0["ruleId"] as? String == "MW-ALG-RANDOMX" && ($0["path"] as? String ?? "").hasSuffix("librandomx.so.0.0.0") })
        #expect(!all.contains { $0["category"] as? String == "miner-binary" }, "\(all.map { $0["ruleId"] ?? "" })")
        // Nothing at all above info: the Monero wallet's own donation address is a published one.
        #expect(all.allSatisfy { $0["severity"] as? String == "info" }, "\(all.map { "\($0["ruleId"] ?? "") \($0["path"] ?? "") \($0["severity"] ?? "")" })")
    }
}
