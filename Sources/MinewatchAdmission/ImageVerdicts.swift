import Foundation
import MinewatchAttest
import MinewatchCore
import MinewatchImage
import MinewatchModel
import MinewatchScan
import MinewatchSignatures
import Synchronization

/// What the webhook needs from registries: a tag resolved to the digest of the manifest it names,
/// the attestations stored for a digest, a scan of an image by digest, and storing an attestation.
/// `RegistryAuthority` is the real one; tests of the policy may give another.
public protocol ImageAuthority: Sendable {
    func resolve(_ ref: ImageReference) throws(MinewatchError) -> String
    func attestations(_ ref: ImageReference, digest: String) throws(MinewatchError) -> [(bytes: [UInt8], name: String)]
    func scan(_ ref: ImageReference, digest: String) -> TargetReport
    func publish(_ envelope: DSSEEnvelope, ref: ImageReference, digest: String) throws(MinewatchError)
}

/// Registries through the OCI distribution API (`RegistryClient`), scans through `ImageScanner`.
public struct RegistryAuthority: ImageAuthority {
    public var insecureRegistries: Set<String>
    public var credentials: RegistryCredentials?
    public let rules: CompiledRules
    public var scanOptions: ScanOptions

    public init(rules: CompiledRules, insecureRegistries: Set<String> = [], credentials: RegistryCredentials? = nil, scanOptions: ScanOptions = ScanOptions()) {
        self.rules = rules
        self.insecureRegistries = insecureRegistries
        self.credentials = credentials
        self.scanOptions = scanOptions
    }

    func client(_ ref: ImageReference, push: Bool = false) throws(MinewatchError) -> RegistryClient {
        let c = try RegistryClient(ref: ref, insecure: insecureRegistries.contains(ref.registry), credentials: credentials)
        c.pushAccess = push
        return c
    }

    public func resolve(_ ref: ImageReference) throws(MinewatchError) -> String { try client(ref).resolveDigest() }

    public func attestations(_ ref: ImageReference, digest: String) throws(MinewatchError) -> [(bytes: [UInt8], name: String)] {
        try AttestationStore(client: try client(ref)).envelopes(for: digest)
    }

    public func scan(_ ref: ImageReference, digest: String) -> TargetReport {
        var options = scanOptions
        options.insecureRegistry = insecureRegistries.contains(ref.registry)
        options.credentials = credentials
        let pinned = "\(ref.registry)/\(ref.repository)@\(digest)"
        return ImageScanner(rules: rules, options: options).scan(target: "registry:\(pinned)").first
            ?? TargetReport(target: pinned, kind: "registry-image", errors: [ScanIssue(message: "nothing to scan")])
    }

    public func publish(_ envelope: DSSEEnvelope, ref: ImageReference, digest: String) throws(MinewatchError) {
        try AttestationStore(client: try client(ref, push: true)).push(envelope, predicateType: ScanPredicate.type, digest: digest)
    }
}

/// Verdicts per image digest: bounded (least recently used goes first), each with an expiry.
/// Only digests the webhook computed from a manifest's bytes, or that a pod pinned (which the
/// runtime verifies when pulling), are keys.
public final class VerdictCache: Sendable {
    public struct Entry: Sendable {
        public var verdict: ScanPredicate.Verdict
        public var families: [String]
        /// How it was learned (attestation, scan).
        public var source: AdmissionEvent.Source
        public var detail: String
        public var expires: Date
    }

    struct State {
        var entries: [String: (Entry, UInt64)] = [:]
        var tick: UInt64 = 0
        var hits = 0
        var misses = 0
    }

    let state = Mutex(State())
    public let capacity: Int

    public init(capacity: Int) { self.capacity = max(1, capacity) }

    public func get(_ digest: String, now: Date) -> Entry? {
        state.withLock { s in
            guard let (e, _) = s.entries[digest], e.expires > now else {
                s.misses += 1
                s.entries[digest] = nil
                return nil
            }
            s.tick += 1
            s.entries[digest] = (e, s.tick)
            s.hits += 1
            return e
        }
    }

    public func put(_ digest: String, _ e: Entry) {
        state.withLock { s in
            s.tick += 1
            s.entries[digest] = (e, s.tick)
            if s.entries.count > capacity {
                // Drop the least recently used eighth at once, so eviction is rare.
                let drop = s.entries.sorted { $0.value.1 < $1.value.1 }.prefix(max(1, capacity / 8)).map(\.key)
                for k in drop { s.entries[k] = nil }
            }
        }
    }

    public var count: Int { state.withLock { $0.entries.count } }
    public var stats: (hits: Int, misses: Int) { state.withLock { ($0.hits, $0.misses) } }
}

/// Tags resolved to digests, kept for a short time (`--tag-ttl`) so a busy API server does not
/// ask the registry for every pod.
final class TagCache: Sendable {
    let entries = Mutex<[String: (String, Date)]>([:])
    let ttl: TimeInterval
    let capacity: Int

    init(ttl: TimeInterval, capacity: Int) {
        self.ttl = ttl
        self.capacity = capacity
    }

    func get(_ image: String, now: Date) -> String? {
        guard ttl > 0 else { return nil }
        return entries.withLock { e in
            guard let (d, until) = e[image], until > now else { return nil }
            return d
        }
    }

    func put(_ image: String, _ digest: String, now: Date) {
        guard ttl > 0 else { return }
        entries.withLock { e in
            if e.count >= capacity { e = e.filter { $0.value.1 > now } }
            if e.count >= capacity { e.removeAll() }
            e[image] = (digest, now.addingTimeInterval(ttl))
        }
    }
}

/// Scans started for digests: one per digest however many requests wait for it, at most
/// `limit` at a time; a scan outlives the request that started it and fills the cache.
final class ScanPool: Sendable {
    struct Running: Sendable {
        let done: DispatchSemaphore
    }

    let running = Mutex<[String: Running]>([:])
    let slots: DispatchSemaphore
    let queue = DispatchQueue(label: "minewatch.admission.scan", attributes: .concurrent)

    init(limit: Int) { slots = DispatchSemaphore(value: max(1, limit)) }

    /// Starts (or joins) the scan of `digest`; `finish` stores its verdict. Returns whether it
    /// ended within `deadline` seconds.
    func scan(_ digest: String, deadline: TimeInterval, work: @escaping @Sendable () -> Void) -> Bool {
        let (entry, start) = running.withLock { r -> (Running, Bool) in
            if let have = r[digest] { return (have, false) }
            let e = Running(done: DispatchSemaphore(value: 0))
            r[digest] = e
            return (e, true)
        }
        if start {
            queue.async { [self] in
                slots.wait()
                work()
                slots.signal()
                _ = running.withLock { $0.removeValue(forKey: digest) }
                // Wake every waiter: each waits once and signals on for the next.
                entry.done.signal()
            }
        }
        guard entry.done.wait(timeout: .now() + max(0, deadline)) == .success else { return false }
        entry.done.signal()
        return true
    }

    var active: Int { running.withLock { $0.count } }
}
