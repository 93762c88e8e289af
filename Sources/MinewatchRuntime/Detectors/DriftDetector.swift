import Foundation
import MinewatchCore
import MinewatchHost
import MinewatchModel

/// Detector 3 of `watch`: an executable that is not part of the container's image is running.
/// Signs, from `/proc/<pid>/exe` and the container's root mount: the file was written after the
/// container started (it exists in the overlay's upper directory), it runs from a scratch
/// location (`/tmp`, `/var/tmp`, `/dev/shm`), it was deleted after it started, or it is a memfd.
public struct DriftDetector: ContainerDetector {
    public static let defaultScratchPrefixes = ["/tmp/", "/var/tmp/", "/dev/shm/", "/run/shm/"]
    public let id = DetectorID.drift
    public var scratchPrefixes: [String]
    /// When processes started (for the alert's first evidence).
    public var times = ProcessTimes()

    public init(scratchPrefixes: [String] = DriftDetector.defaultScratchPrefixes) {
        self.scratchPrefixes = scratchPrefixes
    }

    public func makeState() {}

    /// New processes only: each is judged once per program it runs.
    public func inspect(_ pass: ContainerPass, state: inout Void, context: DetectionContext) -> Verdict? {
        if context.alerted.contains(id) { return nil }
        for p in pass.snapshot.processes where p.isNew {
            let s = p.sample
            guard let exe = s.exe else { continue }
            // The runtime's own init (runc's "runc:[2:INIT]", run from a cloned memfd) is briefly a
            // process of the container while it starts: not drift.
            if s.comm.hasPrefix("runc:[") || exe.contains("runc_cloned") { continue }
            let reasons = reasons(exeLink: exe, upperDir: pass.snapshot.upperDir)
            guard !reasons.isEmpty else { continue }
            return Verdict(
                severity: .medium,
                summary: "executable not in the image runs as pid \(s.pid) (\(s.comm)): \(reasons.joined(separator: "; "))",
                evidence: [Evidence(kind: .attribute, name: "exe", value: exe)] + reasons.map { Evidence(kind: .attribute, name: "reason", value: $0) },
                pid: s.pid, exe: exe, startedAt: times.start(of: s), verdict: ("MW-WATCH-DRIFT", "default"))
        }
        return nil
    }

    /// `path` is a regular file below `root` (what a container writes is only looked at inside it).
    public static func regularFile(root: String, path: String) -> Bool {
        guard let dir = try? ConfinedRoot(path: root, links: .refused) else { return false }
        return (try? dir.kind(of: path)) == .regular
    }

    /// Reasons the executable is drift (empty when it is not).
    /// `exeLink` is the text of /proc/<pid>/exe; `upperDir` the container's overlay upper dir.
    /// `inUpper(upper, path)` tells whether the container wrote `path` (a regular file in its upper
    /// folder); by default looked up through the confined-path primitive, links refused.
    public func reasons(exeLink: String, upperDir: String?, inUpper: (String, String) -> Bool = DriftDetector.regularFile) -> [String] {
        var out: [String] = []
        if exeLink.hasPrefix("/memfd:") || exeLink.hasPrefix("memfd:") { out.append("runs from a memfd (no file on disk)") }
        var path = exeLink
        if path.hasSuffix(" (deleted)") {
            path = String(path.dropLast(10))
            out.append("its executable was deleted after it started")
        }
        if scratchPrefixes.contains(where: { path.hasPrefix($0) }) { out.append("runs from \(path)") }
        if let upper = upperDir, path.hasPrefix("/"), inUpper(upper, path) {
            out.append("its executable was written after the container started (overlay upper layer)")
        }
        return out
    }
}
