import ArgumentParser
import MinewatchOutput
import MinewatchSignatures

public struct RulesVerdictsCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "verdicts",
        abstract: "Show the verdicts in force: what pcap findings and watch alerts are called, how severe they are, which technique.",
        discussion: "From the bundled 80-verdicts.yaml and the `verdicts:` entries of --rules files, which override it key by key."
    )

    @Option(name: .shortAndLong, help: "Output format: table or json.")
    var format: RulesListCommand.ListFormat = .table

    @OptionGroup var rules: RuleOptions

    public init() {}

    public func run() throws {
        let rows = VerdictsRenderer.rows(try rules.load())
        switch format {
        case .json: Terminal.writeStdout(ReportRenderer.json(rows) + "\n")
        case .table: Terminal.writeStdout(VerdictsRenderer.table(rows))
        }
    }
}
