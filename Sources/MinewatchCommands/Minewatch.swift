import ArgumentParser
import MinewatchCore

public struct Minewatch: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "minewatch",
        abstract: "Find cryptojacking in containers: miners in images (scan) and in running containers (watch).",
        version: MinewatchVersion.current,
        subcommands: [ScanCommand.self, WatchCommand.self, RulesCommand.self]
    )
    public init() {}
}
