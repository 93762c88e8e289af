import Foundation
import Testing

/// The `minewatch` executable built next to the test bundle.
public func minewatchBinary() -> String {
    let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
    var dir = exe.deletingLastPathComponent()
    for _ in 0..<4 {
        let candidate = dir.appendingPathComponent("minewatch").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        dir = dir.deletingLastPathComponent()
    }
    return ".build/debug/minewatch"
}

/// Runs `minewatch ARGS` and returns (status, stdout, stderr).
public func minewatch(_ args: [String], env: [String: String]? = nil) throws -> (status: Int32, out: String, err: String) {
    let r = try run([minewatchBinary()] + args, env: env)
    return (r.status, String(decoding: r.out, as: UTF8.self), r.err)
}

/// True when tests must not skip for a missing prerequisite (CI=true).
public var requirePrerequisites: Bool { ProcessInfo.processInfo.environment["CI"] == "true" }

/// A prerequisite that is missing under CI=true: the test fails with this error.
public struct MissingPrerequisite: Error, CustomStringConvertible {
    public let description: String
}

/// Returns when the prerequisite is `met`. Otherwise the test stops: it is reported as skipped
/// (cancelled, with `missing` as the reason), and under CI=true, where a missing prerequisite never
/// skips, it fails with `missing` instead.
public func prerequisite(_ met: Bool, _ missing: @autoclosure () -> String,
                         sourceLocation: SourceLocation = #_sourceLocation) throws {
    if met { return }
    if requirePrerequisites { throw MissingPrerequisite(description: missing()) }
    try Test.cancel(Comment(rawValue: "skipped: " + missing()), sourceLocation: sourceLocation)
}

/// The `mw-workload` executable (test miners, pools and loads) built next to the test bundle.
public func workloadBinary() -> String {
    (minewatchBinary() as NSString).deletingLastPathComponent + "/mw-workload"
}
