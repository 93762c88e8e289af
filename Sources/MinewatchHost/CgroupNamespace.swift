import CShims
import MinewatchCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The agent's cgroup namespace. In a private one (containerd gives every unprivileged container
/// its own on cgroup v2, `hostPID` or not), `/proc/<pid>/cgroup` of other containers reads
/// `/../../kubepods/...`: the container is still recognised, but its cgroup files resolve
/// outside the hierarchy, so CPU, memory, throttling and freeze are lost. Joining the host's
/// namespace (pid 1's, visible with `hostPID`) makes every path absolute again.
public enum CgroupNamespace {
    public enum Outcome: Sendable, Equatable {
        /// Already in pid 1's cgroup namespace (or the host's view is not visible).
        case alreadyHost
        case joined
        /// Could not join (errno), so paths of other containers stay relative.
        case failed(Int32)
    }

    /// Moves the calling thread (call it before other threads start) into the host's cgroup
    /// namespace when ours is private: pid 1's, or, when pid 1 cannot be inspected (a
    /// non-dumpable init), that of the nearest ancestor outside our namespace (the runtime's
    /// shim or monitor, which runs in the host's). Needs CAP_SYS_ADMIN and CAP_SYS_PTRACE.
    public static func joinHostIfPrivate(procRoot: String = "/proc") -> Outcome {
        guard let mine = link("\(procRoot)/self/ns/cgroup") else { return .alreadyHost }
        var candidates: [Int32] = [1]
        var pid = getppid()
        for _ in 0..<64 where pid > 1 {
            candidates.append(pid)
            guard let stat = try? String(contentsOfFile: "\(procRoot)/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { break }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 1, let parent = Int32(fields[1]) else { break }
            pid = parent
        }
        var lastError: Int32 = 0
        var sawOther = false
        for c in candidates {
            guard let other = link("\(procRoot)/\(c)/ns/cgroup") else { lastError = errno; continue }
            if other == mine {
                // pid 1 shares ours: we are in the host's namespace already.
                if c == 1 { return .alreadyHost }
                continue
            }
            sawOther = true
            let fd = open("\(procRoot)/\(c)/ns/cgroup", O_RDONLY | O_CLOEXEC)
            if fd < 0 { lastError = errno; continue }
            let rc = mw_setns_cgroup(fd)
            close(fd)
            if rc == 0 { return .joined }
            lastError = -rc
        }
        return sawOther ? .failed(lastError == 0 ? EPERM : lastError) : .alreadyHost
    }

    static func link(_ path: String) -> String? { readLink(path, size: 256) }
}
