import ArgumentParser
import Foundation
import MinewatchCore
import MinewatchModel
import MinewatchNetwork
import MinewatchOutput
import MinewatchPackets

public struct PcapCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "pcap",
        abstract: "Find mining in packet captures: Stratum, PacketCrypt, getwork, pool names, bandwidth-miner traffic.",
        discussion: """
        Reads classic pcap (both byte orders, micro- and nanosecond) and pcapng files (Ethernet with \
        VLAN tags, Linux cooked v1/v2, raw IP, loopback), follows TCP flows (reassembled, bounded) \
        and UDP, and recognises Stratum v1 (both dialects: logins, wallets, agents, jobs, shares), \
        PacketCrypt announcement mining over HTTP, getwork/getblocktemplate, TLS server names and \
        DNS names of pool domains, and the bandwidth-miner traffic shape `watch` uses.

        Exit status as in `scan`: --exit-code (default 1) when a finding is at or above --fail-on; 2 \
        when a capture could not be read completely (what was read is still reported); 64 on usage errors.
        """
    )

    enum Format: String, ExpressibleByArgument { case table, json }

    @Argument(help: "Capture files (pcap or pcapng).")
    var files: [String]

    @Option(name: .shortAndLong, help: "Output format: table or json.")
    var format: Format = .table

    @Option(name: .shortAndLong, help: "Write the report to this file instead of standard output.")
    var output: String?

    @Option(name: .customLong("fail-on"), help: "Lowest severity that fails: info, low, medium, high, critical.")
    var failOn: Severity = .high

    @Option(name: .customLong("exit-code"), help: "Exit status when a finding is at or above --fail-on.")
    var exitCode: Int32 = 1

    @Option(name: .customLong("max-flows"), help: "Flows kept at once (the least recently seen are evicted, and counted).")
    var maxFlows: Int = 200_000

    @OptionGroup(title: "Behaviour models (override the rule files' models:)") var models: ModelOptions

    @OptionGroup var rules: RuleOptions

    public init() {}

    public func validate() throws {
        if !(0...255).contains(exitCode) { throw ValidationError("--exit-code must be 0-255") }
        if maxFlows < 16 { throw ValidationError("--max-flows must be at least 16") }
    }

    public func run() throws {
        let set = try rules.load()
        var reports: [CaptureReport] = []
        for f in files {
            let analyzer = CaptureAnalyzer(rules: set)
            analyzer.maxFlows = maxFlows
            analyzer.bandwidthModel = models.bandwidth(set.models)
            analyzer.relayModel = models.relay(set.models)
            analyzer.heartbeatModel = models.heartbeat(set.models)
            var source = CaptureFile(path: f)
            let r = analyzer.analyze(&source)
            if let e = r.error { Terminal.error(e) }
            reports.append(r)
        }
        let report = PcapReport(captures: reports)
        let text = format == .json ? ReportRenderer.json(report) + "\n" : PcapRenderer.table(report)
        if let output {
            do { try text.write(toFile: output, atomically: true, encoding: .utf8) } catch {
                Terminal.error("write \(output): \(error.localizedDescription)")
                throw ExitCode(2)
            }
        } else {
            Terminal.writeStdout(text)
        }
        if reports.contains(where: { $0.findings.contains { $0.severity >= failOn } }) { throw ExitCode(exitCode) }
        if reports.contains(where: { $0.error != nil }) { throw ExitCode(2) }
    }
}
