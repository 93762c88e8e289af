import MinewatchSignatures

// The behaviour models read their thresholds from rule data (`models:`); options override.

extension BandwidthThresholds {
    public init(settings s: ModelSettings) {
        self.init()
        if let v = s["bandwidth", "window"] { window = v }
        if let v = s["bandwidth", "minUpload"] { minUploadRate = v }
        if let v = s["bandwidth", "minRatio"] { minRatio = v }
        if let v = s["bandwidth", "maxDestinations"] { maxDestinations = Int(v) }
        if let v = s["bandwidth", "minExchanges"] { minExchanges = Int(v) }
    }
}

extension RelayThresholds {
    public init(settings s: ModelSettings) {
        self.init()
        if let v = s["relay", "window"] { window = v }
        if let v = s["relay", "minRate"] { minRate = v }
        if let v = s["relay", "minTargets"] { minTargets = max(1, Int(v)) }
        if let v = s["relay", "tolerance"] { tolerance = v }
        if let v = s["relay", "slack"] { slackBytes = v }
        if let v = s["relay", "slackPerTarget"] { slackPerTarget = v }
        if let v = s["relay", "inStep"] { inStep = v }
    }
}

extension HeartbeatThresholds {
    public init(settings s: ModelSettings) {
        self.init()
        if let v = s["heartbeat", "minIntervals"] { minIntervals = max(2, Int(v)) }
        if let v = s["heartbeat", "minPeriod"] { minPeriod = v }
        if let v = s["heartbeat", "maxPeriod"] { maxPeriod = v }
        if let v = s["heartbeat", "tolerance"] { tolerance = v }
        if let v = s["heartbeat", "maxMessageBytes"] { maxMessageBytes = v }
    }
}
