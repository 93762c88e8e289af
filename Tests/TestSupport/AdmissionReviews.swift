import Foundation

/// AdmissionReview requests shaped as the API server sends them (k8s.io/api admission/v1:
/// uid, kind, resource, requestKind, requestResource, name, namespace, operation, userInfo,
/// object, oldObject, dryRun, options), with the pod spec at the path each kind keeps it.
public enum AdmissionReviews {
    public static func container(_ image: String, command: [String] = [], env: [String: String] = [:]) -> [String: Any] {
        var c: [String: Any] = ["name": "app", "image": image, "imagePullPolicy": "IfNotPresent", "resources": [String: Any](),
                                "terminationMessagePath": "/dev/termination-log"]
        if !command.isEmpty { c["command"] = command }
        if !env.isEmpty { c["env"] = env.sorted { $0.key < $1.key }.map { ["name": $0.key, "value": $0.value] } }
        return c
    }

    /// The object of `kind` around a pod spec, at the path k8s.io/api puts it.
    public static func object(_ kind: String, spec: [String: Any], labels: [String: String] = ["app": "web"]) -> [String: Any] {
        let template: [String: Any] = ["metadata": ["labels": labels], "spec": spec]
        let meta: [String: Any] = ["name": "web", "namespace": "shop", "labels": labels, "uid": "0b1c"]
        let group: String
        let body: [String: Any]
        switch kind {
        case "Pod": group = "v1"; body = ["spec": spec]
        case "Deployment", "ReplicaSet", "StatefulSet", "DaemonSet":
            group = "apps/v1"; body = ["spec": ["replicas": 2, "selector": ["matchLabels": labels], "template": template]]
        case "Job": group = "batch/v1"; body = ["spec": ["template": template, "backoffLimit": 6]]
        case "CronJob": group = "batch/v1"; body = ["spec": ["schedule": "*/5 * * * *", "jobTemplate": ["spec": ["template": template]]]]
        default: group = "v1"; body = ["template": template]
        }
        return body.merging(["apiVersion": group, "kind": kind, "metadata": meta]) { a, _ in a }
    }

    public static func review(_ kind: String, spec: [String: Any], operation: String = "CREATE", uid: String = UUID().uuidString,
                       labels: [String: String] = ["app": "web"]) -> [UInt8] {
        let groups = ["Pod": ("", "pods"), "Deployment": ("apps", "deployments"), "ReplicaSet": ("apps", "replicasets"),
                      "StatefulSet": ("apps", "statefulsets"), "DaemonSet": ("apps", "daemonsets"), "Job": ("batch", "jobs"),
                      "CronJob": ("batch", "cronjobs"), "PodTemplate": ("", "podtemplates")]
        let (group, resource) = groups[kind] ?? ("", "pods")
        let obj = object(kind, spec: spec, labels: labels)
        let request: [String: Any] = [
            "uid": uid, "kind": ["group": group, "version": "v1", "kind": kind], "resource": ["group": group, "version": "v1", "resource": resource],
            "requestKind": ["group": group, "version": "v1", "kind": kind], "requestResource": ["group": group, "version": "v1", "resource": resource],
            "name": "web", "namespace": "shop", "operation": operation,
            "userInfo": ["username": "system:serviceaccount:shop:deployer", "uid": "9f", "groups": ["system:serviceaccounts", "system:authenticated"]],
            "object": operation == "DELETE" ? NSNull() : obj, "oldObject": operation == "CREATE" ? NSNull() : obj, "dryRun": false,
            "options": ["apiVersion": "meta.k8s.io/v1", "kind": operation == "DELETE" ? "DeleteOptions" : "CreateOptions"],
        ]
        let review: [String: Any] = ["apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request]
        return Array((try? JSONSerialization.data(withJSONObject: review)) ?? Data())
    }

    /// A review as a JSON string.
    public static func text(_ kind: String, spec: [String: Any], operation: String = "CREATE", namespace: String = "shop",
                            labels: [String: String] = ["app": "web"]) -> String {
        var obj = (try? JSONSerialization.jsonObject(with: Data(review(kind, spec: spec, operation: operation, labels: labels)))) as? [String: Any] ?? [:]
        if var req = obj["request"] as? [String: Any] {
            req["namespace"] = namespace
            obj["request"] = req
        }
        return String(decoding: (try? JSONSerialization.data(withJSONObject: obj)) ?? Data(), as: UTF8.self)
    }
}
