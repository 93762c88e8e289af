import ArgumentParser
import MinewatchCore
import MinewatchNetwork
import MinewatchSignatures

/// Thresholds of the behaviour models, shared by `watch` and `pcap`. Each overrides the rule
/// files' `models:` value, which overrides the built-in default.
struct ModelOptions: ParsableArguments {
    @Option(name: .customLong("bw-window"), help: "Bandwidth model: how long the upload shape must last (default \(Int(BandwidthThresholds().window))s).")
    var bwWindow: DurationArgument?

    @Option(name: .customLong("bw-min-upload"), help: "Bandwidth model: least upload over outbound connections, bytes/s (65536, 64Ki, 1M; default 64Ki).")
    var bwMinUpload: String?

    @Option(name: .customLong("bw-min-ratio"), help: "Bandwidth model: least outbound sent:received ratio (default 8).")
    var bwMinRatio: Double?

    @Option(name: .customLong("bw-max-destinations"), help: "Bandwidth model: most destination addresses carrying 90% of the upload (default 8).")
    var bwMaxDestinations: Int?

    @Option(name: .customLong("bw-min-exchanges"), help: "Bandwidth model: least replies or new connections on uploading connections in the window (default 3).")
    var bwMinExchanges: Int?

    @Option(name: .customLong("relay-window"), help: "Relay model: the window the balance is measured over; the tunnel must be open for all of it (default 20s).")
    var relayWindow: DurationArgument?

    @Option(name: .customLong("relay-min-rate"), help: "Relay model: least bytes/s relayed, both directions together (default 32Ki).")
    var relayMinRate: String?

    @Option(name: .customLong("relay-min-targets"), help: "Relay model: least distinct target addresses besides the tunnel's (default 3).")
    var relayMinTargets: Int?

    @Option(name: .customLong("relay-tolerance"), help: "Relay model: how far the two sides may differ each way, as a share of the larger (default 0.25).")
    var relayTolerance: Double?

    @Option(name: .customLong("heartbeat-min-period"), help: "Heartbeat trait: shortest period (default 2s).")
    var heartbeatMinPeriod: DurationArgument?

    func validate() throws {
        if let w = bwWindow, !(2...3600).contains(w.seconds) { throw ValidationError("--bw-window must be between 2s and 1h") }
        if let r = bwMinUpload, ByteAmounts.parse(r) == nil { throw ValidationError("--bw-min-upload: expected bytes per second such as 65536, 64Ki or 1M") }
        if let r = bwMinRatio, r < 1 { throw ValidationError("--bw-min-ratio must be at least 1") }
        if let d = bwMaxDestinations, d < 1 { throw ValidationError("--bw-max-destinations must be at least 1") }
        if let e = bwMinExchanges, e < 0 { throw ValidationError("--bw-min-exchanges must not be negative") }
        if let w = relayWindow, !(4...3600).contains(w.seconds) { throw ValidationError("--relay-window must be between 4s and 1h") }
        if let r = relayMinRate, ByteAmounts.parse(r) == nil { throw ValidationError("--relay-min-rate: expected bytes per second such as 32768, 32Ki or 1M") }
        if let t = relayMinTargets, t < 1 { throw ValidationError("--relay-min-targets must be at least 1") }
        if let t = relayTolerance, !(0...1).contains(t) { throw ValidationError("--relay-tolerance must be between 0 and 1") }
        if let p = heartbeatMinPeriod, p.seconds <= 0 { throw ValidationError("--heartbeat-min-period must be positive") }
    }

    func bandwidth(_ s: ModelSettings) -> BandwidthThresholds {
        var m = BandwidthThresholds(settings: s)
        if let v = bwWindow { m.window = v.seconds }
        if let v = bwMinUpload.flatMap(ByteAmounts.parse) { m.minUploadRate = v }
        if let v = bwMinRatio { m.minRatio = v }
        if let v = bwMaxDestinations { m.maxDestinations = v }
        if let v = bwMinExchanges { m.minExchanges = v }
        return m
    }

    func relay(_ s: ModelSettings) -> RelayThresholds {
        var m = RelayThresholds(settings: s)
        if let v = relayWindow { m.window = v.seconds }
        if let v = relayMinRate.flatMap(ByteAmounts.parse) { m.minRate = v }
        if let v = relayMinTargets { m.minTargets = v }
        if let v = relayTolerance { m.tolerance = v }
        return m
    }

    func heartbeat(_ s: ModelSettings) -> HeartbeatThresholds {
        var m = HeartbeatThresholds(settings: s)
        if let v = heartbeatMinPeriod { m.minPeriod = v.seconds }
        return m
    }
}
