import ArgumentParser
import MinewatchSignatures

/// Shared by every command that loads rules.
struct RuleOptions: ParsableArguments {
    @Option(name: .customLong("rules"), help: ArgumentHelp("Add rules from a YAML file (repeatable). A rule with a bundled id replaces it; 'enabled: false' disables it.", valueName: "file"))
    var ruleFiles: [String] = []

    @Flag(name: .customLong("no-bundled-rules"), help: "Use only the rules given with --rules.")
    var noBundled = false

    /// Loads rules; on any rule error prints every diagnostic and exits 2.
    func load() throws -> RuleSet {
        let (set, diags) = BundledRules.load(userFiles: ruleFiles, includeBundled: !noBundled)
        if !diags.isEmpty {
            for d in diags { Terminal.error(d.description) }
            throw ExitCode(2)
        }
        if set.rules.isEmpty {
            Terminal.error("no rules loaded")
            throw ExitCode(2)
        }
        return set
    }
}
