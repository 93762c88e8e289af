import Foundation
import Testing
import TestSupport

/// Real XMRig (Debian 13's build, amd64, arm64 and i386) packed by real UPX with every method UPX
/// uses for ELF, also with UPX's magic and headers wiped: each is named XMRig (critical) after
/// unpacking, as a file and inside image archives; amd64 packs still run.
@Suite(.serialized) struct UPXTests {
    func findings(_ out: String) -> [[String: Any]] {
        let obj = try? JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any]
        return ((obj?["targets"] as? [[String: Any]])?.first?["findings"] as? [[String: Any]]) ?? []
    }

    func xmrigFinding(_ out: String) -> [String: Any]? { findings(out).first { $0["ruleId"] as? String == "MW-BIN-XMRIG" } }

    func evidenceValues(_ f: [String: Any]?) -> [String] { (f?["evidence"] as? [[String: Any]])?.compactMap { $0["value"] as? String } ?? [] }

    /// The amd64 build runs in a root with its own (Debian 13) libraries.
    func runsAsXMRig(_ packed: String) throws -> Bool {
        let inRoot = UPXTools.xmrigRoot + "/tmp/" + (packed as NSString).lastPathComponent
        try? FileManager.default.removeItem(atPath: inRoot)
        try FileManager.default.copyItem(atPath: packed, toPath: inRoot)
        defer { try? FileManager.default.removeItem(atPath: inRoot) }
        let r = try run(["chroot", UPXTools.xmrigRoot, "/tmp/" + (packed as NSString).lastPathComponent, "--version"])
        return r.status == 0 && String(decoding: r.out, as: UTF8.self).contains("XMRig 6.")
    }

    @Test(arguments: UPXTools.architectures)
    func packedXMRigEveryMethod(arch: String) throws {
        try UPXTools.require()
        let dir = try TempDir("upx")
        defer { dir.cleanup() }
        for method in UPXTools.methods {
            let packed = dir.path + "/xmrig.\(method)"
            try UPXTools.pack(UPXTools.xmrig(arch), method: method, to: packed)
            let wiped = try dir.file("wiped.\(method)", UPXTools.wipeHeaders(Array(try Data(contentsOf: URL(fileURLWithPath: packed)))), mode: 0o755)
            // upx itself refuses the wiped file.
            #expect(try run([UPXTools.upx, "-t", wiped]).status != 0, "\(arch) \(method): upx -t accepted the wiped file")
            for (label, file) in [("packed", packed), ("wiped", wiped)] {
                if arch == "amd64" { #expect(try runsAsXMRig(file), "\(arch) \(method) \(label) does not run") }
                let r = try minewatch(["scan", "-f", "json", file])
                #expect(r.status == 1, "\(arch) \(method) \(label): \(r.err)")
                let x = xmrigFinding(r.out)
                #expect(x?["severity"] as? String == "critical", "\(arch) \(method) \(label): \(findings(r.out).map { $0["ruleId"] ?? "" })")
                let name = method == "lzma" ? "LZMA" : method.uppercased()
                #expect(evidenceValues(x).contains { $0.hasPrefix("UPX-packed (\(name), ") && $0.contains(" MiB -> ") }, "\(evidenceValues(x))")
                let tampered = findings(r.out).contains { $0["ruleId"] as? String == "MW-PACKED-TAMPERED" }
                #expect(tampered == (label == "wiped"), "\(arch) \(method) \(label)")
            }
        }
    }

    @Test func wipedPackedXMRigInImageArchives() throws {
        try UPXTools.require()
        try Podman.require()
        let dir = try TempDir("upximg")
        defer { dir.cleanup() }
        let packed = dir.path + "/packed"
        try UPXTools.pack(UPXTools.xmrig("amd64"), method: "nrv2e", to: packed)
        _ = try dir.file("root/usr/lib/systemd/systemd-networkd-helper", UPXTools.wipeHeaders(Array(try Data(contentsOf: URL(fileURLWithPath: packed)))), mode: 0o755)
        _ = try dir.file("root/etc/os-release", Array("ID=debian\n".utf8))
        let tag = "localhost/mw-it-upx:\(UUID().uuidString.prefix(8).lowercased())"
        try Podman.importRootfs(dir.path + "/root", tag: tag)
        defer { Podman.removeImage(tag) }
        for (format, out) in try Podman.savedArchives(tag, in: dir.path) {
            let r = try minewatch(["scan", "-f", "json", out])
            let x = xmrigFinding(r.out)
            #expect(x?["severity"] as? String == "critical", "\(format): \(r.out)")
            #expect(x?["path"] as? String == "/usr/lib/systemd/systemd-networkd-helper")
            #expect(findings(r.out).contains { $0["ruleId"] as? String == "MW-PACKED-TAMPERED" })
        }
    }

    @Test func damagedPackedFileStaysALowPackedFinding() throws {
        try UPXTools.require()
        let dir = try TempDir("upxbad")
        defer { dir.cleanup() }
        let packed = dir.path + "/packed"
        try UPXTools.pack(UPXTools.xmrig("amd64"), method: "nrv2b", to: packed)
        var b = Array(try Data(contentsOf: URL(fileURLWithPath: packed)))
        var rand = Samples.Rand(seed: 3)
        for i in (b.count / 3)..<(b.count / 3 + 4096) { b[i] = UInt8(truncatingIfNeeded: rand.next()) }
        let file = try dir.file("damaged", b)
        let r = try minewatch(["scan", "-f", "json", file])
        #expect(xmrigFinding(r.out) == nil)
        let p = findings(r.out).first { $0["ruleId"] as? String == "MW-PACKED-UPX" }
        #expect(p?["severity"] as? String == "low", "\(r.out)")
        #expect(evidenceValues(p).contains { $0.hasPrefix("UPX blocks not unpacked: ") }, "\(evidenceValues(p))")
        // A benign program packed by UPX is a low packed-executable finding, nothing more.
        try UPXTools.pack("/bin/ls", method: "nrv2e", to: dir.path + "/ls")
        let ls = try minewatch(["scan", "-f", "json", dir.path + "/ls"])
        #expect(findings(ls.out).allSatisfy { ($0["severity"] as? String) == "low" && ($0["category"] as? String) == "packed-executable" }, "\(ls.out)")
    }
}

/// `watch` reads a running executable through the same analysis: a UPX-packed XMRig with its
/// headers wiped, running in a container (no network, so it only retries its pool), is named.
@Suite(.serialized) struct PackedMinerWatchTests {
    @Test func packedMinerRunningInAContainerIsNamed() throws {
        try UPXTools.require()
        try Podman.require()
        let dir = try TempDir("upxwatch")
        defer { dir.cleanup() }
        let packed = dir.path + "/packed"
        try UPXTools.pack(UPXTools.xmrig("amd64"), method: "lzma", to: packed)
        // The miner's own (Debian 13) libraries as the image, the wiped pack under an innocent name.
        let root = dir.path + "/root"
        #expect(try run(["cp", "-a", UPXTools.xmrigRoot, root]).status == 0)
        try? FileManager.default.removeItem(atPath: root + "/usr/bin/xmrig")
        _ = try dir.file("root/usr/sbin/kworker", UPXTools.wipeHeaders(Array(try Data(contentsOf: URL(fileURLWithPath: packed)))), mode: 0o755)
        let tag = "localhost/mw-it-upxwatch:\(UUID().uuidString.prefix(8).lowercased())"
        try Podman.importRootfs(root, tag: tag)
        defer { Podman.removeImage(tag) }
        let name = "mw-upx-miner-\(UUID().uuidString.prefix(6).lowercased())"
        defer { _ = try? run(["podman", "rm", "-f", "-t", "0", name]) }
        let id = try Podman.runDetached(["--network", "none", "--name", name, tag, "/usr/sbin/kworker",
                                         "-o", "198.18.1.250:3333", "-u", "x", "-p", "x", "--threads", "1", "--no-color"])
        let out = dir.path + "/alerts.jsonl"
        let r = try run([minewatchBinary(), "watch", "--interval", "1", "--duration", "8", "--output", out, "--container", id])
        #expect(r.status == 0, "\(r.err)")
        let a = readAlerts(out).first { $0.containerID == id && $0["detector"] as? String == "miner-process" }
        #expect(a?["family"] as? String == "xmrig", "\(readAlerts(out))")
        #expect(a?["severity"] as? String == "critical")
        let ev = (a?["evidence"] as? [[String: Any]])?.compactMap { $0["value"] as? String } ?? []
        #expect(ev.contains { $0.hasPrefix("UPX-packed (LZMA, ") }, "\(ev)")
    }
}
