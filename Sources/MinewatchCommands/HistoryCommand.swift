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
            do throws(MinewatchError) { return try HistoryReader(path: p) } catch {
                Terminal.error(error.description)
                throw ExitCode(2)
            }
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
            let found: (found: Bool, text: String)
            do throws(MinewatchError) {
                var id: String?
                var missing = false
                if let c = container {
                    id = try reader.containers(matching: c).first?.id
                    missing = id == nil
                }
                found = missing ? (false, "") : (true, HistoryRenderer.alerts(try reader.alerts(since: since, container: id), format: source.format))
            } catch {
                Terminal.error(error.description)
                throw ExitCode(2)
            }
            guard found.found else {
                Terminal.error("no container \(container ?? "") in \(reader.path)")
                throw ExitCode(1)
            }
            Terminal.writeStdout(found.text)
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
            let text: String?
            do throws(MinewatchError) {
                let hits = try reader.containers(matching: container)
                if let c = hits.first {
                    if hits.count > 1 { Terminal.error("\(hits.count) containers match \(container); showing the most recent, \(c.id.prefix(12))") }
                    text = HistoryRenderer.container(try reader.history(of: c, since: since, perMinute: !perPass), format: source.format)
                } else {
                    text = nil
                }
            } catch {
                Terminal.error(error.description)
                throw ExitCode(2)
            }
            guard let text else {
                Terminal.error("no container \(container) in \(reader.path)")
                throw ExitCode(1)
            }
            Terminal.writeStdout(text)
        }
    }
}
