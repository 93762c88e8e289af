import ArgumentParser
import Foundation
import MinewatchImage

/// How commands reach a registry: plain HTTP for a local one, and the user's credentials
/// (flags, environment, or ~/.docker/config.json, read by the client).
struct RegistryOptions: ParsableArguments {
    @Flag(help: "Talk plain HTTP to the registry (a local registry without TLS).")
    var insecure = false

    @OptionGroup var login: RegistryLoginOptions

    var credentials: RegistryCredentials? { login.credentials }

    /// A client for the repository `image` names (`registry:` prefix allowed).
    func client(for image: String, push: Bool = false) throws -> RegistryClient {
        let name = image.hasPrefix("registry:") ? String(image.dropFirst(9)) : image
        guard let ref = ImageReference(parsing: name) else { throw ValidationError("'\(image)' is not an image reference") }
        let c = try RegistryClient(ref: ref, insecure: insecure, credentials: credentials)
        c.pushAccess = push
        return c
    }
}

/// A registry user and password from flags or the environment (nil: ~/.docker/config.json).
struct RegistryLoginOptions: ParsableArguments {
    @Option(help: "Registry user name (or MINEWATCH_REGISTRY_USERNAME; ~/.docker/config.json is read too).")
    var username: String?

    @Option(help: "Registry password (or MINEWATCH_REGISTRY_PASSWORD).")
    var password: String?

    var credentials: RegistryCredentials? {
        let env = ProcessInfo.processInfo.environment
        guard let user = username ?? env["MINEWATCH_REGISTRY_USERNAME"] else { return nil }
        return RegistryCredentials(username: user, password: password ?? env["MINEWATCH_REGISTRY_PASSWORD"] ?? "")
    }
}
