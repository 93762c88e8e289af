import Foundation
import Testing
import TestSupport

/// Image names resolved through a real engine API (podman's Docker-compatible service) and a real
/// registry (Debian's docker-registry on loopback), pushed to with `podman push`.
@Suite(.serialized) struct EngineAndRegistryTests {
    /// A miner image made with podman import; returns its tag.
    func makeImage(_ dir: TempDir) throws -> String {
        let tag = "localhost/mw-it-ref:\(UUID().uuidString.prefix(8).lowercased())"
        _ = try dir.file("img/usr/bin/svc", Samples.elf(Samples.packetcryptStrings), mode: 0o755)
        _ = try dir.file("img/etc/os-release", Array("ID=test\n".utf8))
        try Podman.importRootfs(dir.path + "/img", tag: tag, changes: ["CMD [\"/usr/bin/svc\"]"])
        return tag
    }

    func findingsOf(_ out: String) -> [[String: Any]] {
        let obj = try? JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any]
        return ((obj?["targets"] as? [[String: Any]])?.first?["findings"] as? [[String: Any]]) ?? []
    }

    func kindOf(_ out: String) -> String? {
        let obj = try? JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any]
        return (obj?["targets"] as? [[String: Any]])?.first?["kind"] as? String
    }

    @Test func engineAPIOverPodmanSocket() throws {
        try requireTools(["podman"])
        let dir = try TempDir("eng")
        defer { dir.cleanup() }
        let tag = try makeImage(dir)
        defer { Podman.removeImage(tag) }
        let sock = dir.path + "/podman.sock"
        let svc = try BackgroundProcess(["podman", "system", "service", "--time=0", "unix://\(sock)"], label: "podman-api")
        defer { svc.stop() }
        #expect(svc.wait { FileManager.default.fileExists(atPath: sock) }, "podman service did not start: \(svc.output)")
        let r = try minewatch(["scan", "-f", "json", "--engine-socket", sock, "engine:\(tag)"])
        #expect(r.status == 1, "\(r.err)")
        #expect(kindOf(r.out) == "engine-image")
        #expect(findingsOf(r.out).contains { $0["ruleId"] as? String == "MW-BIN-PACKETCRYPT" && $0["path"] as? String == "/usr/bin/svc" })
        // A bare name tries the engine first.
        let bare = try minewatch(["scan", "-f", "json", "--engine-socket", sock, tag])
        #expect(kindOf(bare.out) == "engine-image")
        // An image the engine does not have, with no registry to fall back on: exit 2, clear error.
        let missing = try minewatch(["scan", "--engine-socket", sock, "engine:localhost/not-there:1"])
        #expect(missing.status == 2)
        #expect(missing.err.contains("does not have localhost/not-there:1"))
    }

    @Test func registryAnonymousBasicAndBearer() throws {
        try requireTools(["podman", "docker-registry", "htpasswd", "python3"])
        let dir = try TempDir("reg")
        defer { dir.cleanup() }
        let tag = try makeImage(dir)
        defer { Podman.removeImage(tag) }
        let open = freeLoopbackPort(), locked = freeLoopbackPort(), proxy = freeLoopbackPort()
        let data = dir.path + "/data"
        let htpasswd = try run(["htpasswd", "-Bbn", "alice", "s3cret"]).out
        let htfile = try dir.file("htpasswd", htpasswd)
        let anon = try startRegistry(port: open, data: data, dir: dir)
        defer { anon.stop() }
        let basic = try startRegistry(port: locked, data: data, dir: dir, extra: "auth:\n  htpasswd:\n    realm: test\n    path: \(htfile)")
        defer { basic.stop() }
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures/token-proxy.py").path
        let bearer = try BackgroundProcess(["python3", script, String(proxy), String(open), "alice", "s3cret"], label: "token-proxy")
        defer { bearer.stop() }
        #expect(anon.wait { loopbackPortOpen(open) } && basic.wait { loopbackPortOpen(locked) } && bearer.wait { loopbackPortOpen(proxy) })
        try Podman.cmd(["push", "--tls-verify=false", tag, "127.0.0.1:\(open)/mw/eng:1"])

        let a = try minewatch(["scan", "-f", "json", "--insecure", "registry:127.0.0.1:\(open)/mw/eng:1"])
        #expect(a.status == 1, "\(a.err)")
        #expect(kindOf(a.out) == "registry-image")
        #expect(findingsOf(a.out).contains { $0["ruleId"] as? String == "MW-BIN-PACKETCRYPT" })

        let noCreds = try minewatch(["scan", "--insecure", "registry:127.0.0.1:\(locked)/mw/eng:1"])
        #expect(noCreds.status == 2)
        #expect(noCreds.err.contains("wants a username and password"))
        let b = try minewatch(["scan", "-f", "json", "--insecure", "--username", "alice", "--password", "s3cret", "127.0.0.1:\(locked)/mw/eng:1"])
        #expect(findingsOf(b.out).contains { $0["ruleId"] as? String == "MW-BIN-PACKETCRYPT" }, "\(b.err)")

        let t = try minewatch(["scan", "-f", "json", "--insecure", "registry:127.0.0.1:\(proxy)/mw/eng:1"],
                              env: ["MINEWATCH_REGISTRY_USERNAME": "alice", "MINEWATCH_REGISTRY_PASSWORD": "s3cret"])
        #expect(findingsOf(t.out).contains { $0["ruleId"] as? String == "MW-BIN-PACKETCRYPT" }, "\(t.err)")
        #expect(bearer.output.contains("GET /token"))
        let wrong = try minewatch(["scan", "--insecure", "--username", "alice", "--password", "nope", "registry:127.0.0.1:\(proxy)/mw/eng:1"])
        #expect(wrong.status == 2)
        // Without --insecure a plain-HTTP registry is refused (TLS is the default).
        let tls = try minewatch(["scan", "registry:127.0.0.1:\(open)/mw/eng:1"])
        #expect(tls.status == 2)
    }
}
