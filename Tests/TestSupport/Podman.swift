import Foundation
import Testing

/// Real containers through podman (see shared/docs/container-lab.md). Under CI=true a missing
/// podman is a failure, elsewhere the caller skips.
public enum Podman {
    public static var available: Bool {
        (try? run(["podman", "--version"]).status) == 0
    }

    /// True when podman can be used; false to skip. Under CI=true a missing podman is recorded
    /// as a failure instead (scripts/install-deps installs it).
    public static func required() -> Bool {
        if available { return true }
        if requirePrerequisites { Issue.record("podman is required under CI=true (scripts/install-deps installs it)") }
        return false
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

    /// `podman run -d ARGS` (runc, cgroupfs, the ulimits these machines need), returning the id.
    public static func runDetached(_ args: [String]) throws -> String {
        let r = try run(["podman", "--cgroup-manager=cgroupfs", "run", "-d", "--runtime", "runc",
                         "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"] + args)
        let id = String(decoding: r.out, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        if r.status != 0 || id.isEmpty { throw PodmanError(message: "podman run: \(r.err)") }
        return id
    }
}

public struct PodmanError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
