import ArgumentParser
import MinewatchCore

public struct Minewatch: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "minewatch",
        abstract: "Find cryptojacking in containers: miners in images (scan), in running containers (watch) and in captures (pcap); signed scan attestations (attest, verify) and an admission webhook (admit).",
        version: MinewatchVersion.current,
        subcommands: [ScanCommand.self, WatchCommand.self, PcapCommand.self, AttestCommand.self, VerifyCommand.self, AdmitCommand.self, RulesCommand.self, ConfigCommand.self, HistoryCommand.self]
    )
    public init() {}
}
