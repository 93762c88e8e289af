import Foundation
import Testing
import TestSupport

/// Images made by podman itself (`podman import`, `podman save` in both archive formats),
/// scanned by the built binary.
@Suite(.serialized) struct PodmanImageTests {
    func scanJSON(_ path: String) throws -> (Int32, [String: Any]) {
        let r = try minewatch(["scan", "-f", "json", path])
        let obj = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any] ?? [:]
        return (r.status, obj)
    }

    func findings(_ obj: [String: Any]) -> [[String: Any]] {
        ((obj["targets"] as? [[String: Any]])?.first?["findings"] as? [[String: Any]]) ?? []
    }

    @Test func minerImageInBothArchiveFormats() throws {
        try Podman.require()
        let dir = try TempDir("pod")
        defer { dir.cleanup() }
        let tag = "localhost/mw-it-miner:\(UUID().uuidString.prefix(8).lowercased())"
        defer { Podman.removeImage(tag) }
        _ = try dir.file("root/bin/busybox", Array(try Data(contentsOf: URL(fileURLWithPath: "/bin/busybox"))), mode: 0o755)
        _ = try dir.file("root/usr/lib/systemd/systemd-journal", Samples.elf(Samples.packetcryptStrings), mode: 0o755)
        let pkt = "pkt1qg3px2vfzvgjzmu4dvyqpfsvn6d4sk97s3gqmgp"
        try Podman.importRootfs(dir.path + "/root", tag: tag, changes: [
            "ENTRYPOINT [\"/usr/lib/systemd/systemd-journal\"]", "CMD [\"ann\", \"-p\", \"\(pkt)\", \"http://pool.pkt.world\"]",
        ])
        for format in ["docker-archive", "oci-archive"] {
            let out = dir.path + "/\(format).tar"
            try Podman.cmd(["save", "--format", format, "-o", out, tag])
            let (status, obj) = try scanJSON(out)
            #expect(status == 1, "\(format)")
            let t = (obj["targets"] as? [[String: Any]])?.first
            #expect(t?["kind"] as? String == format)
            let fs = findings(obj)
            let bin = fs.first { $0["ruleId"] as? String == "MW-BIN-PACKETCRYPT" }
            #expect(bin?["path"] as? String == "/usr/lib/systemd/systemd-journal", "\(format)")
            #expect(bin?["severity"] as? String == "critical")
            #expect((bin?["layer"] as? String)?.hasPrefix("sha256:") == true)
            #expect(fs.contains { $0["ruleId"] as? String == "MW-CMD-PACKETCRYPT" && $0["path"] as? String == "config:Entrypoint+Cmd" })
        }
    }

    /// The original C/JavaScript PacketCrypt miner as it is deployed: a checkout run by the real
    /// Node.js runtime of this machine (`CMD node annmine.js --paymentAddr pkt1... http://POOL`).
    @Test func packetCryptNodeMinerImage() throws {
        try Podman.require()
        let dir = try TempDir("pod")
        defer { dir.cleanup() }
        let tag = "localhost/mw-it-annmine:\(UUID().uuidString.prefix(8).lowercased())"
        defer { Podman.removeImage(tag) }
        if let node = ["/usr/bin/node", "/usr/local/bin/node"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) {
            _ = try dir.file("root/usr/bin/node", Array(try Data(contentsOf: URL(fileURLWithPath: node))), mode: 0o755)
        }
        for (p, d) in PacketCryptCheckout.files() { _ = try dir.file("root" + p, d, mode: p.contains("/bin/") ? 0o755 : 0o644) }
        let cmd = PacketCryptCheckout.cmd.map { "\"\($0)\"" }.joined(separator: ", ")
        try Podman.importRootfs(dir.path + "/root", tag: tag, changes: ["WORKDIR /opt/PacketCrypt", "CMD [\(cmd)]"])
        for format in ["docker-archive", "oci-archive"] {
            let out = dir.path + "/\(format).tar"
            try Podman.cmd(["save", "--format", format, "-o", out, tag])
            let (status, obj) = try scanJSON(out)
            #expect(status == 1)
            let fs = findings(obj)
            let top = fs.filter { $0["severity"] as? String == "critical" }
            #expect(top.contains { $0["path"] as? String == "/opt/PacketCrypt/annmine.js" }, "\(format): \(fs)")
            #expect(top.allSatisfy { $0["family"] as? String == "packetcrypt" })
            #expect(!fs.contains { $0["path"] as? String == "/usr/bin/node" && $0["severity"] as? String != "info" })
        }
    }

    @Test func benignImageHasNothingAboveInfo() throws {
        try Podman.require()
        let dir = try TempDir("pod")
        defer { dir.cleanup() }
        let tag = "localhost/mw-it-benign:\(UUID().uuidString.prefix(8).lowercased())"
        defer { Podman.removeImage(tag) }
        // A Debian-like userland: busybox plus the host's Python standard library and its docs.
        _ = try dir.file("root/bin/busybox", Array(try Data(contentsOf: URL(fileURLWithPath: "/bin/busybox"))), mode: 0o755)
        _ = try run(["cp", "-a", "/usr/lib/python3.11", dir.path + "/root/usr/lib/"])
        _ = try run(["cp", "-a", "/etc/ssl", dir.path + "/root/etc/"])
        try Podman.importRootfs(dir.path + "/root", tag: tag, changes: ["CMD [\"/usr/bin/python3\", \"-m\", \"http.server\"]", "ENV PYTHONUNBUFFERED=1"])
        let out = dir.path + "/benign.tar"
        try Podman.cmd(["save", "--format", "oci-archive", "-o", out, tag])
        let (status, obj) = try scanJSON(out)
        #expect(status == 0)
        let bad = findings(obj).filter { $0["severity"] as? String != "info" }
        #expect(bad.isEmpty, "\(bad)")
    }
}
