import ArgumentParser
import Foundation
import MinewatchAttest
import MinewatchCore
import MinewatchModel

public struct AttestCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "attest",
        abstract: "Sign an attestation of a saved scan report (minewatch scan --format json).",
        discussion: """
        Each image in REPORT that was read from a registry gets an in-toto Statement (subject: its \
        manifest digest; predicate type https://minewatch.dev/attestation/scan/v1: the verdict at \
        --fail-on, counts by severity and category, the rules' digest, minewatch's version and the \
        scan's time) in a DSSE envelope signed with KEY, written to --attestation-output and/or \
        stored in the image's registry with --push (tag sha256-<hex>.att, as cosign does).

        Exit status: 0 when every image was attested; 2 when one could not be; 64 on usage errors.
        """
    )

    @Argument(help: "A JSON report written by `minewatch scan --format json`.")
    var report: String

    @Option(name: .customLong("fail-on"), help: "Lowest severity that makes the verdict fail (as scan's --fail-on).")
    var failOn: Severity = .high

    @OptionGroup var attest: AttestOptions
    @OptionGroup var registry: RegistryOptions

    public init() {}

    public func validate() throws {
        if attest.key == nil { throw ValidationError("--attest KEY is required") }
        try attest.validate()
    }

    public func run() throws {
        guard let data = FileManager.default.contents(atPath: report) else {
            Terminal.error("\(report): cannot read the file")
            throw ExitCode(2)
        }
        let parsed: ScanReport
        do { parsed = try ReportJSON.decoder().decode(ScanReport.self, from: data) } catch let DecodingError.dataCorrupted(c) {
            Terminal.error("\(report): not a minewatch JSON report (\(c.codingPath.map(\.stringValue).joined(separator: ".")): \(c.debugDescription))")
            throw ExitCode(2)
        } catch let DecodingError.keyNotFound(k, c) {
            Terminal.error("\(report): not a minewatch JSON report (\((c.codingPath + [k]).map(\.stringValue).joined(separator: ".")) missing)")
            throw ExitCode(2)
        } catch {
            Terminal.error("\(report): not a minewatch JSON report (\(error))")
            throw ExitCode(2)
        }
        guard let signer = try attest.signer() else { throw ExitCode(64) }
        if !attest.attest(parsed, threshold: failOn, signer: signer, registry: registry) { throw ExitCode(2) }
    }
}
