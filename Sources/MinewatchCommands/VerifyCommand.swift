import ArgumentParser
import Foundation
import MinewatchAttest
import MinewatchCore
import MinewatchModel
import MinewatchOutput

public struct VerifyCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check an image's minewatch attestation in its registry.",
        discussion: """
        Resolves IMAGE to its manifest digest (computed from the bytes the registry sends), fetches \
        the attestations stored for that digest (the sha256-<hex>.att tag, and OCI 1.1 referrers \
        where the registry serves them) and accepts one only when a --key signed it, its subject is \
        that digest, its predicate is minewatch's scan result, the scan is no older than --max-age \
        and its verdict is pass.

        Exit status: 0 when a valid attestation was found; 1 when none is valid (the reason is \
        printed); 2 when the registry could not be read; 64 on usage errors.
        """
    )

    @Argument(help: "The image (registry/repository:tag or @sha256:...; a registry: prefix is allowed).")
    var image: String

    @Option(name: .customLong("key"), help: ArgumentHelp("A trusted ECDSA P-256 public key (PEM; a cosign.pub works). Repeat for several.", valueName: "pub"))
    var keys: [String] = []

    @Option(name: .customLong("max-age"), help: "Oldest scan accepted (7d, 24h); default: any age.")
    var maxAge: DurationArgument?

    @Option(name: .shortAndLong, help: "Output format: table or json.")
    var format: OutputFormat = .table

    @OptionGroup var registry: RegistryOptions

    public init() {}

    public func validate() throws {
        if keys.isEmpty { throw ValidationError("--key PUB is required") }
        if format == .sarif { throw ValidationError("--format must be table or json") }
    }

    public func run() throws {
        let trusted = try keys.map { k in try Terminal.orExit { () throws(MinewatchError) in try TrustedKey(pemFile: k) } }
        let client = try registry.client(for: image)
        let verifier = AttestationVerifier(keys: trusted, maxAge: maxAge?.seconds)
        let digest: String
        let envelopes: [(bytes: [UInt8], name: String)]
        do {
            digest = try client.resolveDigest()
            envelopes = try AttestationStore(client: client).envelopes(for: digest)
        } catch {
            Terminal.error("\(image): \(error.description)")
            throw ExitCode(2)
        }
        let outcome = verifier.verify(envelopes, digest: digest)
        Terminal.writeStdout(AttestationRenderer.render(outcome.check(image: image, digest: digest), format: format) + "\n")
        if case .invalid = outcome { throw ExitCode(1) }
    }
}

