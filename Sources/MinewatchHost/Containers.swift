import Foundation

/// Which container runtime a cgroup path belongs to.
public enum ContainerRuntime: String, Sendable, Hashable, Codable {
    case podman, docker, containerd, crio, kubernetes
}

/// A container found from the cgroup path of one of its processes.
public struct ContainerRef: Sendable, Hashable, Codable {
    /// The full 64-hex container id.
    public var id: String
    public var runtime: ContainerRuntime
    /// The cgroup path (relative to a hierarchy root) that holds the container's processes.
    public var cgroupPath: String
    /// Kubernetes pod UID when the path names one.
    public var podUID: String?

    public init(id: String, runtime: ContainerRuntime, cgroupPath: String, podUID: String? = nil) {
        self.id = id
        self.runtime = runtime
        self.cgroupPath = cgroupPath
        self.podUID = podUID
    }

    public var shortID: String { String(id.prefix(12)) }
}

/// Recognises container cgroup paths of podman, Docker, containerd/Kubernetes and CRI-O, on
/// cgroup v1 and v2 (pure string logic; the same on every host).
public enum CgroupPaths {
    static func isHex64(_ s: Substring) -> Bool {
        s.utf8.count == 64 && s.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }
    }

    /// The container a cgroup path belongs to, or nil for host processes (and for conmon,
    /// podman's monitor, which runs beside the container, not in it).
    public static func container(fromPath path: String) -> ContainerRef? {
        let comps = path.split(separator: "/")
        var podUID: String?
        for c in comps {
            if let r = c.range(of: "pod", options: .backwards), c.hasPrefix("kubepods") || c.hasPrefix("pod") {
                var uid = c[r.upperBound...]
                if uid.hasSuffix(".slice") { uid = uid.dropLast(6) }
                if uid.count >= 32 { podUID = uid.replacingOccurrences(of: "_", with: "-") }
            }
        }
        // Innermost component first: the container's own cgroup is the deepest one with an id.
        for (i, raw) in comps.enumerated().reversed() {
            var c = raw
            if c.hasSuffix(".scope") { c = c.dropLast(6) }
            let prefixes: [(String, ContainerRuntime)] = [
                ("libpod-conmon-", .podman), ("libpod-", .podman), ("docker-", .docker),
                ("cri-containerd-", .containerd), ("crio-conmon-", .crio), ("crio-", .crio),
            ]
            var matched: (Substring, ContainerRuntime)?
            for (p, rt) in prefixes where c.hasPrefix(p) {
                if p.contains("conmon") { return nil }  // the runtime's monitor, not the container
                matched = (c.dropFirst(p.count), rt)
                break
            }
            if matched == nil, isHex64(c) {
                let parent = i > 0 ? String(comps[i - 1]) : ""
                if parent == "docker" { matched = (c, .docker) } else if path.contains("kubepods") { matched = (c, .kubernetes) } else { matched = (c, .containerd) }
            }
            if let (id, rt) = matched, isHex64(id) {
                let cg = "/" + comps[...i].joined(separator: "/")
                let runtime: ContainerRuntime = podUID != nil && rt == .docker ? .kubernetes : rt
                return ContainerRef(id: String(id), runtime: runtime, cgroupPath: cg, podUID: podUID)
            }
        }
        return nil
    }

    /// Parses `/proc/<pid>/cgroup` ("hierarchy:controllers:path" lines). Returns the container
    /// (from any hierarchy) and each controller's path, keyed by controller ("" for v2).
    public static func parse(procCgroup text: String) -> (container: ContainerRef?, paths: [String: String]) {
        var paths: [String: String] = [:]
        var container: ContainerRef?
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3 else { continue }
            let path = String(parts[2])
            let controllers = parts[1].split(separator: ",").map(String.init)
            if controllers.isEmpty { paths[""] = path } else { for c in controllers { paths[c] = path } }
            if container == nil { container = Self.container(fromPath: path) }
        }
        return (container, paths)
    }
}
