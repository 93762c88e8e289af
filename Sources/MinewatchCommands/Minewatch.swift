import ArgumentParser
import MinewatchCore

public struct Minewatch: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "minewatch",
        abstract: "Find cryptojacking in containers: miners in images, and (soon) in running containers.",
        version: MinewatchVersion.current,
        subcommands: [ScanCommand.self, RulesCommand.self]
    )
    public init() {}
}
