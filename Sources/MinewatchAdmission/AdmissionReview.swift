import Foundation
import MinewatchCore

/// An AdmissionReview (admission.k8s.io/v1) as the API server sends it, reduced to what the
/// webhook judges: who asked for what, and the pod spec inside the object (Pods, and the pod
/// templates of Deployments, ReplicaSets, StatefulSets, DaemonSets, Jobs, CronJobs,
/// ReplicationControllers and PodTemplates).
public struct AdmissionRequest: Sendable {
    public var uid: String
    /// The review's apiVersion, echoed in the response (v1).
    public var apiVersion: String
    public var kind: String
    public var group: String
    public var namespace: String?
    public var name: String?
    public var operation: String
    public var subResource: String?
    public var user: String?
    public var dryRun: Bool
    /// The object's labels (metadata.labels), and its pod template's.
    public var labels: [String: String]
    public var containers: [PodContainer]

    /// The API server's own limit on a request body is 3 MiB; a little room for the envelope.
    public static let maxBytes = 4 << 20

    /// Parses a review; errors name the field.
    public static func parse(_ bytes: [UInt8]) throws(MinewatchError) -> AdmissionRequest {
        func bad(_ field: String, _ why: String) -> MinewatchError {
            MinewatchError(.format, operation: "read AdmissionReview", subject: field, message: why)
        }
        guard bytes.count <= maxBytes else { throw bad("body", "larger than \(maxBytes) bytes") }
        guard let top = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] else { throw bad("body", "not a JSON object") }
        guard top["kind"] as? String == "AdmissionReview" else { throw bad("kind", "not an AdmissionReview") }
        let apiVersion = (top["apiVersion"] as? String) ?? ""
        guard apiVersion == "admission.k8s.io/v1" || apiVersion == "admission.k8s.io/v1beta1" else {
            throw bad("apiVersion", "'\(apiVersion.prefix(60))' is not admission.k8s.io/v1")
        }
        guard let req = top["request"] as? [String: Any] else { throw bad("request", "missing") }
        guard let uid = req["uid"] as? String, !uid.isEmpty else { throw bad("request.uid", "missing") }
        let kind = req["kind"] as? [String: Any]
        let object = req["object"] as? [String: Any]
        let meta = object?["metadata"] as? [String: Any]
        var out = AdmissionRequest(
            uid: uid, apiVersion: apiVersion, kind: (kind?["kind"] as? String) ?? "", group: (kind?["group"] as? String) ?? "",
            namespace: (req["namespace"] as? String).flatMap { $0.isEmpty ? nil : $0 } ?? (meta?["namespace"] as? String),
            name: (req["name"] as? String).flatMap { $0.isEmpty ? nil : $0 } ?? (meta?["name"] as? String) ?? (meta?["generateName"] as? String),
            operation: (req["operation"] as? String) ?? "", subResource: req["subResource"] as? String,
            user: (req["userInfo"] as? [String: Any])?["username"] as? String, dryRun: (req["dryRun"] as? Bool) ?? false,
            labels: Self.strings(meta?["labels"]), containers: [])
        if let object, let (spec, templateLabels) = Self.podSpec(object, kind: out.kind) {
            out.labels.merge(templateLabels) { own, _ in own }
            out.containers = try PodContainer.all(in: spec)
        }
        return out
    }

    /// The pod spec an object runs, and its template's labels.
    static func podSpec(_ object: [String: Any], kind: String) -> ([String: Any], [String: String])? {
        let spec = object["spec"] as? [String: Any]
        func template(_ t: Any?) -> ([String: Any], [String: String])? {
            guard let t = t as? [String: Any], let s = t["spec"] as? [String: Any] else { return nil }
            return (s, strings((t["metadata"] as? [String: Any])?["labels"]))
        }
        switch kind {
        case "Pod": return spec.map { ($0, [:]) }
        case "Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "ReplicationController": return template(spec?["template"])
        case "CronJob": return template(((spec?["jobTemplate"] as? [String: Any])?["spec"] as? [String: Any])?["template"])
        case "PodTemplate": return template(object["template"])
        default: return nil
        }
    }

    static func strings(_ v: Any?) -> [String: String] {
        guard let d = v as? [String: Any] else { return [:] }
        var out: [String: String] = [:]
        for (k, v) in d { if let s = v as? String { out[k] = s } }
        return out
    }
}

/// One container of a pod spec (containers, initContainers, ephemeralContainers).
public struct PodContainer: Sendable, Hashable {
    public var name: String
    /// containers, initContainers or ephemeralContainers.
    public var list: String
    public var image: String
    public var command: [String]
    public var args: [String]
    /// Literal env values (name, value); values from secrets and config maps are not in the spec.
    public var env: [(String, String)]

    public static func == (a: PodContainer, b: PodContainer) -> Bool {
        a.name == b.name && a.list == b.list && a.image == b.image && a.command == b.command && a.args == b.args
            && a.env.map(\.0) == b.env.map(\.0) && a.env.map(\.1) == b.env.map(\.1)
    }

    public func hash(into h: inout Hasher) {
        h.combine(name); h.combine(list); h.combine(image)
    }

    static func all(in spec: [String: Any]) throws(MinewatchError) -> [PodContainer] {
        var out: [PodContainer] = []
        for list in ["initContainers", "containers", "ephemeralContainers"] {
            guard let items = spec[list] else { continue }
            guard let arr = items as? [[String: Any]] else {
                throw MinewatchError(.format, operation: "read AdmissionReview", subject: "spec.\(list)", message: "not a list of containers")
            }
            for (i, c) in arr.enumerated() {
                guard let image = c["image"] as? String else {
                    throw MinewatchError(.format, operation: "read AdmissionReview", subject: "spec.\(list)[\(i)].image", message: "missing")
                }
                let env: [(String, String)] = ((c["env"] as? [[String: Any]]) ?? []).compactMap { e in
                    guard let n = e["name"] as? String else { return nil }
                    return (n, (e["value"] as? String) ?? "")
                }
                out.append(PodContainer(name: (c["name"] as? String) ?? "\(list)[\(i)]", list: list, image: image,
                                        command: (c["command"] as? [Any])?.compactMap { $0 as? String } ?? [],
                                        args: (c["args"] as? [Any])?.compactMap { $0 as? String } ?? [], env: env))
            }
        }
        return out
    }

    /// The container as the lines of a Kubernetes manifest, so the rules that judge manifests in
    /// `scan` judge it the same way (image names, command lines, env).
    public var manifestText: String {
        let q = JSONText.string
        var lines = ["apiVersion: v1", "kind: Pod", "spec:", "  \(list):", "  - name: \(q(name))", "    image: \(image)"]
        if !command.isEmpty { lines.append("    command: [\(command.map(q).joined(separator: ", "))]") }
        if !args.isEmpty { lines.append("    args: [\(args.map(q).joined(separator: ", "))]") }
        if !env.isEmpty {
            lines.append("    env:")
            for (n, v) in env { lines += ["    - name: \(q(n))", "      value: \(q(v))"] }
        }
        // The command line as it runs, for rules written against command lines.
        if !(command + args).isEmpty { lines.append("# \((command + args).joined(separator: " "))") }
        return lines.joined(separator: "\n") + "\n"
    }
}

/// The AdmissionReview answer: the request's uid, allowed or not, a status message when not,
/// warnings, audit annotations. Never a patch (a validating webhook may not send one).
public struct AdmissionResponse: Sendable {
    public var uid: String
    public var apiVersion: String
    public var allowed: Bool
    public var message: String?
    public var warnings: [String]
    public var auditAnnotations: [String: String]

    public init(uid: String, apiVersion: String = "admission.k8s.io/v1", allowed: Bool, message: String? = nil, warnings: [String] = [],
                auditAnnotations: [String: String] = [:]) {
        self.uid = uid
        self.apiVersion = apiVersion
        self.allowed = allowed
        self.message = message
        self.warnings = warnings
        self.auditAnnotations = auditAnnotations
    }

    public func encoded() -> [UInt8] {
        var response: [String: Any] = ["uid": uid, "allowed": allowed]
        if !allowed { response["status"] = ["code": 403, "reason": "Forbidden", "message": message ?? "denied by minewatch"] }
        // The API server shows warnings to the client; keep each short as it asks (120 characters).
        if !warnings.isEmpty { response["warnings"] = warnings.prefix(16).map { $0.count > 120 ? String($0.prefix(117)) + "..." : $0 } }
        if !auditAnnotations.isEmpty { response["auditAnnotations"] = auditAnnotations }
        let review: [String: Any] = ["apiVersion": apiVersion, "kind": "AdmissionReview", "response": response]
        return (try? JSONSerialization.data(withJSONObject: review, options: [.sortedKeys, .withoutEscapingSlashes])).map(Array.init) ?? []
    }
}
