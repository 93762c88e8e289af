import Foundation
import MinewatchCore
#if canImport(Glibc)
import Glibc
#endif

/// Builds tar archives byte by byte, including the malformed kinds hostile archives use.
public struct TarBuilder {
    public private(set) var bytes: [UInt8] = []
    public init() {}

    public static func header(name: String, size: Int, type: UInt8 = UInt8(ascii: "0"), link: String = "",
                              mode: Int = 0o644, sizeField: String? = nil, badChecksum: Bool = false) -> [UInt8] {
        var h = [UInt8](repeating: 0, count: 512)
        func put(_ s: String, _ off: Int, _ len: Int) {
            let b = Array(s.utf8.prefix(len))
            for (i, c) in b.enumerated() { h[off + i] = c }
        }
        put(name, 0, 100)
        put(String(format: "%07o", mode), 100, 8)
        put("0000000", 108, 8)
        put("0000000", 116, 8)
        put(sizeField ?? String(format: "%011o", size), 124, 12)
        put("14700000000", 136, 12)
        h[156] = type
        put(link, 157, 100)
        put("ustar", 257, 6)
        put("00", 263, 2)
        for i in 148..<156 { h[i] = UInt8(ascii: " ") }
        var sum = h.reduce(0) { $0 + Int($1) }
        if badChecksum { sum += 1 }
        put(String(format: "%06o", sum), 148, 6)
        h[154] = 0
        h[155] = UInt8(ascii: " ")
        return h
    }

    static func padded(_ data: [UInt8]) -> [UInt8] {
        data + [UInt8](repeating: 0, count: (512 - data.count % 512) % 512)
    }

    public mutating func file(_ name: String, _ data: [UInt8], mode: Int = 0o755) {
        if name.utf8.count > 100 {
            let rec = paxRecord("path", name)
            bytes += Self.header(name: "PaxHeader", size: rec.count, type: UInt8(ascii: "x"))
            bytes += Self.padded(rec)
        }
        bytes += Self.header(name: name, size: data.count, mode: mode)
        bytes += Self.padded(data)
    }

    public mutating func file(_ name: String, _ text: String) { file(name, Array(text.utf8), mode: 0o644) }

    public mutating func dir(_ name: String) {
        bytes += Self.header(name: name.hasSuffix("/") ? name : name + "/", size: 0, type: UInt8(ascii: "5"), mode: 0o755)
    }

    public mutating func symlink(_ name: String, to target: String) {
        bytes += Self.header(name: name, size: 0, type: UInt8(ascii: "2"), link: target, mode: 0o777)
    }

    public mutating func hardlink(_ name: String, to target: String) {
        bytes += Self.header(name: name, size: 0, type: UInt8(ascii: "1"), link: target)
    }

    public mutating func device(_ name: String) {
        bytes += Self.header(name: name, size: 0, type: UInt8(ascii: "3"))
    }

    /// `.wh.NAME` deletes NAME from lower layers.
    public mutating func whiteout(_ path: String) {
        var comps = path.split(separator: "/").map(String.init)
        let last = comps.removeLast()
        comps.append(".wh." + last)
        file(comps.joined(separator: "/"), [UInt8](), mode: 0o644)
    }

    public mutating func opaque(_ dir: String) {
        file(dir.hasSuffix("/") ? dir + ".wh..wh..opq" : dir + "/.wh..wh..opq", [UInt8](), mode: 0o644)
    }

    public mutating func raw(_ data: [UInt8]) { bytes += data }

    public func finished() -> [UInt8] { bytes + [UInt8](repeating: 0, count: 1024) }

    func paxRecord(_ key: String, _ value: String) -> [UInt8] {
        let body = " \(key)=\(value)\n"
        var len = body.utf8.count + 1
        while String(len).count + body.utf8.count != len { len = String(len).count + body.utf8.count }
        return Array("\(len)\(body)".utf8)
    }
}

/// Runs a program to completion and returns (status, stdout, stderr).
///
/// Spawned with posix_spawn, an empty signal mask and default signal actions: the test runner's
/// threads block signals, and a child that inherits that (podman's conmon, a miner under test,
/// minewatch itself) would not see SIGCHLD/SIGTERM. stdin, stdout and stderr are temporary files,
/// not pipes, so a daemon that inherits them (conmon) cannot make the call wait for it.
@discardableResult
public func run(_ args: [String], stdin: [UInt8]? = nil, env: [String: String]? = nil) throws -> (status: Int32, out: [UInt8], err: String) {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mw-run-\(UUID().uuidString.prefix(8))")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let inPath = dir.appendingPathComponent("in").path, outPath = dir.appendingPathComponent("out").path
    let errPath = dir.appendingPathComponent("err").path
    FileManager.default.createFile(atPath: inPath, contents: Data(stdin ?? []))
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, inPath, O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    var attr = posix_spawnattr_t()
    posix_spawnattr_init(&attr)
    defer { posix_spawnattr_destroy(&attr) }
    var empty = sigset_t()
    sigemptyset(&empty)
    var all = sigset_t()
    sigfillset(&all)
    posix_spawnattr_setsigmask(&attr, &empty)
    posix_spawnattr_setsigdefault(&attr, &all)
    posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    var environment = ProcessInfo.processInfo.environment
    if let env { environment.merge(env) { $1 } }
    let argv = (["/usr/bin/env"] + args).map { strdup($0) } + [nil]
    let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer { for p in argv { free(p) }; for p in envp { free(p) } }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, "/usr/bin/env", &actions, &attr, argv, envp)
    if rc != 0 { throw PodmanError(message: "spawn \(args.first ?? ""): errno \(rc)") }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    let code: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    let out = (try? Data(contentsOf: URL(fileURLWithPath: outPath))) ?? Data()
    let err = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
    return (code, Array(out), err)
}

public func gzip(_ data: [UInt8]) throws -> [UInt8] { try run(["gzip", "-c", "-n"], stdin: data).out }
public func zstdCompress(_ data: [UInt8]) throws -> [UInt8] { try run(["zstd", "-q", "-c"], stdin: data).out }

/// A fresh temporary folder, removed by `cleanup()`.
public final class TempDir: @unchecked Sendable {
    public let path: String
    public init(_ label: String = "mw") throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("\(label)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: base, withIntermediateDirectories: true)
        path = base.path
    }
    public func file(_ rel: String, _ data: [UInt8], mode: Int = 0o644) throws -> String {
        let p = path + "/" + rel
        try FileManager.default.createDirectory(atPath: (p as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        // An existing file is rewritten in place (same inode), as the kernel's files change: a
        // reader that keeps it open (KeptFiles, ProcStatFiles) sees the new contents.
        if FileManager.default.fileExists(atPath: p), let h = FileHandle(forWritingAtPath: p) {
            try h.truncate(atOffset: 0)
            try h.write(contentsOf: Data(data))
            try h.close()
        } else {
            _ = FileManager.default.createFile(atPath: p, contents: Data(data), attributes: [.posixPermissions: mode])
        }
        return p
    }
    public func cleanup() { try? FileManager.default.removeItem(atPath: path) }
    deinit { cleanup() }
}

/// Image archives assembled by the tests, in both formats `docker save` and `podman save` write.
public struct ImageBuilder {
    public var layers: [[UInt8]]        // tar bytes (possibly compressed)
    public var uncompressed: [[UInt8]]  // for diff ids
    public var entrypoint: [String] = []
    public var cmd: [String] = []
    public var env: [String] = []
    public var history: [String] = []
    public var labels: [String: String] = [:]
    public var workingDir: String?
    public var tag = "localhost/test:1"
    /// Lies an image can tell: diff ids the config claims (by layer), blob digests the manifest
    /// claims (by layer; the blob is stored under the claimed name), and a config stored under
    /// the name of other bytes.
    public var claimedDiffIDs: [Int: String] = [:]
    public var claimedBlobDigests: [Int: String] = [:]
    public var claimedConfigDigest: String?

    public init(layers: [[UInt8]], uncompressed: [[UInt8]]? = nil) {
        self.layers = layers
        self.uncompressed = uncompressed ?? layers
    }

    public func configJSON() -> [UInt8] {
        let diffIDs = uncompressed.indices.map { claimedDiffIDs[$0] ?? ("sha256:" + SHA256Digest.hex(uncompressed[$0])) }
        var cfg: [String: Any] = ["Env": env]
        if !entrypoint.isEmpty { cfg["Entrypoint"] = entrypoint }
        if !cmd.isEmpty { cfg["Cmd"] = cmd }
        if !labels.isEmpty { cfg["Labels"] = labels }
        if let workingDir { cfg["WorkingDir"] = workingDir }
        let obj: [String: Any] = [
            "architecture": "amd64", "os": "linux", "config": cfg,
            "rootfs": ["type": "layers", "diff_ids": diffIDs],
            "history": history.map { ["created_by": $0] },
        ]
        return Array((try? JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])) ?? Data())
    }

    /// `docker save` layout: manifest.json, <hex>.json config, <hex>/layer.tar.
    public func dockerArchive() -> [UInt8] {
        var t = TarBuilder()
        let cfg = configJSON()
        let cfgHex = claimedConfigDigest.map { String($0.dropFirst(7)) } ?? SHA256Digest.hex(cfg)
        var layerPaths: [String] = []
        for (i, l) in layers.enumerated() {
            let hex = SHA256Digest.hex(uncompressed[i])
            t.dir(hex)
            t.file("\(hex)/layer.tar", l, mode: 0o644)
            layerPaths.append("\(hex)/layer.tar")
        }
        t.file("\(cfgHex).json", cfg, mode: 0o644)
        let manifest: [[String: Any]] = [["Config": "\(cfgHex).json", "RepoTags": [tag], "Layers": layerPaths]]
        t.file("manifest.json", Array((try? JSONSerialization.data(withJSONObject: manifest)) ?? Data()), mode: 0o644)
        return t.finished()
    }

    /// The files of an OCI image layout: oci-layout, index.json, blobs/sha256/*.
    public func ociFiles(platforms: Int = 1) -> [(String, [UInt8])] {
        var files: [(String, [UInt8])] = []
        func blob(_ data: [UInt8], claimed: String? = nil) -> String {
            let digest = claimed ?? ("sha256:" + SHA256Digest.hex(data))
            files.append(("blobs/sha256/\(digest.dropFirst(7))", data))
            return digest
        }
        let cfg = configJSON()
        let cfgDigest = blob(cfg, claimed: claimedConfigDigest)
        var layerDescs: [[String: Any]] = []
        for (i, l) in layers.enumerated() {
            let gz = l.count >= 2 && l[0] == 0x1f && l[1] == 0x8b
            layerDescs.append(["mediaType": gz ? "application/vnd.oci.image.layer.v1.tar+gzip" : "application/vnd.oci.image.layer.v1.tar",
                               "digest": blob(l, claimed: claimedBlobDigests[i]), "size": l.count])
        }
        let manifest: [String: Any] = [
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": ["mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfgDigest, "size": cfg.count],
            "layers": layerDescs,
        ]
        let mBytes = Array((try? JSONSerialization.data(withJSONObject: manifest, options: [.sortedKeys])) ?? Data())
        let mDigest = blob(mBytes)
        var descs: [[String: Any]] = [[
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": mDigest, "size": mBytes.count,
            "annotations": ["org.opencontainers.image.ref.name": tag],
            "platform": ["os": "linux", "architecture": "amd64"],
        ]]
        if platforms > 1 {
            // A second platform whose manifest is the same image: enough to exercise selection.
            descs.append(["mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": mDigest, "size": mBytes.count,
                          "platform": ["os": "linux", "architecture": "arm64"]])
        }
        let index: [String: Any] = ["schemaVersion": 2, "manifests": descs]
        files.append(("index.json", Array((try? JSONSerialization.data(withJSONObject: index, options: [.sortedKeys])) ?? Data())))
        files.append(("oci-layout", Array("{\"imageLayoutVersion\":\"1.0.0\"}".utf8)))
        return files
    }

    public func ociArchive(platforms: Int = 1) -> [UInt8] {
        var t = TarBuilder()
        t.dir("blobs")
        t.dir("blobs/sha256")
        var seen = Set<String>()
        for (name, data) in ociFiles(platforms: platforms) where seen.insert(name).inserted { t.file(name, data, mode: 0o644) }
        return t.finished()
    }

    public func ociLayout(in dir: TempDir) throws -> String {
        for (name, data) in ociFiles() { _ = try dir.file("layout/" + name, data) }
        return dir.path + "/layout"
    }
}
