import ArgumentParser
import Foundation
import MinewatchConfig
import MinewatchSignatures

/// `minewatch config validate FILE`: the agent's config file checked as `watch` would load it,
/// with the rule files it names; every problem as `file:line: key: message` on stderr.
public struct ConfigCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Check the agent's configuration file.",
        subcommands: [Validate.self]
    )
    public init() {}

    public struct Validate: ParsableCommand {
        public static let configuration = CommandConfiguration(
            abstract: "Validate a config file (and the rule files it names); exit 0 when it is valid, 2 otherwise.",
            discussion: "Problems are printed one per line as FILE:LINE: KEY: MESSAGE. Unknown keys are errors.")

        @Argument(help: "The config file (YAML).")
        var file: String = ConfigLoader.defaultPath

        public init() {}

        public func run() throws {
            let (config, diags) = ConfigLoader.load(path: file)
            for d in diags { Terminal.error(d.description) }
            guard let config else { throw ExitCode(2) }
            var bad = false
            if !config.rules.isEmpty || config.bundledRules == false {
                let (_, rd) = BundledRules.load(userFiles: config.rules, includeBundled: config.bundledRules ?? true)
                for d in rd { Terminal.error(d.description) }
                bad = !rd.isEmpty
            }
            if let listen = config.metricsListen, let a = ListenAddress.parse(listen), !a.isLoopback, config.tokenFile == nil {
                Terminal.error("\(file): metrics_listen: \(listen) is not a loopback address: set token_file (a bearer token is required)")
                bad = true
            }
            if bad { throw ExitCode(2) }
            Terminal.error("\(file): valid (\(config.exceptions.count) exception\(config.exceptions.count == 1 ? "" : "s"), \(config.rules.count) rule file\(config.rules.count == 1 ? "" : "s"))")
        }
    }
}
