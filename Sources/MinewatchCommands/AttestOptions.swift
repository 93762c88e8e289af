import ArgumentParser
import Foundation
import MinewatchAttest
import MinewatchCore
import MinewatchImage
import MinewatchModel

/// Signing a scan's result: an in-toto Statement per image (subject: the manifest digest read
/// from the registry) in a DSSE envelope, written to a file and/or stored next to the image.
struct AttestOptions: ParsableArguments {
    @Option(name: .customLong("attest"), help: ArgumentHelp("Sign an attestation of the result with this ECDSA P-256 private key (PEM).", valueName: "key"))
    var key: String?

    @Flag(help: "Store the attestation in the image's registry (tag sha256-<hex>.att, as cosign does).")
    var push = false

    @Option(name: .customLong("attestation-output"), help: ArgumentHelp("Write the signed envelopes here (one JSON line per image).", valueName: "file"))
    var attestationOutput: String?

    func validate() throws {
        if key == nil && (push || attestationOutput != nil) { throw ValidationError("--push and --attestation-output need --attest KEY") }
        if key != nil && !push && attestationOutput == nil { throw ValidationError("--attest needs --push or --attestation-output FILE") }
    }

    func signer() throws -> AttestationSigner? {
        guard let key else { return nil }
        return try Terminal.orExit { () throws(MinewatchError) in try AttestationSigner(pemFile: key) }
    }

    /// Signs one attestation per image of `report`; false when any could not be made or stored
    /// (each problem is one line on standard error).
    func attest(_ report: ScanReport, threshold: Severity, signer: AttestationSigner, registry: RegistryOptions) -> Bool {
        var ok = true
        var lines: [String] = []
        for t in report.targets {
            guard let image = t.image, let digest = image.manifestDigest, let name = image.references.first,
                  let ref = ImageReference(parsing: name) else {
                Terminal.error("\(t.target): no registry digest to attest; attest images read from a registry (registry:NAME)")
                ok = false
                continue
            }
            let predicate = ScanPredicate(report: t, image: name, threshold: threshold, version: report.version,
                                          rulesDigest: report.rulesDigest, scannedAt: report.scannedAt ?? Date())
            let statement = ScanStatement(subjectName: "\(ref.registry)/\(ref.repository)", subjectDigest: digest, predicate: predicate)
            do {
                let env = try Attestations.envelope(statement, signer: signer)
                lines.append(String(decoding: env.encoded(), as: UTF8.self))
                var where_ = ""
                if push {
                    let client = try registry.client(for: name, push: true)
                    try AttestationStore(client: client).push(env, predicateType: ScanPredicate.type, digest: digest)
                    where_ = ", stored as \(ref.registry)/\(ref.repository):\(AttestationStore.tag(for: digest))"
                }
                Terminal.error("attested \(ref.registry)/\(ref.repository)@\(digest): verdict \(predicate.verdict.rawValue) at \(threshold)\(where_)")
            } catch let e as MinewatchError {
                Terminal.error("\(name): attest: \(e.description)")
                ok = false
            } catch {
                Terminal.error("\(name): attest: \(error)")
                ok = false
            }
        }
        if let attestationOutput {
            do { try lines.map { $0 + "\n" }.joined().write(toFile: attestationOutput, atomically: true, encoding: .utf8) } catch {
                Terminal.error("write \(attestationOutput): \(error.localizedDescription)")
                ok = false
            }
        }
        return ok
    }
}
