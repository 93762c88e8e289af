import Foundation

/// What the container tests share: a temporary folder, the workload image built from it, at most
/// one test network (a subnet of 198.18.1.0/24, see `Podman.createNetwork`), and containers named
/// `mw-LABEL-ROLE-RUN` so that concurrent suites never touch each other's. `cleanup()` removes
/// them in the order they depend on each other: containers (those that joined another's network
/// namespace first), the network, the images, the folder.
public final class WorkloadLab {
    public let dir: TempDir
    /// The workload image (`/usr/local/bin/svc`).
    public let tag: String
    /// A short random word in every container's name.
    public let run: String
    /// The test network, once `createNetwork` made it.
    public private(set) var network: String?
    /// The containers started, by name, in order.
    public private(set) var names: [String] = []
    private let label: String
    private var joined: Set<String> = []
    private var images: [String] = []

    /// Builds the workload image in `dir` (a new folder when nil); `run` defaults to a random word.
    public init(_ label: String, dir: TempDir? = nil, run: String? = nil) throws {
        let d = try dir ?? TempDir(label)
        self.label = label
        self.dir = d
        self.run = run ?? String(UUID().uuidString.prefix(6)).lowercased()
        do { tag = try Podman.workloadImage(d) } catch {
            d.cleanup()
            throw error
        }
    }

    /// Creates the lab's test network on `subnet`; the lab's containers join it unless told otherwise.
    @discardableResult
    public func createNetwork(subnet: String) throws -> String {
        let net = try Podman.createNetwork(subnet: subnet)
        network = net
        return net
    }

    /// An image of the test's own that `cleanup()` removes too.
    public func adopt(image: String) { images.append(image) }

    /// The name a role's container gets.
    public func name(_ role: String) -> String { "mw-\(label)-\(role)-\(run)" }

    /// Starts `svc ARGS` from the workload image as container ROLE, on `network` (the lab's when
    /// nil; "none", or "container:ID" to share another container's), at `ip` when given, with
    /// further podman `options` (`--cpus`, `-v`, `--add-host`, ...). Returns the container's ID.
    @discardableResult
    public func start(_ role: String, ip: String? = nil, network: String? = nil, options: [String] = [], _ svcArgs: [String]) throws -> String {
        try container(role, ip: ip, network: network, options: options + Podman.hostMounts, command: [tag, "/usr/local/bin/svc"] + svcArgs)
    }

    /// Starts `command` (an image and what it runs) as container ROLE, placed as `start` places it,
    /// with exactly the podman `options` given (the workload image needs `Podman.hostMounts`).
    @discardableResult
    public func container(_ role: String, ip: String? = nil, network: String? = nil, options: [String] = [], command: [String]) throws -> String {
        let name = name(role)
        names.append(name)
        let net = network ?? self.network ?? "none"
        if net.hasPrefix("container:") { joined.insert(name) }
        return try Podman.runDetached(["--network", net, "--name", name] + (ip.map { ["--ip", $0] } ?? []) + options + command)
    }

    public func cleanup() {
        let first = names.filter { joined.contains($0) }, rest = names.filter { !joined.contains($0) }
        for group in [first, rest] where !group.isEmpty { _ = try? TestSupport.run(["podman", "rm", "-f", "-t", "0"] + group) }
        if let network { Podman.removeNetwork(network) }
        for image in images + [tag] { Podman.removeImage(image) }
        dir.cleanup()
    }
}

extension WorkloadLab {
    /// A self-signed P-256 certificate and key (`cert.pem`, `key.pem`, readable by the
    /// containers' users) for the workloads' TLS servers, in `certs/` of the lab's folder;
    /// returns that folder.
    public func certificates(commonName: String = "test") throws -> String {
        let certs = dir.path + "/certs"
        try FileManager.default.createDirectory(atPath: certs, withIntermediateDirectories: true)
        let gen = try TestSupport.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                           "-subj", "/CN=\(commonName)", "-keyout", certs + "/key.pem", "-out", certs + "/cert.pem"])
        guard gen.status == 0 else { throw PodmanError(message: "openssl req: \(gen.err)") }
        _ = try TestSupport.run(["chmod", "0644", certs + "/key.pem"])
        return certs
    }
}

extension WorkloadLab {
    /// Starts `minewatch watch` every 2 s for `seconds`, with telemetry, writing JSON lines to
    /// LABEL.jsonl in the lab's folder; `options` are further watch options.
    public func watch(_ label: String, seconds: Int, _ options: [String]) throws -> (process: BackgroundProcess, output: String) {
        let out = dir.path + "/\(label).jsonl"
        let p = try BackgroundProcess([minewatchBinary(), "watch", "--interval", "2s", "--duration", "\(seconds)s", "--output", out, "--telemetry"] + options,
                                      label: label)
        return (p, out)
    }

    /// Records the TCP traffic of the lab network's bridge with tcpdump into `bridge.pcap` in the
    /// lab's folder (2048 bytes a packet), once tcpdump says it is listening. Stop it before
    /// reading the file.
    public func recordBridge(_ bridge: String) throws -> (dump: BackgroundProcess, file: String) {
        let file = dir.path + "/bridge.pcap"
        let dump = try BackgroundProcess(["tcpdump", "-i", bridge, "-B", "32768", "-U", "-s", "2048", "-w", file, "tcp"], label: "tcpdump")
        guard dump.wait(seconds: 10, until: { dump.output.contains("listening on") }) else {
            dump.stop()
            throw PodmanError(message: "tcpdump did not start on \(bridge): \(dump.output)")
        }
        return (dump, file)
    }
}
