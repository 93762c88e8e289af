import Foundation
import MinewatchPackets
import MinewatchModel

/// Thresholds of the job-push shape: Stratum under encryption (TLS on 443 or anywhere, or a
/// wrapper of its own). Under the records the messages are Stratum's: the pool pushes a job of a
/// few hundred bytes whenever the work changes, unasked; the miner sends small submits and
/// keepalives, each answered at once with a tiny reply; little volume on one long-lived connection.
public struct JobPushThresholds: Sendable, Hashable {
    /// Messages at the start left out (the handshake, the login and its reply).
    public var skip = 4
    public var minPushes = 3
    /// Median size of a push (bytes on the wire, TLS framing included) and how alike they are:
    /// `minAlikeShare` of them within `sizeTolerance` of the median (a job's size hardly varies;
    /// chat messages and notifications do).
    public var minPushBytes = 120
    public var maxPushBytes = 2048
    public var sizeTolerance = 0.25
    public var minAlikeShare = 0.75
    /// A server message this soon after a client message is its answer, not a push.
    public var answerWithin: Double = 0.5
    public var minClientMessages = 2
    /// Client messages of at least this median size (submits and keepalives are JSON; a 2-byte
    /// MQTT ping or a bare TCP keepalive is not).
    public var minClientBytes = 64
    public var maxClientBytes = 1024
    public var minAnsweredShare = 0.7
    /// Client messages sent right after a push (acknowledgements, flow control: what
    /// a streaming RPC or a push channel's client does) must stay a minority: a miner's submits
    /// come when it finds a share, not when the pool speaks.
    public var maxReactiveShare = 0.4
    public var maxAnswerBytes = 400
    /// Pushes are a real share of what the server says (not the odd notification in an HTTP flow).
    public var minPushShare = 0.15
    public var minPeriod: Double = 1
    public var maxPeriod: Double = 600
    /// Little volume: bytes per second both ways.
    public var maxBytesPerSecond: Double = 4096
    public var minSeconds: Double = 10
    public init() {}
}

public enum JobPushJudge {
    /// The shape in words, the same in `pcap` findings and `watch` traits and alerts.
    public static func describe(_ s: JobPushes) -> String {
        String(format: "%d server-initiated pushes of about %.0f bytes every %.1f s, %d of %d client messages of about %.0f bytes answered within 0.5 s with about %.0f bytes, %.0f bytes/s over %.0f s",
               s.pushes, s.meanPushBytes, s.pushPeriodSeconds, s.answered, s.clientMessages, s.meanClientBytes, s.meanAnswerBytes, s.bytesPerSecond, s.seconds)
    }

    static func median(_ v: [Double]) -> Double { v.isEmpty ? 0 : v.sorted()[v.count / 2] }

    /// The job-push shape of a flow's messages, or nil.
    public static func judge(_ exchanges: ExchangeLog?, model: JobPushThresholds = JobPushThresholds()) -> JobPushes? {
        guard let exchanges, exchanges.messages > model.skip + model.minPushes + model.minClientMessages else { return nil }
        let log = Array(exchanges.recent)
        // Leave out the handshake when the log still holds the flow's start.
        let skip = exchanges.holdsStart ? model.skip : 0
        let n = log.count
        var pushes: [(time: Double, size: Int)] = []
        var answers: [Int] = []
        var client: [Int] = []
        var answered = 0
        var reactive = 0
        var serverMessages = 0
        var lastPush: Double?
        for i in skip..<n {
            let m = log[i]
            if m.fromClient {
                client.append(m.size)
                if let p = lastPush, m.time - p <= model.answerWithin { reactive += 1 }
                if i + 1 < n, !log[i + 1].fromClient, log[i + 1].time - m.time <= model.answerWithin { answered += 1 }
            } else {
                serverMessages += 1
                if i > 0, log[i - 1].fromClient, m.time - log[i - 1].time <= model.answerWithin {
                    answers.append(m.size)
                } else {
                    pushes.append((m.time, m.size))
                    lastPush = m.time
                }
            }
        }
        guard pushes.count >= model.minPushes, client.count >= model.minClientMessages, serverMessages > 0 else { return nil }
        guard Double(pushes.count) >= model.minPushShare * Double(serverMessages) else { return nil }
        let pushMedian = median(pushes.map { Double($0.size) })
        guard pushMedian >= Double(model.minPushBytes), pushMedian <= Double(model.maxPushBytes) else { return nil }
        let alike = pushes.filter { abs(Double($0.size) - pushMedian) <= model.sizeTolerance * pushMedian }.count
        guard Double(alike) >= model.minAlikeShare * Double(pushes.count) else { return nil }
        let clientMedian = median(client.map(Double.init))
        guard clientMedian >= Double(model.minClientBytes), clientMedian <= Double(model.maxClientBytes) else { return nil }
        guard Double(answered) >= model.minAnsweredShare * Double(client.count), !answers.isEmpty else { return nil }
        guard Double(reactive) <= model.maxReactiveShare * Double(client.count) else { return nil }
        let answerMedian = median(answers.map(Double.init))
        guard answerMedian <= Double(model.maxAnswerBytes) else { return nil }
        let intervals = zip(pushes.dropFirst(), pushes).map { $0.time - $1.time }
        let period = median(intervals)
        guard period >= model.minPeriod, period <= model.maxPeriod else { return nil }
        let start = log[skip].time, end = log[n - 1].time
        let seconds = end - start
        guard seconds >= model.minSeconds else { return nil }
        let bytes = Double(log[skip..<n].reduce(0) { $0 + $1.size })
        let rate = bytes / seconds
        guard rate <= model.maxBytesPerSecond else { return nil }
        return JobPushes(pushes: pushes.count, meanPushBytes: pushMedian, pushPeriodSeconds: period, clientMessages: client.count,
                         answered: answered, meanClientBytes: clientMedian, meanAnswerBytes: answerMedian, bytesPerSecond: rate,
                         seconds: end - (exchanges.first ?? start))
    }
}

extension SessionFacts {
    /// What the timing of a flow's messages shows, the same for `pcap` and `watch`: a heartbeat
    /// in the client's messages, and Stratum's shape in both directions (not for a protocol
    /// already recognised as mining).
    public mutating func judgeTiming(of flow: Flow, heartbeat: HeartbeatThresholds, jobPushes: JobPushThresholds) {
        self.heartbeat = HeartbeatJudge.judge(flow.clientMessages, model: heartbeat)
        self.jobPushes = protocolName.isMining ? nil : JobPushJudge.judge(flow.exchanges, model: jobPushes)
    }
}
