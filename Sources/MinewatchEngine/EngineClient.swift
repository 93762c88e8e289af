import Foundation
import MinewatchCore
import MinewatchHTTP
import MinewatchModel

/// The Docker Engine API on a unix socket (Docker, or podman's compatible service).
public struct EngineClient: Sendable {
    public let socket: String
    public var http = HTTPClient()

    public init(socket: String) { self.socket = socket }

    /// `--engine-socket`, else `$DOCKER_HOST` (unix://), else the usual Docker and podman sockets.
    public static func defaultSocket(environment: [String: String] = ProcessInfo.processInfo.environment) -> String? {
        if let host = environment["DOCKER_HOST"], host.hasPrefix("unix://") { return String(host.dropFirst(7)) }
        var candidates = ["/var/run/docker.sock", "/run/podman/podman.sock"]
        if let xdg = environment["XDG_RUNTIME_DIR"] { candidates.append("\(xdg)/podman/podman.sock") }
        return candidates.first { FileManager.default.fileExists(atPath: $0) }
    }

    /// Percent-encodes an image name for a URL path, keeping `/`, `:` and `@`.
    static func escape(_ name: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~/:@")
        return name.addingPercentEncoding(withAllowedCharacters: allowed) ?? name
    }

    func get(_ path: String) throws(MinewatchError) -> HTTPResponse {
        try http.request(.unix(path: socket), path: path)
    }

    public func ping() -> Bool {
        guard let r = try? get("/_ping") else { return false }
        return r.status == 200
    }

    /// The image's id and tags, or nil when the engine does not have it.
    public func inspectImage(_ name: String) throws(MinewatchError) -> (id: String, tags: [String])? {
        let r = try get("/images/\(Self.escape(name))/json")
        if r.status == 404 { return nil }
        let body = try r.body.readAll(limit: 16 << 20, what: "engine image inspect")
        guard r.status == 200 else {
            throw MinewatchError(.network, operation: "inspect image", subject: name,
                                 message: "engine answered \(r.status): \(String(decoding: body.prefix(200), as: UTF8.self))")
        }
        guard let obj = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else {
            throw MinewatchError(.format, operation: "inspect image", subject: name, message: "engine answer is not a JSON object")
        }
        return ((obj["Id"] as? String) ?? "", (obj["RepoTags"] as? [String]) ?? [])
    }

    /// The image as a docker-archive (`docker save`), streamed from the engine.
    public func exportImage(_ name: String) throws(MinewatchError) -> ByteStream {
        let r = try get("/images/\(Self.escape(name))/get")
        guard r.status == 200 else {
            let body = (try? r.body.readAll(limit: 1 << 16, what: "engine export")) ?? []
            throw MinewatchError(.network, operation: "export image", subject: name,
                                 message: "engine answered \(r.status): \(String(decoding: body.prefix(200), as: UTF8.self))")
        }
        return r.body
    }
}

extension EngineClient {
    /// Stops a container (`POST /containers/{id}/stop?t=`): SIGTERM, then SIGKILL after `timeout`.
    public func stopContainer(_ id: String, timeout: Int = 10) throws(MinewatchError) {
        var client = http
        client.timeoutSeconds = max(client.timeoutSeconds, timeout + 30)
        let r = try client.request(.unix(path: socket), method: "POST", path: "/containers/\(Self.escape(id))/stop?t=\(timeout)")
        let body = (try? r.body.readAll(limit: 64 * 1024, what: "engine reply")) ?? []
        // 204 stopped, 304 already stopped.
        guard r.status == 204 || r.status == 304 else {
            throw MinewatchError(.network, operation: "stop container \(id.prefix(12))", subject: socket,
                                 message: "engine answered \(r.status): \(String(decoding: body.prefix(200), as: UTF8.self))")
        }
    }

    /// Running containers by id: name, image, labels (at most 64 per container) and the
    /// Kubernetes metadata in `io.kubernetes.*` labels.
    public func containers() throws(MinewatchError) -> [String: ContainerMetadata] {
        let r = try get("/containers/json")
        let body = try r.body.readAll(limit: 64 << 20, what: "engine container list")
        guard r.status == 200, let list = try? JSONSerialization.jsonObject(with: Data(body)) as? [[String: Any]] else {
            throw MinewatchError(.network, operation: "list containers", subject: socket, message: "engine answered \(r.status)")
        }
        var out: [String: ContainerMetadata] = [:]
        for c in list {
            guard let id = c["Id"] as? String else { continue }
            let name = ((c["Names"] as? [String])?.first ?? "").trimmingCharacters(in: CharacterSet(charactersIn: "/"))
            var labels: [String: String] = [:]
            for (k, v) in ((c["Labels"] as? [String: Any]) ?? [:]).sorted(by: { $0.key < $1.key }).prefix(64) {
                if let v = v as? String { labels[k] = String(v.prefix(256)) }
            }
            out[id] = ContainerMetadata(name: name.isEmpty ? nil : name, image: (c["Image"] as? String) ?? nil,
                                        k8s: ContainerMetadata.kubernetes(labels), labels: labels)
        }
        return out
    }
}
