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

/// True when the prerequisite is `met`; otherwise false, so that the test skips, after recording
/// `missing` as a failure under CI=true (where a missing prerequisite never skips silently).
public func prerequisite(_ met: Bool, _ missing: @autoclosure () -> String,
                         sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
    if met { return true }
    if requirePrerequisites { Issue.record(Comment(rawValue: missing()), sourceLocation: sourceLocation) }
    return false
}

/// The `mw-workload` executable (test miners, pools and loads) built next to the test bundle.
public func workloadBinary() -> String {
    (minewatchBinary() as NSString).deletingLastPathComponent + "/mw-workload"
}
