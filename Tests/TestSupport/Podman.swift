import Foundation
import Testing

/// Real containers through podman (see shared/docs/container-lab.md). Under CI=true a missing
/// podman is a failure, elsewhere the caller skips.
public enum Podman {
    public static var available: Bool {
        (try? run(["podman", "--version"]).status) == 0
    }

    /// Returns when podman can be used; otherwise the test is skipped, or fails under CI=true
    /// (scripts/install-deps installs it).
    public static func require(sourceLocation: SourceLocation = #_sourceLocation) throws {
        try prerequisite(available, "podman is missing (scripts/install-deps installs it)", sourceLocation: sourceLocation)
    }

    @discardableResult
    public static func cmd(_ args: [String]) throws -> String {
        let r = try run(["podman"] + args)
        if r.status != 0 { throw PodmanError(message: "podman \(args.joined(separator: " ")): \(r.err)") }
        return String(decoding: r.out, as: UTF8.self)
    }

    /// Imports a folder as an image (`podman import`), with Dockerfile-style changes.
    public static func importRootfs(_ dir: String, tag: String, changes: [String] = []) throws {
        let tar = try run(["tar", "-C", dir, "-cf", "-", "."]).out
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("mw-import-\(UUID().uuidString).tar")
        try Data(tar).write(to: tmp)
        defer { try? FileManager.default.removeItem(at: tmp) }
        try cmd(["import"] + changes.flatMap { ["--change", $0] } + [tmp.path, tag])
    }

    public static func removeImage(_ tag: String) { _ = try? run(["podman", "rmi", "-f", tag]) }

    /// `podman save` of `tag` as a docker-archive and as an oci-archive in `dir`: (format, file).
    public static func savedArchives(_ tag: String, in dir: String) throws -> [(format: String, file: String)] {
        try ["docker-archive", "oci-archive"].map { format in
            let out = dir + "/\(format).tar"
            try cmd(["save", "--format", format, "-o", out, tag])
            return (format, out)
        }
    }

    /// `podman run -d ARGS` (runc, cgroupfs, the ulimits these machines need), returning the id.
    public static func runDetached(_ args: [String]) throws -> String {
        let r = try run(["podman", "--cgroup-manager=cgroupfs", "run", "-d", "--runtime", "runc",
                         "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"] + args)
        let id = String(decoding: r.out, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        if r.status != 0 || id.isEmpty { throw PodmanError(message: "podman run: \(r.err)") }
        return id
    }
}

extension Podman {
    /// Host folders that let a container run this repository's binaries without building an image.
    public static let hostMounts = ["-v", "/bin:/bin:ro", "-v", "/lib:/lib:ro", "-v", "/lib64:/lib64:ro", "-v", "/usr/lib:/usr/lib:ro",
                                    "-v", "/usr/bin:/usr/bin:ro", "-v", "/opt/swift:/opt/swift:ro"]

    /// An image holding the workload program as /usr/local/bin/svc (an innocent name). Returns its tag.
    public static func workloadImage(_ dir: TempDir) throws -> String {
        let exe = Array(try Data(contentsOf: URL(fileURLWithPath: workloadBinary())))
        _ = try dir.file("wl-root/usr/local/bin/svc", exe, mode: 0o755)
        _ = try dir.file("wl-root/etc/hostname", Array("w\n".utf8))
        let tag = "localhost/mw-workload:\(UUID().uuidString.prefix(8).lowercased())"
        try importRootfs(dir.path + "/wl-root", tag: tag)
        return tag
    }

    /// A test network (a subnet inside 198.18.1.0/24, which these tests own). Returns its name.
    public static func createNetwork(subnet: String) throws -> String {
        precondition(subnet.hasPrefix("198.18.1."), "test networks live in 198.18.1.0/24")
        let name = "mw-test-\(UUID().uuidString.prefix(8).lowercased())"
        // Another run on this machine (a second checkout's suite, a soak) may hold the subnet:
        // wait for it, bounded; a network of ours that no container has used for 30 minutes is
        // a leftover of an interrupted run and is removed.
        let until = Date().addingTimeInterval(20 * 60)
        var said = false
        while true {
            let r = try run(["podman", "network", "create", "--subnet", subnet, name])
            if r.status == 0 { return name }
            let err = r.err
            guard err.contains("already used"), Date() < until else {
                throw PodmanError(message: "podman network create --subnet \(subnet) \(name): \(err)")
            }
            removeStaleNetworks(subnet: subnet)
            if !said {
                FileHandle.standardError.write(Data("test network \(subnet) is in use by another run; waiting for it\n".utf8))
                said = true
            }
            sleep(3)
        }
    }

    /// Removes this project's networks on `subnet` that no container is attached to and that
    /// are older than 30 minutes.
    static func removeStaleNetworks(subnet: String) {
        guard let r = try? run(["podman", "network", "ls", "--format", "{{.Name}}"]), r.status == 0 else { return }
        for net in String(decoding: r.out, as: UTF8.self).split(separator: "\n").map(String.init) where net.hasPrefix("mw-") {
            guard inspectNetwork(net, "{{range .Subnets}}{{.Subnet}} {{end}}").split(separator: " ").contains(Substring(subnet)) else { continue }
            let created = inspectNetwork(net, "{{.Created.Unix}}")
            guard let t = Double(created), Date().timeIntervalSince1970 - t > 30 * 60 else { continue }
            let users = (try? run(["podman", "ps", "-a", "-q", "--filter", "network=\(net)"]))?.out ?? [0]
            if users.allSatisfy({ $0 == 10 || $0 == 32 }) { removeNetwork(net) }
        }
    }

    public static func removeNetwork(_ name: String) { _ = try? run(["podman", "network", "rm", "-f", name]) }

    /// `podman network inspect --format FORMAT NAME`, trimmed (the bridge: `{{.NetworkInterface}}`).
    public static func inspectNetwork(_ name: String, _ format: String) -> String {
        guard let r = try? run(["podman", "network", "inspect", "--format", format, name]), r.status == 0 else { return "" }
        return String(decoding: r.out, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// `podman inspect --format FORMAT ID`, trimmed.
    public static func inspect(_ id: String, _ format: String) -> String {
        guard let r = try? run(["podman", "inspect", "--format", format, id]), r.status == 0 else { return "" }
        return String(decoding: r.out, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The container's processes as `podman top` lists them (for failure messages).
    public static func top(_ id: String) -> String {
        guard let r = try? run(["podman", "top", id, "pid", "args"]), r.status == 0 else { return "(podman top failed)" }
        return String(decoding: r.out, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// When the container started (podman's StartedAt).
    public static func startedAt(_ id: String) -> Date? {
        let s = inspect(id, "{{.State.StartedAt.Unix}}")
        return Double(s).map { Date(timeIntervalSince1970: $0) }
    }
}

/// A file in Tests/Fixtures.
public func fixturePath(_ name: String) -> String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/\(name)").path
}

/// Alerts from a `watch --output` JSON-lines file.
public func readAlerts(_ path: String) -> [[String: Any]] {
    readRecords(path).filter { $0["type"] as? String != "telemetry" }
}

/// Telemetry records (one per container per pass) from a `watch --output --telemetry` file.
public func readTelemetry(_ path: String) -> [[String: Any]] {
    readRecords(path).filter { $0["type"] as? String == "telemetry" }
}

/// Every JSON object of a JSON-lines file.
func readRecords(_ path: String) -> [[String: Any]] {
    ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n")
        .compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
}

extension Dictionary where Key == String, Value == Any {
    /// The alert's container id.
    public var containerID: String? { (self["container"] as? [String: Any])?["id"] as? String }
}

public struct PodmanError: Error, CustomStringConvertible {
    public var message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}

/// A file of this repository, by its path from the repository's root.
public func repositoryPath(_ relative: String) -> String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent(relative).path
}
