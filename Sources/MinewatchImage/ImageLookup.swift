import Foundation
import MinewatchCore
import MinewatchEngine

/// Where a scan target's image comes from: a path on disk, the engine (podman or Docker, through
/// its API socket) or a registry. `engine:NAME` and `docker-daemon:NAME` ask the engine only,
/// `registry:NAME` and `docker://NAME` the registry only; a bare NAME asks the engine first and the
/// registry when the engine does not have it. A missing file with an archive-like name is a typo,
/// never a registry pull.
public struct ImageLookup {
    public var engineSocket: String?
    public var insecureRegistry: Bool
    public var credentials: RegistryCredentials?
    public var platform: Platform?
    public var maxImageSize: Int64

    public init(engineSocket: String?, insecureRegistry: Bool, credentials: RegistryCredentials?, platform: Platform?, maxImageSize: Int64) {
        self.engineSocket = engineSocket
        self.insecureRegistry = insecureRegistry
        self.credentials = credentials
        self.platform = platform
        self.maxImageSize = maxImageSize
    }

    public enum Resolved {
        /// A file or folder (or a name that can only be one): opened as a path.
        case path(String)
        /// The images of an engine export (`engine-image`) or of a registry (`registry-image`).
        case images([any ImageSource], kind: String)
        /// Neither source had it: what each said.
        case unavailable([String])
    }

    public func resolve(_ target: String) -> Resolved {
        if FileManager.default.fileExists(atPath: target) { return .path(target) }
        var name = target
        var source = "auto"
        for (prefix, kind) in [("engine:", "engine"), ("docker-daemon:", "engine"), ("registry:", "registry"), ("docker://", "registry")]
            where target.hasPrefix(prefix) {
            name = String(target.dropFirst(prefix.count))
            source = kind
        }
        let fileLike = [".tar", ".tar.gz", ".tgz", ".tar.zst", ".json", ".yaml", ".yml"].contains { name.hasSuffix($0) }
        guard source != "auto" || !fileLike, let ref = ImageReference(parsing: name) else { return .path(target) }
        var problems: [String] = []
        if source != "registry" {
            if let socket = engineSocket ?? EngineClient.defaultSocket() {
                let client = EngineClient(socket: socket)
                do throws(MinewatchError) {
                    if try client.inspectImage(name) != nil {
                        let exported = try EngineImage(client: client, name: name, limit: maxImageSize)
                        return .images(exported.images, kind: "engine-image")
                    }
                    problems.append("engine at \(socket) does not have \(name)")
                } catch {
                    problems.append(error.description)
                }
            } else if source == "engine" {
                problems.append("no engine socket found (--engine-socket)")
            }
        }
        if source != "engine" {
            do throws(MinewatchError) {
                let client = try RegistryClient(ref: ref, insecure: insecureRegistry, credentials: credentials)
                return .images(try client.images(platform: platform), kind: "registry-image")
            } catch {
                problems.append(error.description)
            }
        }
        return .unavailable(problems)
    }
}
