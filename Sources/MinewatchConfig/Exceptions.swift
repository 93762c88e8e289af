import Foundation
import MinewatchCore
import MinewatchModel
#if canImport(Glibc)
import Glibc
#endif

/// One exception, as Falco users write them: a name, a reason, and conditions. An alert is
/// silenced when every condition the exception sets matches it (a list matches when any of its
/// entries does). A silenced alert is not emitted but counted for its exception, so a silenced
/// miner is never invisible.
public struct ExceptionRule: Sendable, Hashable {
    public var name: String
    public var reason: String
    /// Where it was written (file:line).
    public var source: String
    /// Globs on the image reference (`docker.io/fluent/fluent-bit:*`).
    public var images: [String] = []
    /// Globs on the container's name (the engine's, or the Kubernetes container name).
    public var containers: [String] = []
    /// Globs on the Kubernetes namespace.
    public var namespaces: [String] = []
    /// Labels that must all be present, values as globs.
    public var labels: [String: String] = [:]
    public var detectors: Set<DetectorID> = []
    public var families: Set<String> = []
    /// Every destination the alert names must fall in one of these: CIDRs, or domains (a domain
    /// also covers its subdomains; `*.` globs work too).
    public var destinations: [Destination] = []
    /// Globs on the executable's path.
    public var processes: [String] = []

    public init(name: String, reason: String, source: String) {
        self.name = name
        self.reason = reason
        self.source = source
    }

    public enum Destination: Sendable, Hashable, CustomStringConvertible {
        case network(CIDR)
        case domain(String)
        public var description: String {
            switch self {
            case .network(let c): c.description
            case .domain(let d): d
            }
        }
    }

    /// True when the exception sets at least one condition (one without any would silence
    /// everything, and is refused on load).
    public var hasConditions: Bool {
        !(images.isEmpty && containers.isEmpty && namespaces.isEmpty && labels.isEmpty && detectors.isEmpty
            && families.isEmpty && destinations.isEmpty && processes.isEmpty)
    }

    public func matches(_ a: Alert) -> Bool {
        let c = a.container
        if !images.isEmpty {
            // Docker reports images as typed (fluent/fluent-bit:2.2), podman and CRI fully
            // qualified (docker.io/fluent/fluent-bit:2.2): both forms are compared.
            guard let img = c.image else { return false }
            let full = Self.qualified(img)
            guard images.contains(where: { Glob.match($0, img) || Glob.match(Self.qualified($0), full) }) else { return false }
        }
        if !containers.isEmpty {
            let names = [c.name, c.k8s?.container].compactMap { $0 }
            guard names.contains(where: { n in containers.contains { Glob.match($0, n) } }) else { return false }
        }
        if !namespaces.isEmpty { guard let ns = c.k8s?.namespace, namespaces.contains(where: { Glob.match($0, ns) }) else { return false } }
        for (k, v) in labels { guard let have = c.labels?[k], Glob.match(v, have) else { return false } }
        if !detectors.isEmpty && !detectors.contains(a.detector) { return false }
        if !families.isEmpty { guard let f = a.family, families.contains(f) else { return false } }
        if !processes.isEmpty { guard let exe = a.exe, processes.contains(where: { Glob.match($0, exe) }) else { return false } }
        if !destinations.isEmpty {
            let hosts = a.destinationHosts
            guard !hosts.isEmpty, hosts.allSatisfy({ h in destinations.contains { Self.covers($0, h) } }) else { return false }
        }
        return true
    }

    /// True when the exception admits a container at admission time: its namespace, the
    /// object's labels, the container's image and name, and the families found in its spec (or
    /// its image's scan). Exceptions that name detectors, destinations or processes describe
    /// running containers and never match here.
    public func admits(namespace: String?, labels: [String: String], image: String, container: String, families: Set<String>) -> Bool {
        guard hasConditions, detectors.isEmpty, destinations.isEmpty, processes.isEmpty else { return false }
        if !images.isEmpty {
            let full = Self.qualified(image)
            guard images.contains(where: { Glob.match($0, image) || Glob.match(Self.qualified($0), full) }) else { return false }
        }
        if !containers.isEmpty { guard containers.contains(where: { Glob.match($0, container) }) else { return false } }
        if !namespaces.isEmpty { guard let ns = namespace, namespaces.contains(where: { Glob.match($0, ns) }) else { return false } }
        for (k, v) in self.labels { guard let have = labels[k], Glob.match(v, have) else { return false } }
        if !self.families.isEmpty { guard !families.isEmpty, families.isSubset(of: self.families) else { return false } }
        return true
    }

    /// An image reference with Docker Hub's implied parts: `busybox` is
    /// `docker.io/library/busybox`, `fluent/fluent-bit:2` is `docker.io/fluent/fluent-bit:2`. A
    /// reference (or pattern) that names a registry, or starts with a glob, is left as it is.
    public static func qualified(_ ref: String) -> String {
        guard let first = ref.first, first != "*", first != "?" else { return ref }
        let parts = ref.split(separator: "/", omittingEmptySubsequences: false)
        if parts.count > 1, let head = parts.first, head.contains(".") || head.contains(":") || head == "localhost" { return ref }
        return parts.count == 1 ? "docker.io/library/" + ref : "docker.io/" + ref
    }

    public static func covers(_ d: Destination, _ host: String) -> Bool {
        switch d {
        case .network(let cidr): return IPAddress(host).map(cidr.contains) ?? false
        case .domain(let pattern):
            let h = host.lowercased()
            if pattern.contains("*") { return Glob.match(pattern, h) }
            return h == pattern || h.hasSuffix("." + pattern)
        }
    }
}

/// The exceptions in force, with how often each silenced an alert (since the agent started;
/// a reload keeps the counts of exceptions that keep their name).
public struct ExceptionSet: Sendable {
    public private(set) var rules: [ExceptionRule]
    public private(set) var hits: [String: Int] = [:]

    public init(_ rules: [ExceptionRule] = []) { self.rules = rules }

    /// The exception that silences `a` (and counts it), or nil.
    public mutating func silence(_ a: Alert) -> ExceptionRule? {
        guard let r = match(a) else { return nil }
        count(r.name)
        return r
    }

    /// The exception that would silence `a`, without counting it.
    public func match(_ a: Alert) -> ExceptionRule? { rules.first { $0.matches(a) } }

    public mutating func count(_ name: String) { hits[name, default: 0] += 1 }

    /// New rules, keeping the counts of those still present.
    public mutating func replace(with new: [ExceptionRule]) {
        let names = Set(new.map(\.name))
        rules = new
        hits = hits.filter { names.contains($0.key) }
    }
}

/// Shell-style globs: `*` any run of characters, `?` one character; everything else literal.
public enum Glob {
    public static func match(_ pattern: String, _ text: String) -> Bool {
        let p = Array(pattern.utf8), t = Array(text.utf8)
        var pi = 0, ti = 0, star = -1, mark = 0
        while ti < t.count {
            if pi < p.count && (p[pi] == UInt8(ascii: "?") || p[pi] == t[ti]) {
                pi += 1; ti += 1
            } else if pi < p.count && p[pi] == UInt8(ascii: "*") {
                star = pi; mark = ti; pi += 1
            } else if star >= 0 {
                pi = star + 1; mark += 1; ti = mark
            } else {
                return false
            }
        }
        while pi < p.count && p[pi] == UInt8(ascii: "*") { pi += 1 }
        return pi == p.count
    }
}

/// A network in CIDR notation (`10.0.0.0/8`, `fd00::/8`; a bare address is a /32 or /128).
public struct CIDR: Sendable, Hashable, CustomStringConvertible {
    public var address: IPAddress
    /// Prefix length over the 128-bit form.
    public var bits: Int
    public var description: String

    public static func parse(_ s: String) -> CIDR? {
        let parts = s.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let first = parts.first, let a = IPAddress(String(first)) else { return nil }
        var len = a.isV4 ? 32 : 128
        if parts.count == 2 {
            guard let n = Int(parts[1]), n >= 0, n <= len else { return nil }
            len = n
        }
        return CIDR(address: a, bits: a.isV4 ? 96 + len : len, description: s)
    }

    public func contains(_ ip: IPAddress) -> Bool {
        let (ah, al) = address.wide, (bh, bl) = ip.wide
        let hiBits = min(bits, 64), loBits = max(bits - 64, 0)
        let hiMask: UInt64 = hiBits == 0 ? 0 : ~0 << (64 - UInt64(hiBits))
        let loMask: UInt64 = loBits == 0 ? 0 : ~0 << (64 - UInt64(loBits))
        return ah & hiMask == bh & hiMask && al & loMask == bl & loMask
    }
}
