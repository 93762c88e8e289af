import ArgumentParser
import Foundation
import MinewatchCore
import MinewatchHost
import MinewatchImage
import MinewatchOutput
import MinewatchRuntime
import MinewatchSignatures
#if canImport(Glibc)
import Glibc
#endif

/// Set from the SIGINT/SIGTERM handler; the loop checks it between short sleeps.
nonisolated(unsafe) var watchStopRequested: sig_atomic_t = 0

public struct WatchCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "watch",
        abstract: "Watch running containers and alert on miners (so far: the miner-process detector).",
        discussion: """
        Finds containers from the cgroup paths of processes (podman, Docker, containerd/Kubernetes, \
        CRI-O; cgroup v1 and v2) and scans each new container process: its executable with the \
        same rules as `scan` (cached per binary), its command line and selected environment \
        variables. One alert per container per detector. Stops after --duration, or on SIGINT/SIGTERM.
        """
    )

    enum Format: String, ExpressibleByArgument { case table, jsonl }

    @Option(help: "Seconds between passes.")
    var interval: Double = 2

    @Option(help: "Stop after this many seconds (default: run until SIGINT/SIGTERM).")
    var duration: Double?

    @Option(name: .shortAndLong, help: "table (default on a terminal) or jsonl (default otherwise).")
    var format: Format?

    @Option(name: .shortAndLong, help: "Append alerts to this file instead of standard output.")
    var output: String?

    @Option(name: .customLong("engine-socket"), help: "Docker Engine API socket for container names and images (default: $DOCKER_HOST, /var/run/docker.sock, /run/podman/podman.sock). Without one, alerts carry ids only.")
    var engineSocket: String?

    @Flag(name: .customLong("include-host"), help: "Also inspect processes outside containers.")
    var includeHost = false

    @OptionGroup var rules: RuleOptions

    public init() {}

    public func validate() throws {
        if !(0.1...3600).contains(interval) { throw ValidationError("--interval must be between 0.1 and 3600 seconds") }
        if let duration, duration <= 0 { throw ValidationError("--duration must be positive") }
    }

    public func run() throws {
        let set = try rules.load()
        let watcher = Watcher(rules: CompiledRules(set))
        watcher.includeHost = includeHost
        if let socket = engineSocket ?? EngineClient.defaultSocket() {
            watcher.describe = EngineNames(client: EngineClient(socket: socket)).lookup
        }
        let fmt = format ?? (output == nil && Terminal.stdoutIsTTY ? .table : .jsonl)
        var sink: FileHandle = .standardOutput
        if let output {
            if !FileManager.default.fileExists(atPath: output) { FileManager.default.createFile(atPath: output, contents: nil) }
            guard let h = FileHandle(forWritingAtPath: output) else {
                Terminal.error("open \(output): cannot write")
                throw ExitCode(2)
            }
            h.seekToEndOfFile()
            sink = h
        }
        signal(SIGINT) { _ in watchStopRequested = 1 }
        signal(SIGTERM) { _ in watchStopRequested = 1 }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        if fmt == .table { sink.write(Data("TIME      SEVERITY  DETECTOR        CONTAINER     FAMILY       SUMMARY\n".utf8)) }
        let deadline = duration.map { Date().addingTimeInterval($0) }
        while watchStopRequested == 0 {
            for a in watcher.poll() {
                switch fmt {
                case .jsonl:
                    if let d = try? encoder.encode(a) { sink.write(d + Data("\n".utf8)) }
                case .table:
                    let t = ISO8601DateFormatter().string(from: a.time).dropFirst(11).prefix(8)
                    let line = [String(t), a.severity.rawValue.uppercased().padding(toLength: 9, withPad: " ", startingAt: 0),
                                a.detector.padding(toLength: 15, withPad: " ", startingAt: 0),
                                String(a.container.id.prefix(12)).padding(toLength: 13, withPad: " ", startingAt: 0),
                                (a.family ?? "-").padding(toLength: 12, withPad: " ", startingAt: 0), a.summary].joined(separator: " ")
                    sink.write(Data((line + "\n").utf8))
                }
            }
            if let deadline, Date() >= deadline { break }
            // Sleep in short steps so a signal or the deadline ends the wait promptly.
            let wake = Date().addingTimeInterval(interval)
            while watchStopRequested == 0 && Date() < wake && (deadline.map { Date() < $0 } ?? true) { usleep(50_000) }
        }
        if output != nil { try? sink.close() }
    }
}

/// Container names and images from the engine, refreshed when an unknown id shows up. An engine
/// that stops answering is reported once on stderr; alerts then carry ids only.
final class EngineNames: @unchecked Sendable {
    let client: EngineClient
    let lock = NSLock()
    var cache: [String: (name: String, image: String)] = [:]
    var warned = false

    init(client: EngineClient) { self.client = client }

    func lookup(_ id: String) -> (name: String, image: String)? {
        lock.lock()
        defer { lock.unlock() }
        if let hit = cache[id] { return hit }
        do {
            cache = try client.containers()
            warned = false
        } catch {
            if !warned { Terminal.error("engine: \(error.description); alerts carry container ids only") }
            warned = true
        }
        return cache[id]
    }
}
