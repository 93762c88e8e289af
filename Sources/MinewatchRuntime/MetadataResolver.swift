import Foundation
import MinewatchHost
import MinewatchModel
import Synchronization

/// Container metadata for alerts and telemetry from everything the node has: an engine API
/// (names, images, labels) and the runtimes' own state (OCI bundle annotations of containerd's
/// CRI plugin and CRI-O: pod, namespace, container name, image). The engine's answer comes
/// first; the bundle fills what it lacks. Bundles are read once per container (a container's
/// annotations never change, and a bundle that names nothing is not read again); a miss (no
/// runtime keeps a bundle for it where the reader looks) is retried after 10 s, then twice as
/// long each time up to 5 minutes, so a node of hundreds of such containers does not look for
/// bundles dozens of times a second. At most 4096 containers are remembered.
public final class MetadataResolver: Sendable {
    let engine: (@Sendable (String) -> ContainerMetadata?)?
    let engineCached: (@Sendable (String) -> ContainerMetadata?)?
    let bundles: RuntimeStateReader?
    struct Entry {
        var metadata: ContainerMetadata?
        var at: Date
        /// The bundle was read: its annotations are fixed when the container is created, so a
        /// bundle that says nothing is not read again.
        var read: Bool
        /// Times no bundle was found.
        var misses: Int
    }

    /// How long after its `misses`-th miss a container's bundle is looked for again.
    public static func retryAfter(misses: Int) -> TimeInterval { min(300, 10 * Double(1 << min(max(misses, 1) - 1, 5))) }
    let cache = Mutex<[String: Entry]>([:])

    public init(engine: (@Sendable (String) -> ContainerMetadata?)?, engineCached: (@Sendable (String) -> ContainerMetadata?)? = nil,
                bundles: RuntimeStateReader?) {
        self.engine = engine
        self.engineCached = engineCached ?? engine
        self.bundles = bundles
    }

    /// For alerts (the engine may be asked again for an unknown id).
    public func lookup(_ id: String) -> ContainerMetadata? { resolve(id, engine) }
    /// For telemetry (the engine answers from its cache or refreshes rarely; bundles are read
    /// within `telemetryBundleReadsPerSecond`).
    public func cached(_ id: String) -> ContainerMetadata? { resolve(id, engineCached, budgeted: true) }

    /// At most this many bundles are read a second for telemetry; the rest wait for the next
    /// time they are asked for, and alerts never wait. Until its bundle is read a container's
    /// telemetry gets nothing, even what the engine says, so that the watcher asks again (its
    /// back-off: 2, 4, then every 8 s) rather than keep a name without the bundle's pod and
    /// image: with 500 new containers the last are named about 20 s after the first pass.
    /// A node's first pass had every container's bundle to read at once, each a whole runtime
    /// spec to parse (podman's and CRI-O's carry the seccomp profile): with 500 containers that
    /// pass took about half a second longer.
    public static let telemetryBundleReadsPerSecond = 100
    let reads = Mutex<(second: Int64, count: Int)>((0, 0))

    func resolve(_ id: String, _ ask: (@Sendable (String) -> ContainerMetadata?)?, budgeted: Bool = false, now: Date = Date()) -> ContainerMetadata? {
        // The bundle first: a read put off answers nothing, and the engine need not be asked.
        let (fromBundle, deferred) = bundle(id, budgeted: budgeted, now: now)
        if deferred { return nil }
        let fromEngine = ask?(id)
        guard let m = fromEngine ?? fromBundle else { return nil }
        return m.merged(with: fromEngine == nil ? nil : fromBundle)
    }

    /// Whether a telemetry read of a bundle fits this second's budget (and takes it).
    func mayRead(at now: Date) -> Bool {
        let second = Int64(now.timeIntervalSince1970.rounded(.down))
        return reads.withLock { r in
            if r.second != second { r = (second, 0) }
            guard r.count < Self.telemetryBundleReadsPerSecond else { return false }
            r.count += 1
            return true
        }
    }

    /// The bundle's metadata, and whether reading it was put off (over the telemetry budget:
    /// not read, and not a miss; it is looked for when next asked).
    func bundle(_ id: String, budgeted: Bool = false, now: Date = Date()) -> (ContainerMetadata?, deferred: Bool) {
        guard let bundles else { return (nil, false) }
        let before = cache.withLock { $0[id] }
        if let e = before, e.read || now.timeIntervalSince(e.at) < Self.retryAfter(misses: e.misses) { return (e.metadata, false) }
        if budgeted, !mayRead(at: now) { return (before?.metadata, true) }
        let annotations = bundles.annotations(id: id)
        let m = annotations.flatMap(Self.metadata)
        cache.withLock { c in
            if c.count >= 4096 { c.removeAll() }
            c[id] = Entry(metadata: m, at: now, read: annotations != nil, misses: annotations == nil ? (before?.misses ?? 0) + 1 : 0)
        }
        return (m, false)
    }

    /// Forgets an evicted container.
    public func forget(_ id: String) { _ = cache.withLock { $0.removeValue(forKey: id) } }

    /// Metadata from a bundle's annotations (nil when they say nothing about the container).
    public static func metadata(_ a: [String: String]) -> ContainerMetadata? {
        var labels: [String: String] = [:]
        // CRI-O keeps the container's labels as a JSON object.
        if let json = a["io.kubernetes.cri-o.Labels"], let obj = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] {
            for (k, v) in obj.sorted(by: { $0.key < $1.key }).prefix(64) { if let s = v as? String { labels[k] = String(s.prefix(256)) } }
        }
        let k8s = ContainerMetadata.kubernetes(a.merging(labels) { x, _ in x })
        let image = ContainerMetadata.image(a)
        var name = a["io.kubernetes.cri-o.Name"] ?? k8s?.container
        if let n = name, n.hasPrefix("k8s_"), let c = k8s?.container { name = c }
        guard k8s != nil || image != nil || !labels.isEmpty else { return nil }
        return ContainerMetadata(name: name, image: image, k8s: k8s, labels: labels)
    }
}
