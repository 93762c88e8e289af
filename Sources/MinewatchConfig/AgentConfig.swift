import Foundation
import MinewatchCore
import MinewatchModel
import MinewatchSignatures

/// The agent's configuration file (`minewatch watch --config FILE`), as loaded and validated.
/// Every field is optional: what the file leaves out keeps the command line's value or the
/// default, and options given on the command line override the file.
public struct AgentConfig: Sendable {
    /// Where it was read from (for messages).
    public var file: String
    public var interval: Double?
    public var engineSocket: String?
    public var includeHost: Bool?
    public var capture: Bool?
    /// Only these containers (id prefixes or names).
    public var containers: [String]?
    /// Extra rule files, resolved against the config file's folder.
    public var rules: [String] = []
    public var bundledRules: Bool?
    /// Detectors switched on or off; absent ones stay on.
    public var detectors: [DetectorID: Bool] = [:]
    /// Thresholds of the behaviour models (the rule files' `models:` keys), over the rules' values.
    public var models = ModelSettings()
    public var action: Action?
    public var outputs = Outputs()
    /// `GET /metrics` listen address (host:port).
    public var metricsListen: String?
    /// File holding the bearer token HTTP endpoints require when not bound to loopback.
    public var tokenFile: String?
    public var exceptions: [ExceptionRule] = []
    /// Folders of containerd task bundles (`<ns>/<id>/config.json`) or of containers/storage
    /// containers (`<id>/userdata/config.json`) besides the defaults, for metadata.
    public var runtimeState: [String] = []
    public var history: History?
    /// Serve the dashboard (and its API) on the HTTP endpoint.
    public var dashboard: Bool?
    /// Read the memory of processes that deserve it (packed, fileless, interpreters, busy).
    public var memoryScan: Bool?
    /// Sample busy threads' rounding mode with ptrace (RandomX's run-time signature).
    public var fpuSampling: Bool?

    public struct History: Sendable, Hashable {
        public var path: String
        public var retention: Double?
        public var samplesRetention: Double?
        public var maxBytes: Int64?
        public init(path: String) { self.path = path }
    }

    public init(file: String) { self.file = file }

    public struct Action: Sendable, Hashable {
        public var type: ResponseAction
        public var actOn: Severity?
        public var dryRun: Bool?
        public init(type: ResponseAction, actOn: Severity? = nil, dryRun: Bool? = nil) {
            self.type = type
            self.actOn = actOn
            self.dryRun = dryRun
        }
    }

    public struct Outputs: Sendable, Hashable {
        /// Records each sink's queue holds before it drops (and counts) what does not fit.
        public var queueSize: Int?
        public var jsonl: FileOutput?
        public var ocsf: FileOutput?
        public var falcosidekick: HTTPOutput?
        public init() {}
    }

    public struct FileOutput: Sendable, Hashable {
        /// A file to append to, or "-" for standard output.
        public var path: String
        /// Also telemetry records (jsonl only).
        public var telemetry: Bool
        public init(path: String, telemetry: Bool = false) {
            self.path = path
            self.telemetry = telemetry
        }
    }

    public struct HTTPOutput: Sendable, Hashable {
        public var url: String
        public var timeout: Double
        public var retries: Int
        /// Sent as `Authorization: Bearer <token>` when set (a file, like `token_file`).
        public var tokenFile: String?
        public init(url: String, timeout: Double = 5, retries: Int = 5, tokenFile: String? = nil) {
            self.url = url
            self.timeout = timeout
            self.retries = retries
            self.tokenFile = tokenFile
        }
    }
}
