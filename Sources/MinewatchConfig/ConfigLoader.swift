import Foundation
import MinewatchCore
import MinewatchModel
import MinewatchSignatures
import Yams

/// A problem in a config file, one line when printed: `minewatch.yaml:12: outputs.jsonl.path: expected a string`.
public struct ConfigDiagnostic: Sendable, Hashable, CustomStringConvertible, Error {
    public var file: String
    public var line: Int?
    /// The key's dotted path (`exceptions[2].destination`), when the problem has one.
    public var key: String?
    public var message: String

    public init(file: String, line: Int?, key: String?, message: String) {
        self.file = file
        self.line = line
        self.key = key
        self.message = message
    }

    public var description: String {
        var s = file
        if let line { s += ":\(line)" }
        s += ": "
        if let key { s += "\(key): " }
        return s + message
    }
}

/// Loads and validates the agent's config file like the rules: every problem is reported with
/// file, line and key, unknown keys are errors, and a file with any problem is not used.
public enum ConfigLoader {
    /// The file `watch` reads when `--config` is not given and it exists.
    public static let defaultPath = "/etc/minewatch/minewatch.yaml"
    static let topKeys = ["interval", "engine_socket", "include_host", "capture", "containers", "rules", "bundled_rules",
                          "detectors", "models", "action", "outputs", "metrics_listen", "token_file", "exceptions", "runtime_state", "history", "dashboard", "listen", "memory_scan", "fpu_sampling"]

    public static func load(path: String) -> (AgentConfig?, [ConfigDiagnostic]) {
        let data: Data
        do throws(MinewatchError) { data = Data(try FileHandleFD.readWhole(path, limit: 16 << 20, what: "config")) } catch {
            return (nil, [ConfigDiagnostic(file: path, line: nil, key: nil, message: "read config: \(error.message)")])
        }
        guard let text = String(data: data, encoding: .utf8) else {
            return (nil, [ConfigDiagnostic(file: path, line: nil, key: nil, message: "config file is not UTF-8")])
        }
        let base = URL(fileURLWithPath: path).deletingLastPathComponent().path
        return load(yaml: text, file: path, baseDirectory: base)
    }

    /// Parses `text`; relative paths in it are resolved against `baseDirectory`.
    public static func load(yaml text: String, file: String, baseDirectory: String = ".") -> (AgentConfig?, [ConfigDiagnostic]) {
        let root: Node?
        switch YAMLWalker.compose(text) {
        case .success(let r): root = r
        case .failure(let e): return (nil, [ConfigDiagnostic(file: file, line: e.line, key: nil, message: e.message)])
        }
        var p = YAMLWalker(file: file, baseDirectory: baseDirectory)
        var config = AgentConfig(file: file)
        guard let root else { return (config, []) }  // an empty file: all defaults
        guard let top = root.mapping else {
            p.error(root, nil, "expected a mapping of settings at the top")
            return (nil, p.diagnostics)
        }
        for (k, v) in top {
            guard let key = k.string else { p.error(k, nil, "keys must be strings"); continue }
            switch key {
            case "interval": config.interval = p.duration(v, key, range: 0.1...3600)
            case "engine_socket": config.engineSocket = p.string(v, key).map(p.resolve)
            case "include_host": config.includeHost = p.bool(v, key)
            case "capture": config.capture = p.bool(v, key)
            case "containers": config.containers = p.strings(v, key)
            case "rules": config.rules = (p.strings(v, key) ?? []).map(p.resolve)
            case "bundled_rules": config.bundledRules = p.bool(v, key)
            case "detectors": config.detectors = p.detectors(v, key)
            case "models":
                let (m, d) = RuleLoader.models(v, file: file)
                config.models = m
                for x in d { p.record(YAMLProblem(line: x.line, subject: "models", message: x.message)) }
            case "action": config.action = p.action(v, key)
            case "outputs": config.outputs = p.outputs(v, key)
            case "metrics_listen": config.metricsListen = p.listenAddress(v, key)
            case "token_file": config.tokenFile = p.string(v, key).map(p.resolve)
            case "exceptions": config.exceptions = p.exceptions(v, key)
            case "runtime_state": config.runtimeState = (p.strings(v, key) ?? []).map(p.resolve)
            case "history": config.history = p.history(v, key)
            case "dashboard": config.dashboard = p.bool(v, key)
            case "memory_scan": config.memoryScan = p.bool(v, key)
            case "fpu_sampling": config.fpuSampling = p.bool(v, key)
            // The HTTP endpoint serves /metrics and the dashboard: `listen` and `metrics_listen` are one setting.
            case "listen": config.metricsListen = p.listenAddress(v, key)
            default: p.error(k, key, "unknown key (expected \(topKeys.joined(separator: ", ")))")
            }
        }
        return p.problems.isEmpty ? (config, []) : (nil, p.diagnostics)
    }

}

/// The config's own readers, over the walker the rule loader uses too.
extension YAMLWalker {
    /// The problems as config diagnostics (`file:line: key: message`).
    var diagnostics: [ConfigDiagnostic] { problems.map { ConfigDiagnostic(file: file, line: $0.line, key: $0.subject, message: $0.message) } }

        mutating func duration(_ v: Node, _ key: String, range: ClosedRange<Double>) -> Double? {
            guard let s = scalar(v, key) else { return nil }
            guard let d = Durations.parse(s) else {
                error(v, key, "expected a duration such as 2s, 500ms or 1m, not '\(s)'")
                return nil
            }
            guard range.contains(d) else {
                error(v, key, "must be between \(Durations.format(range.lowerBound)) and \(Durations.format(range.upperBound))")
                return nil
            }
            return d
        }

        mutating func detectorIDs(_ v: Node, _ key: String) -> Set<DetectorID> {
            var out: Set<DetectorID> = []
            for (i, s) in (strings(v, key) ?? []).enumerated() {
                if let d = DetectorID(rawValue: s) { out.insert(d) } else {
                    error(v.sequence.map { Array($0)[i] } ?? v, key, "unknown detector '\(s)' (expected \(DetectorID.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
            }
            return out
        }

        mutating func detectors(_ v: Node, _ key: String) -> [DetectorID: Bool] {
            guard let m = mapping(v, key) else { return [:] }
            var out: [DetectorID: Bool] = [:]
            for (k, val) in m {
                guard let name = k.string, let id = DetectorID(rawValue: name) else {
                    error(k, "\(key).\(k.string ?? "?")", "unknown detector (expected \(DetectorID.allCases.map(\.rawValue).joined(separator: ", ")))")
                    continue
                }
                // `name: false`, or `name: {enabled: false}` (thresholds live under models:).
                if val.mapping != nil, let m2 = mapping(val, "\(key).\(name)") {
                    for (n, _, vv) in keyed(m2, "\(key).\(name)", allowed: ["enabled"]) where n == "enabled" {
                        out[id] = bool(vv, "\(key).\(name).enabled")
                    }
                } else {
                    out[id] = bool(val, "\(key).\(name)")
                }
            }
            return out
        }

        mutating func action(_ v: Node, _ key: String) -> AgentConfig.Action? {
            guard let m = mapping(v, key) else { return nil }
            var a = AgentConfig.Action(type: .alert)
            for (name, _, val) in keyed(m, key, allowed: ["type", "act_on", "dry_run"]) {
                switch name {
                case "type":
                    guard let t = string(val, "\(key).type") else { continue }
                    if let action = ResponseAction(rawValue: t) { a.type = action } else {
                        error(val, "\(key).type", "expected \(ResponseAction.allCases.map(\.rawValue).dropLast().joined(separator: ", ")) or \(ResponseAction.allCases.last?.rawValue ?? ""), not '\(t)'")
                    }
                case "act_on":
                    guard let s = string(val, "\(key).act_on") else { continue }
                    if let sev = Severity(rawValue: s) { a.actOn = sev } else {
                        error(val, "\(key).act_on", "expected a severity (info, low, medium, high, critical), not '\(s)'")
                    }
                default: a.dryRun = bool(val, "\(key).dry_run")
                }
            }
            if a.dryRun == true && a.type == .alert { error(v, key, "dry_run needs a type other than alert") }
            return a
        }

        mutating func outputs(_ v: Node, _ key: String) -> AgentConfig.Outputs {
            var o = AgentConfig.Outputs()
            guard let m = mapping(v, key) else { return o }
            for (name, _, val) in keyed(m, key, allowed: ["queue_size", "jsonl", "ocsf", "falcosidekick"]) {
                let k = "\(key).\(name)"
                switch name {
                case "queue_size": o.queueSize = int(val, k, range: 1...1_000_000)
                case "jsonl", "ocsf":
                    guard let fm = mapping(val, k) else { continue }
                    var path: String?
                    var telemetry = false
                    for (n, _, x) in keyed(fm, k, allowed: name == "jsonl" ? ["path", "telemetry"] : ["path"]) {
                        if n == "path" { path = string(x, "\(k).path").map(resolve) } else { telemetry = bool(x, "\(k).telemetry") ?? false }
                    }
                    guard let path else { error(val, k, "needs a path (a file, or - for standard output)"); continue }
                    if name == "jsonl" { o.jsonl = .init(path: path, telemetry: telemetry) } else { o.ocsf = .init(path: path) }
                default:
                    guard let hm = mapping(val, k) else { continue }
                    var out = AgentConfig.HTTPOutput(url: "")
                    for (n, _, x) in keyed(hm, k, allowed: ["url", "timeout", "retries", "token_file"]) {
                        switch n {
                        case "url":
                            guard let u = string(x, "\(k).url") else { continue }
                            if let parsed = URL(string: u), parsed.scheme == "http" || parsed.scheme == "https", parsed.host != nil { out.url = u } else {
                                error(x, "\(k).url", "expected an http:// or https:// URL, not '\(u)'")
                            }
                        case "timeout": out.timeout = duration(x, "\(k).timeout", range: 0.1...300) ?? out.timeout
                        case "retries": out.retries = int(x, "\(k).retries", range: 0...100) ?? out.retries
                        default: out.tokenFile = string(x, "\(k).token_file").map(resolve)
                        }
                    }
                    if out.url.isEmpty {
                        if !problems.contains(where: { $0.subject == "\(k).url" }) { error(val, k, "needs a url") }
                    } else {
                        o.falcosidekick = out
                    }
                }
            }
            return o
        }

        mutating func listenAddress(_ v: Node, _ key: String) -> String? {
            guard let s = string(v, key) else { return nil }
            guard ListenAddress.parse(s) != nil else {
                error(v, key, "expected host:port (127.0.0.1:9376, [::1]:9376, 0.0.0.0:9376), not '\(s)'")
                return nil
            }
            return s
        }

        mutating func history(_ v: Node, _ key: String) -> AgentConfig.History? {
            if v.scalar != nil { return string(v, key).map { AgentConfig.History(path: resolve($0)) } }
            guard let m = mapping(v, key) else { return nil }
            var path: String?
            var h = AgentConfig.History(path: "")
            for (name, _, x) in keyed(m, key, allowed: ["path", "retention", "samples_retention", "max_size"]) {
                let k = "\(key).\(name)"
                switch name {
                case "path": path = string(x, k).map(resolve)
                case "retention": h.retention = duration(x, k, range: 60...(366 * 86400))
                case "samples_retention": h.samplesRetention = duration(x, k, range: 60...(366 * 86400))
                default:
                    guard let s = string(x, k) else { continue }
                    if let b = ByteAmounts.sizeLimit(s) { h.maxBytes = b } else {
                        error(x, k, "expected a size of at least 1MiB such as 256MiB or 1GB, not '\(s)'")
                    }
                }
            }
            guard let path else { error(v, key, "needs a path"); return nil }
            h.path = path
            return h
        }

        static let exceptionKeys = ["name", "reason", "enabled", "image", "container", "namespace", "labels", "detector", "family", "destination", "process"]

        mutating func exceptions(_ v: Node, _ key: String) -> [ExceptionRule] {
            guard let seq = v.sequence else {
                error(v, key, "expected a list of exceptions")
                return []
            }
            var out: [ExceptionRule] = []
            var seen: [String: Int] = [:]
            for (i, item) in seq.enumerated() {
                let k = "\(key)[\(i)]"
                guard let m = mapping(item, k) else { continue }
                var r = ExceptionRule(name: "", reason: "", source: "\(file):\(item.mark?.line ?? 0)")
                var enabled = true
                let before = problems.count
                for (name, _, x) in keyed(m, k, allowed: Self.exceptionKeys) {
                    let kk = "\(k).\(name)"
                    switch name {
                    case "name": r.name = string(x, kk) ?? ""
                    case "reason": r.reason = string(x, kk) ?? ""
                    case "enabled": enabled = bool(x, kk) ?? true
                    case "image": r.images = strings(x, kk) ?? []
                    case "container": r.containers = strings(x, kk) ?? []
                    case "namespace": r.namespaces = strings(x, kk) ?? []
                    case "labels":
                        guard let lm = mapping(x, kk) else { continue }
                        for (lk, lv) in lm {
                            guard let name = lk.string, !name.isEmpty, let value = lv.scalar?.string else {
                                error(lk, kk, "labels are name: value pairs")
                                continue
                            }
                            r.labels[name] = value
                        }
                    case "detector": r.detectors = detectorIDs(x, kk)
                    case "family": r.families = Set(strings(x, kk) ?? [])
                    case "process": r.processes = strings(x, kk) ?? []
                    default:
                        for (j, d) in (strings(x, kk) ?? []).enumerated() {
                            let node = x.sequence.map { Array($0)[j] } ?? x
                            if let c = CIDR.parse(d) { r.destinations.append(.network(c)) } else if Self.isDomainPattern(d) {
                                r.destinations.append(.domain(d.lowercased()))
                            } else {
                                error(node, kk, "'\(d)' is neither a CIDR (10.0.0.0/8, 192.0.2.7) nor a domain (logs.example.com, *.example.com)")
                            }
                        }
                    }
                }
                if r.name.isEmpty {
                    error(item, k, "an exception needs a name")
                } else if let prev = seen[r.name] {
                    error(item, "\(k).name", "duplicate exception name '\(r.name)' (first at line \(prev))")
                }
                if !r.name.isEmpty { seen[r.name] = seen[r.name] ?? item.mark?.line ?? 0 }
                if r.reason.isEmpty && !problems.contains(where: { $0.subject == "\(k).reason" }) { error(item, k, "an exception needs a reason (say why this is allowed)") }
                if !r.hasConditions && problems.count == before {
                    error(item, k, "an exception needs at least one condition (image, container, namespace, labels, detector, family, destination, process); one without any would silence everything")
                }
                if enabled && problems.count == before { out.append(r) }
            }
            return out
        }

        static func isDomainPattern(_ s: String) -> Bool {
            let body = s.hasPrefix("*.") ? String(s.dropFirst(2)) : s
            let labels = body.split(separator: ".", omittingEmptySubsequences: false)
            return !body.isEmpty && body.count <= 253 && labels.allSatisfy { l in
                !l.isEmpty && l.count <= 63 && l.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }
            }
        }
}

/// A TCP listen address: `host:port`, `[v6]:port`, or `:port` (all addresses).
public struct ListenAddress: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public static func parse(_ s: String) -> ListenAddress? {
        var host: Substring
        var port: Substring
        if s.hasPrefix("[") {
            guard let close = s.firstIndex(of: "]"), s[s.index(after: close)...].hasPrefix(":") else { return nil }
            host = s[s.index(after: s.startIndex)..<close]
            port = s[s.index(close, offsetBy: 2)...]
        } else {
            guard let colon = s.lastIndex(of: ":"), !s[..<colon].contains(":") else { return nil }
            host = s[..<colon]
            port = s[s.index(after: colon)...]
        }
        guard let p = Int(port), (0...65535).contains(p) else { return nil }
        if host.isEmpty { host = "0.0.0.0" }
        guard IPAddress(String(host)) != nil || host == "localhost" else { return nil }
        return ListenAddress(host: String(host), port: p)
    }

    /// Bound to loopback only (no token needed).
    public var isLoopback: Bool {
        if host == "localhost" || host == "::1" { return true }
        return host.hasPrefix("127.")
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}
