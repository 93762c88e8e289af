import ArgumentParser
import Foundation
import MinewatchCore
import MinewatchModel
import MinewatchScan
import MinewatchImage
import MinewatchOutput
import MinewatchSignatures

extension OutputFormat: ExpressibleByArgument {}
extension Severity: ExpressibleByArgument {}

public struct ScanCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "scan",
        abstract: "Scan container images, image archives, root filesystems or files for cryptominers.",
        discussion: """
        TARGET is a docker-archive or OCI archive (docker save / podman save), an OCI layout folder, \
        a root filesystem folder or tarball, or a single file; the kind is detected from content. \
        A TARGET that is not a path is an image name: engine:NAME reads it from the Docker Engine API \
        (podman's compatible socket works), registry:NAME pulls it through the OCI distribution API, \
        and a bare NAME tries the engine first, then the registry.

        Whole registries: --all-tags lists every tag of each registry:HOST/REPOSITORY named, --from \
        FILE reads more targets from a file (one a line, # comments; - is standard input), and \
        --shard INDEX/COUNT keeps the deterministic part INDEX (from 0) of COUNT, for the pods of a \
        Kubernetes Indexed Job (deploy/kubernetes/scan-registry.yaml). Every layer is scanned once \
        per run however many images share it, and two tags of one image make one result.

        Exit status: 0 when no finding is at or above --fail-on; --exit-code (default 1) when one is; \
        2 when a target or layer could not be read (and nothing reached --fail-on); 64 on usage errors.
        """
    )

    @Argument(help: "Image archives, OCI layouts, folders, files, or image names (engine:NAME, registry:NAME, or NAME).")
    var targets: [String] = []

    @Option(name: .customLong("from"), help: ArgumentHelp("Also scan the targets listed in this file, one a line ('-': standard input).", valueName: "file"))
    var fromFile: String?

    @Flag(name: .customLong("all-tags"), help: "Scan every tag of each registry:HOST/REPOSITORY target (signature and attestation tags skipped).")
    var allTags = false

    @Option(help: ArgumentHelp("Scan only part INDEX (from 0) of COUNT of the image list, chosen by each reference's hash.", valueName: "index/count"))
    var shard: String?

    @Option(name: .shortAndLong, help: "Output format: table, json or sarif.")
    var format: OutputFormat = .table

    @Option(name: .shortAndLong, help: "Write the report to this file instead of standard output.")
    var output: String?

    @Option(name: .customLong("fail-on"), help: "Lowest severity that fails the scan: info, low, medium, high, critical.")
    var failOn: Severity = .high

    @Option(name: .customLong("exit-code"), help: "Exit status when a finding is at or above --fail-on.")
    var exitCode: Int32 = 1

    @Option(help: "Platform to pick from a multi-platform image (os/arch[/variant]).")
    var platform: String?

    @Option(name: .customLong("engine-socket"), help: "Docker Engine API socket for image names (default: $DOCKER_HOST, /var/run/docker.sock, /run/podman/podman.sock).")
    var engineSocket: String?

    @OptionGroup var registry: RegistryOptions

    @Option(name: .customLong("max-image-size"), help: "Largest image exported from the engine, in MiB.")
    var maxImageMiB: Int64 = 64 * 1024

    @Option(help: "Folder for a persistent per-layer result cache (keyed by layer digest and rule set).")
    var cache: String?

    @Option(name: .customLong("max-layer-size"), help: "Largest uncompressed size of one layer, in MiB.")
    var maxLayerMiB: Int64 = 32 * 1024

    @Option(help: "Threads that match a root filesystem's files (default: the CPUs this process may use, at most 8).")
    var threads: Int = ScanOptions.defaultThreads

    @Flag(name: .customLong("no-color"), help: "No colour in the table, even on a terminal.")
    var noColor = false

    @Flag(name: .customLong("no-progress"), help: "No progress line on standard error.")
    var noProgress = false

    @OptionGroup var rules: RuleOptions

    @OptionGroup var attest: AttestOptions

    public init() {}

    public func validate() throws {
        if let platform, Platform(parsing: platform) == nil {
            throw ValidationError("--platform must look like linux/amd64 or linux/arm/v7")
        }
        if !(0...255).contains(exitCode) { throw ValidationError("--exit-code must be 0-255") }
        if maxLayerMiB <= 0 { throw ValidationError("--max-layer-size must be positive") }
        if !(1...64).contains(threads) { throw ValidationError("--threads must be 1-64") }
        if targets.isEmpty && fromFile == nil { throw ValidationError("name a target, or a list of them with --from FILE") }
        if let shard, Shard(parsing: shard) == nil {
            throw ValidationError("--shard must be INDEX/COUNT with 0 <= INDEX < COUNT, as 2/8 (INDEX is the Indexed Job's JOB_COMPLETION_INDEX)")
        }
        try attest.validate()
    }

    public func run() throws {
        let set = try rules.load()
        let compiled = CompiledRules(set)
        var options = ScanOptions(platform: platform.flatMap(Platform.init(parsing:)))
        options.cacheDirectory = cache
        options.limits.maxOutput = maxLayerMiB << 20
        options.engineSocket = engineSocket
        options.insecureRegistry = registry.insecure
        options.maxImageSize = maxImageMiB << 20
        options.credentials = registry.credentials
        options.threads = threads
        // Read the signing key before a long scan, so a wrong key fails at once.
        let signer = try attest.signer()
        let scanner = ImageScanner(rules: compiled, options: options)
        let progress = (!noProgress && Terminal.stderrIsTTY) ? TTYProgress() : nil
        scanner.progress = progress
        let list = try imageList()
        let started = Date()
        var reports = scanner.scan(targets: list.targets)
        for rep in reports { for e in rep.errors { Terminal.error(ScanIssueText.line(target: rep.target, e)) } }
        reports += list.problems
        if list.isList {
            let scanned = reports.reduce(0) { $0 + $1.stats.layersScanned }, cached = reports.reduce(0) { $0 + $1.stats.layersFromCache }
            Terminal.error("scanned \(reports.count) results from \(list.targets.count) targets\(shard.map { " (shard \($0))" } ?? "") in "
                           + String(format: "%.1f s", Date().timeIntervalSince(started))
                           + ": \(scanned) layers read, \(cached) shared layers answered from the run's cache")
        }
        let report = ScanReport(targets: reports, rulesDigest: "sha256:" + set.digest, scannedAt: Date())
        var attestFailed = false
        if let signer {
            attestFailed = !attest.attest(report, threshold: failOn, signer: signer, registry: registry)
        }
        let color = output == nil && format == .table && !noColor && Terminal.stdoutIsTTY
        let text = ReportRenderer.render(report, format: format, rules: set, color: color)
        if let output {
            do { try (text + "\n").write(toFile: output, atomically: true, encoding: .utf8) } catch {
                Terminal.error("write \(output): \(error.localizedDescription)")
                throw ExitCode(2)
            }
        } else {
            Terminal.writeStdout(text.hasSuffix("\n") ? text : text + "\n")
        }
        if reports.contains(where: { $0.findings.contains { $0.severity >= failOn } }) {
            throw ExitCode(exitCode)
        }
        if reports.contains(where: { !$0.errors.isEmpty }) || attestFailed { throw ExitCode(2) }
    }
}

extension ScanCommand {
    /// The targets to scan: the arguments, then `--from`'s lines, expanded by `--all-tags` and cut
    /// by `--shard`; repositories whose tags could not be listed become reports with an error.
    func imageList() throws -> (targets: [String], problems: [TargetReport], isList: Bool) {
        var all = targets
        if let fromFile {
            do { all += try ImageList.read(file: fromFile) } catch {
                Terminal.error(error.description)
                throw ExitCode(2)
            }
        }
        let expander = ImageList(insecure: registry.insecure, credentials: registry.credentials)
        let (list, problems) = expander.expand(all, allTags: allTags, shard: shard.flatMap(Shard.init(parsing:)))
        let failed = problems.map { t, e in TargetReport(target: t, kind: "image-reference", errors: [ScanIssue(message: e.description)]) }
        for f in failed { for e in f.errors { Terminal.error(ScanIssueText.line(target: f.target, e)) } }
        return (list, failed, fromFile != nil || allTags || shard != nil)
    }
}

/// One line for a target's error: the target, where in it (layer, path) when known, and the
/// message, which names its own subject (`/x: open target: ...`) and is not preceded by it twice.
enum ScanIssueText {
    static func line(target: String, _ e: ScanIssue) -> String {
        let place = [e.layer, e.path].compactMap { $0 }.joined(separator: " ")
        if place.isEmpty { return e.message.hasPrefix(target + ":") ? e.message : "\(target): \(e.message)" }
        return "\(target): \(place) \(e.message)"
    }
}
