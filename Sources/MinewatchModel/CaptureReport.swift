import Foundation
import MinewatchCore

/// The protocol a flow speaks, as the recognisers named it. Raw values are what reports show.
public enum WireProtocol: String, Sendable, Codable, Hashable, CaseIterable, CustomStringConvertible {
    case unknown, dns, http, tls
    /// Stratum: JSON-RPC lines (`mining.subscribe`, `mining.notify`, ...), and its two dialects.
    case stratum
    case stratumMonero = "stratum-monero"
    case stratumEthereum = "stratum-ethereum"
    /// PacketCrypt's pool protocol over HTTP (config.json polls, announcement posts).
    case packetcrypt
    /// getwork / getblocktemplate over HTTP.
    case getwork

    public var isStratum: Bool { self == .stratum || self == .stratumMonero || self == .stratumEthereum }
    /// A protocol only miners speak.
    public var isMining: Bool { isStratum || self == .packetcrypt || self == .getwork }
    public var description: String { rawValue }
}

/// What the recognisers found in one flow: the protocol, identities and counts. Filled in as
/// bytes arrive; read by the analyzer at the end.
public struct SessionFacts: Sendable, Codable, Hashable {
    public var protocolName: WireProtocol = .unknown
    /// Stratum: wallet or worker login, agent, jobs from the pool, shares submitted/accepted/rejected.
    public var login: String?
    public var agent: String?
    public var jobs = 0
    public var submits = 0
    public var accepted = 0
    public var rejected = 0
    public var keepalives = 0
    public var difficulty: Double?
    /// Stratum (Monero dialect): the algorithm the pool's jobs name (`"algo"`, XMRig's protocol
    /// extension), else the first one the miner offered at login; whether jobs carried a RandomX
    /// `seed_hash`; the major version byte of the jobs' hashing blob (the block header layout).
    public var algorithm: String?
    public var seedHash: Bool?
    public var blobMajorVersion: Int?
    /// HTTP: requests, the Host header, the User-Agent.
    public var requests = 0
    public var host: String?
    public var userAgent: String?
    /// PacketCrypt: config.json polls, blkinfo fetches, announcement posts and announcements.
    public var configPolls = 0
    public var blkinfo = 0
    public var annPosts = 0
    public var announcements = 0
    public var payto: String?
    public var sid: String?
    /// getwork / getblocktemplate requests, X-Mining-Extensions.
    public var getwork = 0
    public var miningExtensions: String?
    /// TLS ClientHello server name.
    public var sni: String?
    /// The name the client used for its server: the TLS server name, else the HTTP Host
    /// without its port.
    public var serverName: String? { sni ?? host.map(Endpoint.host) }
    /// Request body sizes (first 64) and request times (first 256), for the flow statistics.
    public var bodySizes: [Int] = []
    public var requestTimes: [Double] = []
    /// HTTP request bodies: of known size, of them whole multiples of 1024 bytes up to 1 MiB
    /// (PacketCrypt announcements are 1024 bytes, batched up to 1024), larger than 1 MiB; of the
    /// bodies whose first bytes were seen with no Content-Encoding and no media type that is
    /// compressed by nature, how many look random (incompressible) and how many structured; and
    /// bodies sent with a Content-Encoding (gzip, snappy: random-looking by design).
    public var exactBodies = 0
    public var kibFramedBodies = 0
    public var largeBodies = 0
    public var randomBodies = 0
    public var structuredBodies = 0
    public var encodedBodies = 0
    /// Request bodies whose 1024-byte records carry PacketCrypt announcement headers.
    public var announcementBodies = 0
    /// Fingerprints (size and first 512 bytes) of the first random-looking bodies, at most
    /// `maxBodyDigests`: the same bytes sent to several servers is mirroring.
    public var randomBodyDigests: [UInt64] = []
    public static let maxBodyDigests = 32
    /// Strictly periodic small client messages on a long-lived connection (DePIN heartbeats).
    public var heartbeat: Heartbeat?
    /// Stratum's shape under encryption: unasked pushes of alike size at a job cadence, small
    /// client messages answered at once, little volume.
    public var jobPushes: JobPushes?
    public init() {}

    /// Facts a finding or a detector can use: a mining protocol, a server name (TLS SNI, HTTP
    /// Host), mining extensions, a heartbeat or request bodies. `pcap` keeps these flows and
    /// `watch` hands these sessions to its detectors.
    public var carriesEvidence: Bool {
        protocolName.isMining || sni != nil || host != nil || miningExtensions != nil || heartbeat != nil || jobPushes != nil || exactBodies > 0
            || announcementBodies > 0 || !randomBodyDigests.isEmpty
    }
}

/// A heartbeat: the client sends a small message at a fixed period (DePIN networks pay for
/// uptime so proven: a JSON ping over a WebSocket every few seconds).
public struct Heartbeat: Sendable, Codable, Hashable {
    public var messages: Int
    public var periodSeconds: Double
    /// Median distance of the intervals from the period, as a share of it.
    public var jitter: Double
    public var meanMessageBytes: Double
    public var seconds: Double
    public init(messages: Int, periodSeconds: Double, jitter: Double, meanMessageBytes: Double, seconds: Double) {
        self.messages = messages
        self.periodSeconds = periodSeconds
        self.jitter = jitter
        self.meanMessageBytes = meanMessageBytes
        self.seconds = seconds
    }
}

/// The job-push shape of an encrypted (or unknown) stream: what Stratum looks like under TLS.
public struct JobPushes: Sendable, Codable, Hashable {
    /// Server messages that answered nothing, their median size and median interval.
    public var pushes: Int
    public var meanPushBytes: Double
    public var pushPeriodSeconds: Double
    /// Client messages, how many were answered within half a second, median sizes.
    public var clientMessages: Int
    public var answered: Int
    public var meanClientBytes: Double
    public var meanAnswerBytes: Double
    public var bytesPerSecond: Double
    public var seconds: Double
    public init(pushes: Int, meanPushBytes: Double, pushPeriodSeconds: Double, clientMessages: Int, answered: Int, meanClientBytes: Double,
                meanAnswerBytes: Double, bytesPerSecond: Double, seconds: Double) {
        self.pushes = pushes
        self.meanPushBytes = meanPushBytes
        self.pushPeriodSeconds = pushPeriodSeconds
        self.clientMessages = clientMessages
        self.answered = answered
        self.meanClientBytes = meanClientBytes
        self.meanAnswerBytes = meanAnswerBytes
        self.bytesPerSecond = bytesPerSecond
        self.seconds = seconds
    }
}

/// One recognised conversation in a capture.
public struct NetSession: Sendable, Codable, Hashable {
    public var protocolName: WireProtocol
    public var client: String
    public var server: String
    /// The server's name, from DNS answers, the TLS SNI or the HTTP Host header.
    public var serverName: String?
    public var firstSeen: Date
    public var lastSeen: Date
    public var clientBytes: Int
    public var serverBytes: Int
    public var packets: Int
    /// Median seconds between requests (HTTP) when there were at least three: polling shows here
    /// (PacketCrypt asks for config.json every 5 s).
    public var requestPeriodSeconds: Double?
    public var facts: SessionFacts

    public init(protocolName: WireProtocol, client: String, server: String, serverName: String?, firstSeen: Date, lastSeen: Date,
                clientBytes: Int, serverBytes: Int, packets: Int, requestPeriodSeconds: Double?, facts: SessionFacts) {
        self.protocolName = protocolName
        self.client = client
        self.server = server
        self.serverName = serverName
        self.firstSeen = firstSeen
        self.lastSeen = lastSeen
        self.clientBytes = clientBytes
        self.serverBytes = serverBytes
        self.packets = packets
        self.requestPeriodSeconds = requestPeriodSeconds
        self.facts = facts
    }

    public static func period(_ times: [Double]) -> Double? {
        guard times.count >= 3 else { return nil }
        let gaps = zip(times.dropFirst(), times).map { $0 - $1 }.sorted()
        return (gaps[gaps.count / 2] * 1000).rounded() / 1000
    }
}

/// Bytes and packets of one flow, for the flows summary.
public struct FlowSummary: Sendable, Codable, Hashable {
    public var transport: String
    public var client: String
    public var server: String
    public var protocolName: WireProtocol
    public var clientBytes: Int
    public var serverBytes: Int
    public var packets: Int
    public var seconds: Double

    public init(transport: String, client: String, server: String, protocolName: WireProtocol, clientBytes: Int, serverBytes: Int,
                packets: Int, seconds: Double) {
        self.transport = transport
        self.client = client
        self.server = server
        self.protocolName = protocolName
        self.clientBytes = clientBytes
        self.serverBytes = serverBytes
        self.packets = packets
        self.seconds = seconds
    }
}

/// Everything `pcap` found in one capture file.
public struct CaptureReport: Sendable, Codable {
    public var file: String
    public var packets = 0
    public var bytes: Int64 = 0
    /// Packets that were not IPv4/IPv6 TCP/UDP (ARP, ICMP, later fragments, unknown link types).
    public var otherPackets = 0
    public var flows = 0
    public var evictedFlows = 0
    /// Flows with mining-relevant facts beyond the analyzer's limit, counted, not listed.
    public var flowsNotKept = 0
    public var holesSkipped = 0
    public var firstSeen: Date?
    public var lastSeen: Date?
    public var sessions: [NetSession] = []
    /// The largest flows (at most 20).
    public var topFlows: [FlowSummary] = []
    public var findings: [Finding] = []
    /// A read error; what was read before it is still reported.
    public var error: String?
    public var highestSeverity: Severity? { findings.map(\.severity).max() }
    public init(file: String) { self.file = file }
}

public struct PcapReport: Sendable, Codable {
    public var schemaVersion = 1
    public var tool = "minewatch"
    public var version = MinewatchVersion.current
    public var captures: [CaptureReport]
    public init(captures: [CaptureReport]) { self.captures = captures }
}
