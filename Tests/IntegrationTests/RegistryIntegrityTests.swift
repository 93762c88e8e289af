import Foundation
import Testing
import TestSupport

/// A real registry (Debian's docker-registry, loopback) behind a proxy that lies: blobs that do not
/// match their digest, and manifests that declare layers smaller than they are, over plain HTTP
/// and over HTTPS with a private CA.
@Suite(.serialized) struct RegistryIntegrityTests {
    struct Pushed {
        var benign: String
        var miner: String
        var benignBlob: String
        var minerBlob: String
    }

    func report(_ out: String) -> [String: Any] {
        let obj = try? JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any]
        return ((obj?["targets"] as? [[String: Any]])?.first) ?? [:]
    }

    func findings(_ out: String) -> [[String: Any]] { (report(out)["findings"] as? [[String: Any]]) ?? [] }

    func has(_ out: String, _ rule: String, path: String? = nil) -> Bool {
        findings(out).contains { $0["ruleId"] as? String == rule && (path == nil || $0["path"] as? String == path) }
    }

    /// Pushes a benign image (with 24 MiB of incompressible data) and a miner image; returns their
    /// names in the registry and the digest of each one's first layer blob.
    func push(_ dir: TempDir, registry: Int) throws -> Pushed {
        var rand = Samples.Rand(seed: 99)
        _ = try dir.file("benign/usr/share/data.bin", rand.bytes(24 << 20))
        _ = try dir.file("benign/etc/os-release", Array("ID=test\n".utf8))
        _ = try dir.file("miner/usr/bin/svc", Samples.elf(Samples.xmrigStrings), mode: 0o755)
        let suffix = UUID().uuidString.prefix(8).lowercased()
        let tags = ["localhost/mw-int-benign:\(suffix)", "localhost/mw-int-miner:\(suffix)"]
        try Podman.importRootfs(dir.path + "/benign", tag: tags[0])
        try Podman.importRootfs(dir.path + "/miner", tag: tags[1])
        defer { tags.forEach(Podman.removeImage) }
        // One repository, so that a blob of one image can be served for the other's digest.
        let names = ["127.0.0.1:\(registry)/mw/app:benign", "127.0.0.1:\(registry)/mw/app:miner"]
        for (t, n) in zip(tags, names) { try Podman.cmd(["push", "--tls-verify=false", t, n]) }
        var blobs: [String] = []
        for n in names {
            let r = try minewatch(["scan", "-f", "json", "--insecure", "registry:\(n)"])
            let layers = ((report(r.out)["image"] as? [String: Any])?["layers"] as? [String]) ?? []
            blobs.append(layers.first ?? "")
        }
        return Pushed(benign: "mw/app:benign", miner: "mw/app:miner", benignBlob: blobs[0], minerBlob: blobs[1])
    }

    @Test func blobThatDoesNotMatchItsDigestIsReportedAndNeverCached() throws {
        try requireTools(["podman", "docker-registry", "python3"])
        let dir = try TempDir("regint")
        defer { dir.cleanup() }
        let regPort = freeLoopbackPort(), proxyPort = freeLoopbackPort(), swapPort = freeLoopbackPort()
        let registry = try startRegistry(port: regPort, data: dir.path + "/data", dir: dir)
        defer { registry.stop() }
        #expect(registry.wait { loopbackPortOpen(regPort) })
        let p = try push(dir, registry: regPort)
        #expect(p.benignBlob.hasPrefix("sha256:") && p.minerBlob.hasPrefix("sha256:"))
        // Asked for the miner's blob, this proxy serves the benign one; and the other way round.
        let hide = try BackgroundProcess(["python3", fixturePath("tamper-proxy.py"), String(proxyPort), String(regPort),
                                          "--swap", "\(p.minerBlob)=\(p.benignBlob)"], label: "tamper")
        defer { hide.stop() }
        let plant = try BackgroundProcess(["python3", fixturePath("tamper-proxy.py"), String(swapPort), String(regPort),
                                           "--swap", "\(p.benignBlob)=\(p.minerBlob)"], label: "tamper2")
        defer { plant.stop() }
        #expect(hide.wait { loopbackPortOpen(proxyPort) } && plant.wait { loopbackPortOpen(swapPort) })
        let cache = dir.path + "/cache"

        // The miner image, its layer swapped for benign bytes, scanned into a shared cache.
        let hidden = try minewatch(["scan", "-f", "json", "--insecure", "--cache", cache, "registry:127.0.0.1:\(proxyPort)/\(p.miner)"])
        let m = findings(hidden.out).first { $0["ruleId"] as? String == "MW-IMG-DIGEST" && $0["path"] as? String == "manifest:layers[0]" }
        #expect(m?["severity"] as? String == "high", "\(hidden.out) \(hidden.err)")
        let ev = (m?["evidence"] as? [[String: Any]])?.first?["value"] as? String
        #expect(ev == "image claims \(p.minerBlob) for content \(p.benignBlob)")
        #expect(hidden.status == 1)
        // The honest registry, same cache: the miner is still found (nothing was cached under its digest).
        let honest = try minewatch(["scan", "-f", "json", "--insecure", "--cache", cache, "registry:127.0.0.1:\(regPort)/\(p.miner)"])
        #expect(has(honest.out, "MW-BIN-XMRIG", path: "/usr/bin/svc"), "\(honest.out) \(honest.err)")
        #expect(!has(honest.out, "MW-IMG-DIGEST"))
        let stats = report(honest.out)["stats"] as? [String: Any]
        #expect(stats?["layersFromCache"] as? Int == 0)
        // The benign image with the miner's bytes planted under its digest: the miner is found.
        let planted = try minewatch(["scan", "-f", "json", "--insecure", "registry:127.0.0.1:\(swapPort)/\(p.benign)"])
        #expect(has(planted.out, "MW-BIN-XMRIG"), "\(planted.out) \(planted.err)")
        #expect(has(planted.out, "MW-IMG-DIGEST", path: "manifest:layers[0]"))
        // A verified result is served from the cache for the honest image scanned again.
        let again = try minewatch(["scan", "-f", "json", "--insecure", "--cache", cache, "registry:127.0.0.1:\(regPort)/\(p.miner)"])
        #expect((report(again.out)["stats"] as? [String: Any])?["layersFromCache"] as? Int == 1)
        #expect(has(again.out, "MW-BIN-XMRIG"))
    }

    /// HTTPS through a private CA, and a blob download capped at the size its manifest declares
    /// while it downloads. The CA is made trusted only inside a private mount namespace of the
    /// minewatch process (a bind mount over /etc/ssl/certs), never on the host.
    @Test func httpsDownloadStopsAtTheDeclaredSize() throws {
        try requireTools(["podman", "docker-registry", "python3", "openssl", "unshare"])
        try prerequisite(getuid() == 0, "needs root for a private mount namespace")
        let dir = try TempDir("regtls")
        defer { dir.cleanup() }
        let regPort = freeLoopbackPort(), tlsPort = freeLoopbackPort(), shrinkPort = freeLoopbackPort()
        let registry = try startRegistry(port: regPort, data: dir.path + "/data", dir: dir)
        defer { registry.stop() }
        #expect(registry.wait { loopbackPortOpen(regPort) })
        let p = try push(dir, registry: regPort)
        // A CA and a server certificate for 127.0.0.1.
        let ca = dir.path + "/ca", d = dir.path
        try FileManager.default.createDirectory(atPath: ca, withIntermediateDirectories: true)
        let steps: [[String]] = [
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=minewatch test CA",
             "-keyout", "\(d)/ca.key", "-out", "\(ca)/ca-certificates.crt"],
            ["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "\(d)/srv.key", "-out", "\(d)/srv.csr"],
            ["sh", "-c", "printf 'subjectAltName=IP:127.0.0.1\\n' > \(d)/ext && openssl x509 -req -in \(d)/srv.csr -CA \(ca)/ca-certificates.crt -CAkey \(d)/ca.key -CAcreateserial -days 2 -extfile \(d)/ext -out \(d)/srv.crt"],
            ["sh", "-c", "cd \(ca) && ln -s ca-certificates.crt $(openssl x509 -hash -noout -in ca-certificates.crt).0"],
        ]
        for s in steps {
            let r = try run(s)
            #expect(r.status == 0, "\(s.joined(separator: " ")): \(r.err)")
        }
        let tls = try BackgroundProcess(["python3", fixturePath("tamper-proxy.py"), String(tlsPort), String(regPort),
                                         "--cert", "\(d)/srv.crt", "--key", "\(d)/srv.key"], label: "tls")
        defer { tls.stop() }
        let shrink = try BackgroundProcess(["python3", fixturePath("tamper-proxy.py"), String(shrinkPort), String(regPort), "--shrink", "--throttle",
                                            "--cert", "\(d)/srv.crt", "--key", "\(d)/srv.key"], label: "shrink")
        defer { shrink.stop() }
        #expect(tls.wait { loopbackPortOpen(tlsPort) } && shrink.wait { loopbackPortOpen(shrinkPort) })
        func scanTrusting(_ name: String) throws -> (status: Int32, out: String, err: String) {
            let cmd = "mount --bind \(ca) /etc/ssl/certs && exec \(minewatchBinary()) scan -f json registry:\(name)"
            let r = try run(["unshare", "--mount", "--propagation", "private", "sh", "-c", cmd])
            return (r.status, String(decoding: r.out, as: UTF8.self), r.err)
        }
        // Without the CA the certificate is refused.
        let untrusted = try minewatch(["scan", "registry:127.0.0.1:\(tlsPort)/\(p.miner)"])
        #expect(untrusted.status == 2)
        // With it, the miner image is scanned over HTTPS.
        let ok = try scanTrusting("127.0.0.1:\(tlsPort)/\(p.miner)")
        #expect(has(ok.out, "MW-BIN-XMRIG"), "\(ok.out) \(ok.err)")
        // The 24 MiB benign layer, declared as 100 bytes: the download stops near the start.
        let capped = try scanTrusting("127.0.0.1:\(shrinkPort)/\(p.benign)")
        #expect(capped.status == 2)
        let errors = (report(capped.out)["errors"] as? [[String: Any]])?.compactMap { $0["message"] as? String } ?? []
        #expect(errors.contains { $0.contains("larger than 100 bytes; stopped after") }, "\(errors) \(capped.err)")
        // The proxy saw the client hang up long before the whole blob was sent (it logs once the
        // send ends, after what the kernel's socket buffers took).
        _ = shrink.wait(seconds: 20) { shrink.output.contains("blob \(p.benignBlob) sent") }
        let line = shrink.output.split(separator: "\n").first { $0.contains("blob \(p.benignBlob) sent") }
        let numbers = line.map { l in l.split(separator: " ").compactMap { Int($0) } } ?? []
        #expect(numbers.count == 2 && numbers[0] < numbers[1] / 2, "the proxy's log: \(shrink.output)")
    }
}
