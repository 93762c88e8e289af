import Foundation
import MinewatchCore
#if canImport(Glibc)
import Glibc
#endif

/// Container metadata from what the runtimes keep on the node, without an API server or an
/// engine socket: the OCI bundle `config.json` of each running container, whose annotations
/// carry the pod's name and namespace, the container's name and its image (containerd's CRI
/// plugin: `io.kubernetes.cri.*`; CRI-O: `io.kubernetes.pod.*`, `io.kubernetes.cri-o.*`).
public struct RuntimeStateReader: Sendable {
    /// Folders that hold one folder per containerd namespace, each with one bundle per container.
    public var containerdTaskRoots: [String]
    /// Folders with `<id>/userdata/config.json` (CRI-O and podman, containers/storage).
    public var storageRoots: [String]

    public static let defaultContainerdTaskRoots = [
        "/run/containerd/io.containerd.runtime.v2.task",
        "/run/k3s/containerd/io.containerd.runtime.v2.task",
        "/var/run/docker/containerd/daemon/io.containerd.runtime.v2.task",
    ]
    /// containers/storage keeps a container's `userdata` under its run root for CRI-O and under
    /// its graph root for rootful podman, whose bundles carry no pod metadata: finding them
    /// settles the question once instead of looking again for each container every few minutes
    /// (on a dense podman node without its API socket, hundreds of misses retried in bursts
    /// after start were a tenth of the agent's steady CPU).
    public static let defaultStorageRoots = ["/run/containers/storage/overlay-containers", "/var/lib/containers/storage/overlay-containers"]

    /// `hostRoot` prefixes every path (a node agent that sees the host's /run under /host).
    public init(hostRoot: String = "", containerdTaskRoots: [String] = defaultContainerdTaskRoots,
                storageRoots: [String] = defaultStorageRoots) {
        self.containerdTaskRoots = containerdTaskRoots.map { hostRoot + $0 }
        self.storageRoots = storageRoots.map { hostRoot + $0 }
    }

    /// The defaults plus `extra` folders: one that holds `<ns>/<id>/config.json` is a containerd
    /// task root (a private containerd's `<state>/io.containerd.runtime.v2.task`, k3s, microk8s),
    /// any other is read as containers/storage (`<id>/userdata/config.json`).
    public init(extra: [String]) {
        var tasks = Self.defaultContainerdTaskRoots
        var storage = Self.defaultStorageRoots
        for e in extra {
            if e.hasSuffix("io.containerd.runtime.v2.task") || e.hasSuffix("io.containerd.runtime.v2.task/") { tasks.insert(e, at: 0) } else { storage.insert(e, at: 0) }
        }
        self.init(containerdTaskRoots: tasks, storageRoots: storage)
    }

    /// The annotations of the container's OCI bundle, or nil when no runtime keeps one for it.
    /// `id` must be a container id (64 hex digits); the bundle is read without following links,
    /// at most 4 MiB.
    public func annotations(id: String) -> [String: String]? {
        guard id.utf8.count == 64, id.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }) else { return nil }
        for root in containerdTaskRoots {
            guard let namespaces = try? FileManager.default.contentsOfDirectory(atPath: root) else { continue }
            for ns in namespaces.prefix(64) where !ns.hasPrefix(".") {
                if let bytes = Self.readBundleFile(root, [ns, id, "config.json"]) { return BundleAnnotations.parse(bytes) }
            }
        }
        for root in storageRoots {
            if let bytes = Self.readBundleFile(root, [id, "userdata", "config.json"]) { return BundleAnnotations.parse(bytes) }
        }
        return nil
    }

    /// Reads `root/components...` through the confined-path primitive: a link anywhere below
    /// `root` is refused, a regular file of at most 4 MiB.
    static func readBundleFile(_ root: String, _ components: [String]) -> [UInt8]? {
        guard let dir = try? ConfinedRoot(path: root, links: .refused) else { return nil }
        return try? dir.readFile(components.joined(separator: "/"), limit: 4 << 20)
    }
}

/// The `annotations` object of an OCI runtime spec (`config.json`), bounded: at most 256
/// entries, keys of at most 256 bytes and values of at most 4096; anything else is ignored.
public enum BundleAnnotations {
    /// Only `annotations` is decoded: the rest of the spec (mounts, the seccomp profile's
    /// syscall lists) is scanned, never built into objects. JSONSerialization built all of it,
    /// about four times the time: a dense node's first minute parses every container's spec.
    struct Spec: Decodable {
        var annotations: [String: Value]?
    }
    enum Value: Decodable {
        case string(String)
        case other
        init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            self = (try? c.decode(String.self)).map(Value.string) ?? .other
        }
    }

    public static func parse(_ bytes: [UInt8]) -> [String: String] {
        guard let ann = (try? JSONDecoder().decode(Spec.self, from: Data(bytes)))?.annotations else { return [:] }
        var out: [String: String] = [:]
        for (k, v) in ann where out.count < 256 && k.utf8.count <= 256 {
            if case .string(let s) = v, s.utf8.count <= 4096 { out[k] = s }
        }
        return out
    }
}
