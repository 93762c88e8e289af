import ArgumentParser
import Foundation
import MinewatchConfig
import MinewatchCore
import MinewatchHistory
import MinewatchOutput
import MinewatchServer
import MinewatchSinks
#if canImport(Glibc)
import Glibc
#endif

/// The agent's outputs, each behind its own bounded queue: the primary (standard output or
/// --output; JSON lines or the table), the history, OCSF and Falcosidekick.
struct WatchOutputs {
    let command: WatchCommand
    let config: AgentConfig
    let interval: Double
    var historyStore: HistoryStore?

    /// The node's name for events: the Kubernetes downward API's NODE_NAME, else the host name.
    static var hostname: String {
        if let n = ProcessInfo.processInfo.environment["NODE_NAME"], !n.isEmpty { return n }
        var buf = [CChar](repeating: 0, count: 256)
        return gethostname(&buf, buf.count) == 0 ? String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : "unknown"
    }

    /// The outputs: the primary (stdout or --output, JSON lines or the table), then OCSF and
    /// Falcosidekick when configured; each behind its own bounded queue.
    func makeSinks() throws -> [SinkQueue] {
        let capacity = command.queueSize ?? config.outputs.queueSize ?? 10_000
        var out: [SinkQueue] = []
        let primaryPath = command.output ?? config.outputs.jsonl.map(\.path).flatMap { $0 == "-" ? nil : $0 }
        let wantTelemetry = command.telemetry || config.outputs.jsonl?.telemetry == true
        let fmt = command.format ?? (primaryPath == nil && Terminal.stdoutIsTTY && config.outputs.jsonl == nil ? .table : .jsonl)
        let live = fmt == .table && primaryPath == nil && Terminal.stdoutIsTTY
        let handle = try Self.open(primaryPath)
        let every = interval
        let sink: any Sink
        switch fmt {
        case .jsonl:
            sink = LineSink(name: primaryPath ?? "stdout", handle: handle, closeWhenDone: primaryPath != nil) { WatchRenderer.jsonLines($0, telemetry: wantTelemetry) }
        case .table where live:
            sink = ScreenSink(handle: handle) { t, a in WatchRenderer.screen(telemetry: t, alerts: a, interval: every) }
        case .table:
            handle.write(Data(WatchRenderer.tableHeader.utf8))
            sink = LineSink(name: primaryPath ?? "stdout", handle: handle, closeWhenDone: primaryPath != nil) { WatchRenderer.tableLines($0) }
        }
        out.append(SinkQueue(sink, capacity: capacity))
        if let h = historyStore { out.append(SinkQueue(HistorySink(store: h), capacity: capacity)) }
        out += try Self.eventSinks(ocsf: command.ocsfOutput ?? config.outputs.ocsf?.path,
                                   falcosidekick: command.falcosidekickURL ?? config.outputs.falcosidekick?.url, config: config, capacity: capacity)
        return out
    }

    /// The event sinks `watch` and `admit` share: OCSF lines (a file, or "-" for standard output)
    /// and Falcosidekick, each behind its own bounded queue.
    static func eventSinks(ocsf: String?, falcosidekick: String?, config: AgentConfig, capacity: Int) throws -> [SinkQueue] {
        var out: [SinkQueue] = []
        let host = Self.hostname
        let version = MinewatchVersion.current
        if let ocsf {
            let path = ocsf == "-" ? nil : ocsf
            let h = try Self.open(path)
            out.append(SinkQueue(LineSink(name: "ocsf:\(path ?? "stdout")", handle: h, closeWhenDone: path != nil) {
                EventRenderer.ocsfLine($0, hostname: host, version: version)
            }, capacity: capacity))
        }
        if let u = falcosidekick, let url = URL(string: u) {
            let c = config.outputs.falcosidekick
            let token = try c?.tokenFile.map { tf in try Terminal.orExit { () throws(MinewatchError) in try TokenFile.read(tf) } }
            out.append(SinkQueue(HTTPSink(name: "falcosidekick", url: url, timeout: c?.timeout ?? 5, retries: c?.retries ?? 5, token: token) {
                EventRenderer.falcoBody($0, hostname: host)
            }, capacity: capacity))
        }
        return out
    }

    /// A file opened for appending (created when missing), or standard output for nil.
    static func open(_ path: String?) throws -> FileHandle {
        guard let path else { return .standardOutput }
        if !FileManager.default.fileExists(atPath: path) { _ = FileManager.default.createFile(atPath: path, contents: nil) }
        guard let h = FileHandle(forWritingAtPath: path) else {
            Terminal.error("open \(path): cannot write")
            throw ExitCode(2)
        }
        h.seekToEndOfFile()
        return h
    }

    /// The history database, when one is configured (--history or history:).
    mutating func openHistory() throws {
        guard let path = command.history ?? config.history?.path else { return }
        var limits = HistoryStore.Limits()
        if let r = command.historyRetention?.seconds ?? config.history?.retention { limits.retention = r }
        if let r = config.history?.samplesRetention { limits.samplesRetention = r }
        if let s = command.historyMaxSize {
            guard let b = ByteAmounts.sizeLimit(s) else {
                Terminal.error("--history-max-size: expected a size of at least 1MiB such as 256MiB, not '\(s)'")
                throw ExitCode(2)
            }
            limits.maxBytes = b
        } else if let b = config.history?.maxBytes {
            limits.maxBytes = b
        }
        limits.samplesRetention = min(limits.samplesRetention, limits.retention)
        historyStore = try Terminal.orExit { () throws(MinewatchError) in try HistoryStore(path: path, limits: limits) }
    }
}
