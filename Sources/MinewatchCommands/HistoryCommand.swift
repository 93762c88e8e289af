import ArgumentParser
import Foundation
import MinewatchConfig
import MinewatchCore
import MinewatchHistory
import MinewatchOutput
import MinewatchServer

extension HistoryRenderer.Format: ExpressibleByArgument {}

/// `minewatch history`: reads the agent's history database offline (also while the agent
/// writes it) to answer "what was this container doing before the alert?".
public struct HistoryCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "history",
        abstract: "Read the agent's history: alerts, and what a container did over time.",
        subcommands: [Alerts.self, Container.self]
    )
    public init() {}

    struct Source: ParsableArguments {
        @Option(help: ArgumentHelp("The history database (default: history.path of --config or \(ConfigLoader.defaultPath)).", valueName: "file"))
        var history: String?

        @Option(help: ArgumentHelp("The agent's config file, for its history path.", valueName: "file"))
        var config: String?

        @Option(help: "From how long ago (1h, 30m, 7d) or since an RFC 3339 time (default 1h for a container, 24h for alerts).")
        var since: String?

        @Option(name: .shortAndLong, help: "table or json.")
        var format: HistoryRenderer.Format = .table

        func path() throws -> String {
            if let history { return history }
            let cfg = config ?? (FileManager.default.fileExists(atPath: ConfigLoader.defaultPath) ? ConfigLoader.defaultPath : nil)
            if let cfg {
                let (c, diags) = ConfigLoader.load(path: cfg)
                for d in diags { Terminal.error(d.description) }
                if let p = c?.history?.path { return p }
            }
            throw ValidationError("no history database: give --history FILE (or a --config with history.path)")
        }

        func sinceDate(default d: Double) throws -> Date {
            guard let date = DashboardRoutes.since(since, default: d) else {
                throw ValidationError("--since \(since ?? ""): expected a duration such as 1h, an RFC 3339 time or epoch seconds")
            }
            return date
        }

        func open() throws -> HistoryReader {
            let p = try path()
            return try Terminal.orExit { () throws(MinewatchError) in try HistoryReader(path: p) }
        }

        /// Ends the command when `ref` names no container in the history (exit 1).
        static func noContainer(_ ref: String, in reader: HistoryReader) -> ExitCode {
            Terminal.error("no container \(ref) in \(reader.path)")
            return ExitCode(1)
        }
    }

    public struct Alerts: ParsableCommand {
        public static let configuration = CommandConfiguration(abstract: "Alerts, oldest first, with their evidence.")
        @OptionGroup var source: Source
        @Option(help: ArgumentHelp("Only this container (an id or id prefix, a name, a pod or a Kubernetes container name).", valueName: "id|name"))
        var container: String?
        public init() {}

        public func run() throws {
            let reader = try source.open()
            let since = try source.sinceDate(default: 86400)
            var id: String?
            if let container {
                id = try Terminal.orExit { () throws(MinewatchError) in try reader.containers(matching: container).first?.id }
                guard id != nil else { throw Source.noContainer(container, in: reader) }
            }
            let alerts = try Terminal.orExit { () throws(MinewatchError) in try reader.alerts(since: since, container: id) }
            Terminal.writeStdout(HistoryRenderer.alerts(alerts, format: source.format))
        }
    }

    public struct Container: ParsableCommand {
        public static let configuration = CommandConfiguration(abstract: "What one container did: metadata, telemetry per minute (or per pass with --per-pass), alerts in time.")
        @OptionGroup var source: Source
        @Argument(help: "An id or id prefix, a name, a pod or a Kubernetes container name.")
        var container: String
        @Flag(name: .customLong("per-pass"), help: "Every pass's sample while they are kept, instead of one line per minute.")
        var perPass = false
        public init() {}

        public func run() throws {
            let reader = try source.open()
            let since = try source.sinceDate(default: 3600)
            let hits = try Terminal.orExit { () throws(MinewatchError) in try reader.containers(matching: container) }
            guard let c = hits.first else { throw Source.noContainer(container, in: reader) }
            if hits.count > 1 { Terminal.error("\(hits.count) containers match \(container); showing the most recent, \(c.id.prefix(12))") }
            let history = try Terminal.orExit { () throws(MinewatchError) in try reader.history(of: c, since: since, perMinute: !perPass) }
            Terminal.writeStdout(HistoryRenderer.container(history, format: source.format))
        }
    }
}
