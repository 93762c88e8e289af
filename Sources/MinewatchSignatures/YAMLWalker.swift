import Foundation
import Yams

/// One problem in a YAML document: its line when known, what it is about (a rule's id, a config
/// key's dotted path) and what is wrong. Rule and config diagnostics are these, each shown its way.
public struct YAMLProblem: Error, Sendable, Hashable {
    public var line: Int?
    public var subject: String?
    public var message: String

    public init(line: Int?, subject: String?, message: String) {
        self.line = line
        self.subject = subject
        self.message = message
    }
}

/// Walks a YAML document of a rule file or of the agent's config and collects every problem with
/// its line and subject instead of stopping at the first; the typed readers report what they
/// expected. Used by the rule loader and the config loader alike.
public struct YAMLWalker {
    public let file: String
    /// The line a problem without a node of its own is reported at (the entry being read).
    public var line: Int?
    /// What problems are about unless they say otherwise (the rule being read).
    public var subject: String?
    /// The folder relative paths in the document are resolved against.
    public var baseDirectory: String
    public private(set) var problems: [YAMLProblem] = []

    public init(file: String, line: Int? = nil, baseDirectory: String = ".") {
        self.file = file
        self.line = line
        self.baseDirectory = baseDirectory
    }

    /// The document's root node (nil for an empty document), or its syntax error as a problem.
    public static func compose(_ text: String) -> Result<Node?, YAMLProblem> {
        do {
            return .success(try Yams.compose(yaml: text))
        } catch let e as YamlError {
            let (line, msg) = describe(e)
            return .failure(YAMLProblem(line: line, subject: nil, message: "YAML: \(msg)"))
        } catch {
            return .failure(YAMLProblem(line: nil, subject: nil, message: "YAML: \(error)"))
        }
    }

    /// Line and problem of a YAML syntax error.
    public static func describe(_ e: YamlError) -> (Int?, String) {
        switch e {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _), .composer(_, let problem, let mark, _):
            return (mark.line, problem)
        case .reader(let problem, _, _, _):
            return (nil, problem)
        default:
            return (nil, "\(e)".split(separator: "\n").first.map(String.init) ?? "invalid YAML")
        }
    }

    /// A problem at `node` (else at the entry's line), about the current subject.
    public mutating func error(_ message: String, at node: Node? = nil) {
        problems.append(YAMLProblem(line: node?.mark?.line ?? line, subject: subject, message: message))
    }

    /// A problem at `node` about `key` (a dotted path).
    public mutating func error(_ node: Node?, _ key: String?, _ message: String) {
        problems.append(YAMLProblem(line: node?.mark?.line, subject: key, message: message))
    }

    public mutating func record(_ problem: YAMLProblem) { problems.append(problem) }

    /// `path` against `baseDirectory` unless absolute (or `-`, standard input or output).
    public func resolve(_ path: String) -> String {
        path.hasPrefix("/") || path == "-" ? path : URL(fileURLWithPath: baseDirectory).appendingPathComponent(path).standardizedFileURL.path
    }

    // MARK: typed readers

    public mutating func scalar(_ v: Node, _ key: String) -> String? {
        guard let s = v.scalar else {
            error(v, key, "expected a single value")
            return nil
        }
        return s.string
    }

    public mutating func string(_ v: Node, _ key: String) -> String? {
        guard let s = scalar(v, key) else { return nil }
        if s.isEmpty { error(v, key, "must not be empty"); return nil }
        return s
    }

    public mutating func bool(_ v: Node, _ key: String) -> Bool? {
        guard let s = scalar(v, key) else { return nil }
        switch s.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default:
            error(v, key, "expected true or false, not '\(s)'")
            return nil
        }
    }

    public mutating func int(_ v: Node, _ key: String, range: ClosedRange<Int>) -> Int? {
        guard let s = scalar(v, key) else { return nil }
        guard let n = Int(s), range.contains(n) else {
            error(v, key, "expected a whole number from \(range.lowerBound) to \(range.upperBound), not '\(s)'")
            return nil
        }
        return n
    }

    /// A string or a list of strings.
    public mutating func strings(_ v: Node, _ key: String) -> [String]? {
        if let s = v.scalar { return s.string.isEmpty ? [] : [s.string] }
        guard let seq = v.sequence else {
            error(v, key, "expected a string or a list of strings")
            return nil
        }
        var out: [String] = []
        for (i, item) in seq.enumerated() {
            guard let s = item.scalar?.string, !s.isEmpty else {
                error(item, "\(key)[\(i)]", "expected a non-empty string")
                continue
            }
            out.append(s)
        }
        return out
    }

    public mutating func mapping(_ v: Node, _ key: String) -> Node.Mapping? {
        guard let m = v.mapping else {
            error(v, key, "expected a mapping")
            return nil
        }
        return m
    }

    /// One entry of a list of rules, correlations or verdicts: a mapping with an `id` (which
    /// becomes the subject of what follows) and only `allowed` keys; nil when it has no id.
    public mutating func entry(_ node: Node, kind: String, allowed: Set<String>, listAllowed: Bool = false) -> (id: String, fields: [String: Node])? {
        guard let map = node.mapping else {
            error("a \(kind) must be a mapping", at: node)
            return nil
        }
        var fields: [String: Node] = [:]
        for (k, v) in map { if let key = k.string { fields[key] = v } }
        guard let id = fields["id"]?.string, !id.isEmpty else {
            error("\(kind) has no 'id'", at: node)
            return nil
        }
        subject = id
        for (k, _) in map {
            if let key = k.string, !allowed.contains(key) {
                error("unknown key '\(key)'" + (listAllowed ? " (expected \(allowed.sorted().joined(separator: ", ")))" : ""), at: k)
            }
        }
        return (id, fields)
    }

    /// Checks the keys of a mapping against `allowed`; returns the known pairs.
    public mutating func keyed(_ m: Node.Mapping, _ key: String, allowed: [String]) -> [(String, Node, Node)] {
        var out: [(String, Node, Node)] = []
        for (k, v) in m {
            guard let name = k.string, allowed.contains(name) else {
                error(k, "\(key).\(k.string ?? "?")", "unknown key (expected \(allowed.joined(separator: ", ")))")
                continue
            }
            out.append((name, k, v))
        }
        return out
    }
}
