import ArgumentParser
import Foundation
import MinewatchAdmission
import MinewatchAttest
import MinewatchConfig
import MinewatchCore
import MinewatchImage
import MinewatchModel
import MinewatchOutput
import MinewatchScan
import MinewatchServer
import MinewatchSignatures
import MinewatchSinks
#if canImport(Glibc)
import Glibc
#endif

/// Set from the SIGINT/SIGTERM handler.
nonisolated(unsafe) var admitStopRequested: sig_atomic_t = 0

public struct AdmitCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "admit",
        abstract: "Serve a Kubernetes validating admission webhook that keeps miners and proxyware out.",
        discussion: """
        Answers AdmissionReview v1 over HTTPS at POST /validate for Pods and the pod templates of \
        Deployments, ReplicaSets, StatefulSets, DaemonSets, Jobs, CronJobs, ReplicationControllers \
        and PodTemplates. The pod spec is judged with the rules `scan` judges manifests with (image \
        names, command lines, env): a finding at or above --fail-on denies. Then each image, by the \
        digest its tag resolves to: a cached verdict, else a valid attestation by a --key (see \
        `minewatch scan --attest`), else --policy: deny, warn (admit with a warning), or scan (within \
        --scan-deadline; refused while the scan runs, admitted on retry once it passed). A registry \
        that cannot be read is --on-error. Exceptions come from --config (the `exceptions:` of \
        watch's file: namespaces, labels, images, containers, families). Every decision is a JSON \
        line on standard output (or --output), and goes to OCSF and Falcosidekick when configured. \
        The certificate and key are read again when their files change. GET /healthz answers ok.

        Stops on SIGINT or SIGTERM.
        """
    )

    @Option(help: "Address to serve HTTPS on (host:port).")
    var listen = "0.0.0.0:8443"

    @Option(name: .customLong("tls-cert"), help: "The serving certificate chain (PEM), valid for the webhook Service's DNS name.")
    var tlsCert: String

    @Option(name: .customLong("tls-key"), help: "The serving certificate's private key (PEM).")
    var tlsKey: String

    @Option(name: .customLong("key"), help: ArgumentHelp("A public key trusted to sign attestations (PEM). Repeat for several.", valueName: "pub"))
    var keys: [String] = []

    @Option(help: "What to do with an image no trusted key attested: deny, warn or scan.")
    var policy: AdmissionPolicy.Unattested = .deny

    @Option(name: .customLong("on-error"), help: "What to do when an image cannot be checked (registry down): deny or allow.")
    var onError: AdmissionPolicy.OnError = .deny

    @Option(name: .customLong("scan-deadline"), help: "Longest a request waits for a scan (keep it below the webhook's timeoutSeconds).")
    var scanDeadline = DurationArgument(seconds: 7)

    @Option(name: .customLong("max-age"), help: "Oldest attested scan accepted (7d); default: any age.")
    var maxAge: DurationArgument?

    @Option(name: .customLong("fail-on"), help: "Lowest severity that denies (spec findings and scan verdicts).")
    var failOn: Severity = .high

    @Flag(help: "Admit everything; report what would have been denied (as warnings and events).")
    var audit = false

    @Option(help: "The agent's config file, for `exceptions:` and `outputs:` (ocsf, falcosidekick).")
    var config: String?

    @Option(name: .shortAndLong, help: "Append the decisions (JSON lines) to this file instead of standard output.")
    var output: String?

    @Option(name: .customLong("ocsf-output"), help: "Also write decisions as OCSF Detection Findings to this file (- for standard output).")
    var ocsfOutput: String?

    @Option(name: .customLong("falcosidekick-url"), help: "Also post decisions to Falcosidekick at this URL.")
    var falcosidekickURL: String?

    @Option(name: .customLong("metrics-listen"), help: "Serve Prometheus metrics on this address (plain HTTP, loopback unless --token-file).")
    var metricsListen: String?

    @Option(name: .customLong("token-file"), help: "Bearer token file the metrics endpoint requires when not on loopback.")
    var tokenFile: String?

    @Option(name: .customLong("attest"), help: ArgumentHelp("Sign attestations of the webhook's own scans with this private key and store them in the image's registry.", valueName: "key"))
    var attestKey: String?

    @Option(name: .customLong("insecure-registry"), help: ArgumentHelp("A registry (host:port) reached over plain HTTP. Repeat for several.", valueName: "registry"))
    var insecureRegistries: [String] = []

    @OptionGroup var login: RegistryLoginOptions

    @Option(name: .customLong("cache-size"), help: "Image verdicts kept (by digest).")
    var cacheSize = 10_000

    @Option(name: .customLong("cache-ttl"), help: "How long a verdict stays cached.")
    var cacheTTL = DurationArgument(seconds: 3600)

    @Option(name: .customLong("tag-ttl"), help: "How long a tag's digest is reused before asking the registry again (0: always ask).")
    var tagTTL = DurationArgument(seconds: 30)

    @OptionGroup var rules: RuleOptions

    public init() {}

    public func validate() throws {
        if ListenAddress.parse(listen) == nil { throw ValidationError("--listen: expected host:port such as 0.0.0.0:8443") }
        if let m = metricsListen, ListenAddress.parse(m) == nil { throw ValidationError("--metrics-listen: expected host:port such as 127.0.0.1:9377") }
        if cacheSize < 1 { throw ValidationError("--cache-size must be at least 1") }
        if scanDeadline.seconds > 29 { throw ValidationError("--scan-deadline must stay below the API server's 30 s webhook limit") }
        if keys.isEmpty && policy == .deny && !audit {
            Terminal.error("no --key: every image counts as unattested and --policy deny refuses them all")
        }
    }

    public func run() throws {
        signal(SIGINT) { _ in admitStopRequested = 1 }
        signal(SIGTERM) { _ in admitStopRequested = 1 }
        var handled = sigset_t()
        sigemptyset(&handled)
        for s in [SIGINT, SIGTERM] { sigaddset(&handled, s) }
        pthread_sigmask(SIG_UNBLOCK, &handled, nil)

        var agentConfig = AgentConfig(file: "")
        if let config {
            let (c, diags) = ConfigLoader.load(path: config)
            for d in diags { Terminal.error(d.description) }
            guard let c else { throw ExitCode(2) }
            agentConfig = c
        }
        let set = try rules.load()
        let compiled = CompiledRules(set)
        let trusted = try keys.map { k in try Terminal.orExit { () throws(MinewatchError) in try TrustedKey(pemFile: k) } }
        let signer = try attestKey.map { k in try Terminal.orExit { () throws(MinewatchError) in try AttestationSigner(pemFile: k) } }
        let tls = try Terminal.orExit { () throws(MinewatchError) in try CertificateReloader(certFile: tlsCert, keyFile: tlsKey) }

        var p = AdmissionPolicy()
        p.unattested = policy
        p.onError = onError
        p.threshold = failOn
        p.scanDeadline = scanDeadline.seconds
        p.maxAge = maxAge?.seconds
        p.audit = audit
        p.cacheSize = cacheSize
        p.cacheTTL = cacheTTL.seconds
        p.tagTTL = tagTTL.seconds
        let authority = RegistryAuthority(rules: compiled, insecureRegistries: Set(insecureRegistries), credentials: login.credentials)
        let controller = AdmissionController(policy: p, rules: compiled, keys: trusted, authority: authority,
                                             exceptions: agentConfig.exceptions, signer: signer)

        let capacity = agentConfig.outputs.queueSize ?? 10_000
        let primaryPath = output ?? agentConfig.outputs.jsonl.map(\.path).flatMap { $0 == "-" ? nil : $0 }
        var sinks = [SinkQueue(LineSink(name: primaryPath ?? "stdout", handle: try WatchOutputs.open(primaryPath), closeWhenDone: primaryPath != nil) {
            WatchRenderer.jsonLines($0, telemetry: false)
        }, capacity: capacity)]
        sinks += try WatchOutputs.eventSinks(ocsf: ocsfOutput ?? agentConfig.outputs.ocsf?.path,
                                             falcosidekick: falcosidekickURL ?? agentConfig.outputs.falcosidekick?.url, config: agentConfig, capacity: capacity)
        let metrics = AdmissionMetrics()
        let outputs = sinks
        // Decisions block on registries and scans: they run on threads of their own, never on
        // the server's.
        let work = DispatchQueue(label: "minewatch.admission", attributes: .concurrent)
        let validate = AgentServer.Route.post("/validate", maxBody: AdmissionRequest.maxBytes) { req in
            let (status, body, event) = await withCheckedContinuation { c in
                work.async { c.resume(returning: controller.review(req.body)) }
            }
            if let event {
                metrics.record(event)
                for q in outputs { _ = q.enqueue(.admission(event)) }
            } else {
                metrics.malformed()
            }
            return status == 200 ? .json(body) : AgentServer.RouteResponse(status: status, contentType: "text/plain; charset=utf-8", body: body)
        }
        let health = AgentServer.Route(path: "/healthz", isPublic: true) { _ in
            AgentServer.RouteResponse(contentType: "text/plain; charset=utf-8", body: Array("ok\n".utf8))
        }
        guard let addr = ListenAddress.parse(listen) else { throw ExitCode(64) }
        let server = AgentServer(host: addr.host, port: addr.port, token: nil, routes: [validate, health], tls: tls, open: true)
        let port = try Terminal.orExit { () throws(MinewatchError) in try server.start() }
        Terminal.error("admission webhook at https://\(addr.host.contains(":") ? "[\(addr.host)]" : addr.host):\(port)/validate"
                       + " (policy \(policy.rawValue), on error \(onError.rawValue)\(audit ? ", audit only" : ""), \(trusted.count) trusted keys)")

        var metricsServer: AgentServer?
        if let m = metricsListen, let a = ListenAddress.parse(m) {
            let token = try tokenFile.map { tf in try Terminal.orExit { () throws(MinewatchError) in try TokenFile.read(tf) } }
            if token == nil && !a.isLoopback {
                Terminal.error("metrics listen address \(m) is not loopback: a bearer token is required (--token-file)")
                throw ExitCode(2)
            }
            let s = AgentServer(host: a.host, port: a.port, token: token, routes: [.fixed("/metrics") { ("text/plain; version=0.0.4; charset=utf-8", metrics.exposition()) }])
            let mp = try Terminal.orExit { () throws(MinewatchError) in try s.start() }
            Terminal.error("metrics at http://\(a.host):\(mp)/metrics")
            metricsServer = s
        }
        var reportedCertError: String?
        while admitStopRequested == 0 {
            usleep(200_000)
            let stats = controller.cache.stats
            metrics.update(cacheEntries: controller.cache.count, cacheHits: stats.hits, cacheMisses: stats.misses, scansRunning: controller.scansRunning,
                           certificateReloads: tls.reloads, sinks: outputs.map(\.stats))
            if let e = tls.failure, e != reportedCertError {
                Terminal.error("new certificate not loaded, still serving the previous one: \(e)")
            }
            reportedCertError = tls.failure
        }
        server.stop()
        metricsServer?.stop()
        for q in outputs { q.close() }
    }
}

extension AdmissionPolicy.Unattested: ExpressibleByArgument {}
extension AdmissionPolicy.OnError: ExpressibleByArgument {}
