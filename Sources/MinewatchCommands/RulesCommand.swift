import ArgumentParser
import Foundation
import MinewatchCore
import MinewatchOutput
import MinewatchSignatures

public struct RulesCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "rules",
        abstract: "List or validate detection rules.",
        subcommands: [RulesListCommand.self, RulesValidateCommand.self, RulesVerdictsCommand.self]
    )
    public init() {}
}

public struct RulesListCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(commandName: "list", abstract: "Show the rules that are loaded.")

    @Option(name: .shortAndLong, help: "Output format: table or json.")
    var format: ListFormat = .table

    @OptionGroup var rules: RuleOptions

    enum ListFormat: String, ExpressibleByArgument { case table, json }

    struct Row: Encodable {
        var id: String, title: String, category: String, severity: String, family: String?, strings: Int, condition: String?, source: String
    }

    public init() {}

    public func run() throws {
        let set = try rules.load()
        let rows = set.rules.map {
            Row(id: $0.id, title: $0.title, category: $0.category, severity: $0.severity.rawValue, family: $0.family,
                strings: $0.strings.count, condition: $0.conditionText, source: $0.source.description)
        }
        switch format {
        case .json:
            Terminal.writeStdout(ReportRenderer.json(rows) + "\n")
        case .table:
            var out = "ID                      SEVERITY  CATEGORY           FAMILY       TITLE\n"
            for r in rows {
                out += [pad(r.id, 23), pad(r.severity, 9), pad(r.category, 18), pad(r.family ?? "-", 12), r.title].joined(separator: " ") + "\n"
            }
            out += "\(rows.count) rules, \(set.correlations.count) correlations\n"
            Terminal.writeStdout(out)
        }
    }

    func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }
}

public struct RulesValidateCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check rule files; print each problem as FILE:LINE: rule ID: message.",
        discussion: "Exit status 0 when every file is valid, 1 when any has errors."
    )

    @Argument(help: "Rule files (YAML).")
    var files: [String]

    public init() {}

    public func run() throws {
        var bad = 0
        var total = 0
        for f in files {
            let out = RuleLoader().load(path: f)
            for d in out.diagnostics { Terminal.writeStdout(d.description + "\n") }
            bad += out.diagnostics.count
            total += out.ruleSet.rules.count
            if out.diagnostics.isEmpty {
                // Compile too, so a file that validates also scans.
                _ = CompiledRules(out.ruleSet)
            }
        }
        if bad > 0 {
            Terminal.writeStdout("\(bad) problem\(bad == 1 ? "" : "s") in \(files.count) file\(files.count == 1 ? "" : "s")\n")
            throw ExitCode(1)
        }
        Terminal.writeStdout("ok: \(total) rules in \(files.count) file\(files.count == 1 ? "" : "s")\n")
    }
}
