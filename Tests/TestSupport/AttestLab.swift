import Foundation
import Testing

/// A loopback registry (Debian's docker-registry) holding a benign and a miner image pushed by
/// podman, and ECDSA P-256 key pairs made with openssl: what the attestation and admission tests
/// share. `stop()` ends the registry.
public final class AttestLab: @unchecked Sendable {
    public let dir: TempDir
    public let port: Int
    public let registry: BackgroundProcess
    /// `127.0.0.1:PORT/mw/app:benign` and `...:miner`.
    public let benign: String
    public let miner: String

    public static var deps: String { UPXTools.deps }
    public static var python: String { deps + "/venv/bin/python3" }
    public static var cosign: String { deps + "/bin/cosign" }
    /// The venv's python when present (it has the standard library too), else Debian's.
    public static var pythonOrSystem: String { FileManager.default.isExecutableFile(atPath: python) ? python : "/usr/bin/python3" }

    public init(label: String) throws {
        try requireTools(["podman", "docker-registry", "openssl", "tar"])
        dir = try TempDir(label)
        port = freeLoopbackPort()
        registry = try startRegistry(port: port, data: dir.path + "/data", dir: dir)
        let p = port
        guard registry.wait(until: { loopbackPortOpen(p) }) else { throw MissingPrerequisite(description: "registry did not start: \(registry.output)") }
        _ = try dir.file("benign/etc/os-release", Array("ID=test\n".utf8))
        _ = try dir.file("benign/usr/share/doc/readme", Array("a file server's files\n".utf8))
        _ = try dir.file("miner/usr/bin/svc", Samples.elf(Samples.xmrigStrings), mode: 0o755)
        let suffix = UUID().uuidString.prefix(8).lowercased()
        let tags = ["localhost/mw-att-benign:\(suffix)", "localhost/mw-att-miner:\(suffix)"]
        try Podman.importRootfs(dir.path + "/benign", tag: tags[0])
        try Podman.importRootfs(dir.path + "/miner", tag: tags[1], changes: ["ENTRYPOINT [\"/usr/bin/svc\"]"])
        defer { tags.forEach(Podman.removeImage) }
        benign = "127.0.0.1:\(port)/mw/app:benign"
        miner = "127.0.0.1:\(port)/mw/app:miner"
        for (t, n) in zip(tags, [benign, miner]) { try Podman.cmd(["push", "-q", "--tls-verify=false", t, n]) }
    }

    /// Makes `NAME.pem` and `NAME.pub` in the lab's folder (see `p256KeyPair`).
    public func keyPair(_ name: String) throws -> (key: String, pub: String) { try p256KeyPair(in: dir.path, name: name) }

    /// The manifest digest of a tag, from the registry's plain HTTP API.
    public func digest(_ tag: String) throws -> String {
        let r = try run(["curl", "-sfI", "-H", "Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json",
                         "http://127.0.0.1:\(port)/v2/mw/app/manifests/\(tag)"])
        let line = String(decoding: r.out, as: UTF8.self).split(separator: "\r\n").first { $0.lowercased().hasPrefix("docker-content-digest:") }
        return line.map { $0.split(separator: " ").last.map(String.init) ?? "" } ?? ""
    }

    /// GET on the registry's plain HTTP API.
    public func get(_ path: String, accept: String = "application/vnd.oci.image.manifest.v1+json") throws -> [UInt8] {
        try run(["curl", "-sf", "-H", "Accept: \(accept)", "http://127.0.0.1:\(port)\(path)"]).out
    }

    public func stop() {
        registry.stop()
        dir.cleanup()
    }
}

/// Makes `DIR/NAME.pem` (an ECDSA P-256 PKCS#8 private key) and `DIR/NAME.pub` (its
/// SubjectPublicKeyInfo) with openssl, as a user would for `--attest` and `--key`.
public func p256KeyPair(in dir: String, name: String) throws -> (key: String, pub: String) {
    let key = dir + "/\(name).pem", pub = dir + "/\(name).pub"
    for args in [["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key],
                 ["openssl", "pkey", "-in", key, "-pubout", "-out", pub]] {
        let r = try run(args)
        if r.status != 0 { throw MissingPrerequisite(description: "\(args.joined(separator: " ")): \(r.err)") }
    }
    return (key, pub)
}
