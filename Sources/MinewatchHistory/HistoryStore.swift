import Foundation
import GRDB
import MinewatchCore
import MinewatchModel
import Synchronization

/// The agent's embedded history: an SQLite database (GRDB) in WAL mode with every alert and its
/// evidence, per-container telemetry per pass and rolled up per minute (CPU, memory, upload and
/// download rates, connections, top destinations), container metadata and the alerts exceptions
/// silenced. Writes come in batches from the history sink's thread, each one transaction, so a
/// crash or SIGKILL loses at most the batch being written and never corrupts the file. Retention
/// by age and by size is enforced while running.
public final class HistoryStore: Sendable {
    public struct Limits: Sendable, Hashable {
        /// Alerts, minutes and exception hits older than this are deleted.
        public var retention: Double
        /// Per-pass samples older than this are deleted (minutes stay for `retention`).
        public var samplesRetention: Double
        /// The database (with its WAL) is kept under this many bytes: the oldest samples go
        /// first, then the oldest minutes, then the oldest alerts.
        public var maxBytes: Int64
        public init(retention: Double = 7 * 86400, samplesRetention: Double = 6 * 3600, maxBytes: Int64 = 256 << 20) {
            self.retention = retention
            self.samplesRetention = samplesRetention
            self.maxBytes = maxBytes
        }
    }

    public let path: String
    public let limits: Limits
    let pool: DatabasePool
    /// Containers written lately, with what was written: a container's row is rewritten when
    /// its metadata changes or once a minute (its last_seen), not with every sample.
    let upserted = Mutex<[String: (metadata: Alert.Container, at: Double)]>([:])

    static let schemaVersion = 1

    /// Opens (creating when missing) the database for writing.
    public init(path: String, limits: Limits = Limits()) throws(MinewatchError) {
        self.path = path
        self.limits = limits
        do {
            var config = Configuration()
            config.label = "minewatch.history"
            // The WAL counts against the size limit: checkpoint it often enough to stay small.
            let walPages = max(64, min(1000, Int(limits.maxBytes / 4096 / 16)))
            let journalLimit = max(1 << 20, min(8 << 20, limits.maxBytes / 8))
            config.prepareDatabase { db in
                // Freed pages go back to the file system (only takes effect on a new file).
                try db.execute(sql: "PRAGMA auto_vacuum = INCREMENTAL")
                // NORMAL in WAL mode: a committed transaction survives a crash of the process;
                // only an OS crash may lose the last ones. Never corruption.
                try db.execute(sql: "PRAGMA synchronous = NORMAL")
                try db.execute(sql: "PRAGMA journal_size_limit = \(journalLimit)")
                try db.execute(sql: "PRAGMA wal_autocheckpoint = \(walPages)")
            }
            pool = try DatabasePool(path: path, configuration: config)
            try pool.write { db in try Self.migrate(db) }
        } catch {
            throw MinewatchError(.io, operation: "open history", subject: path, message: Self.describe(error))
        }
    }

    static func describe(_ error: any Error) -> String {
        if let e = error as? DatabaseError { return e.message ?? "\(e.resultCode)" }
        return "\(error)"
    }

    static func migrate(_ db: Database) throws {
        let version = try Int.fetchOne(db, sql: "PRAGMA user_version") ?? 0
        if version > schemaVersion {
            throw DatabaseError(message: "history schema \(version) is newer than this minewatch (\(schemaVersion))")
        }
        guard version < 1 else { return }
        try db.execute(sql: """
            CREATE TABLE IF NOT EXISTS containers (
                id TEXT PRIMARY KEY, name TEXT, image TEXT, runtime TEXT,
                k8s_namespace TEXT, k8s_pod TEXT, k8s_container TEXT, labels TEXT,
                first_seen REAL NOT NULL, last_seen REAL NOT NULL);
            CREATE TABLE IF NOT EXISTS alerts (
                id INTEGER PRIMARY KEY, time REAL NOT NULL, container_id TEXT NOT NULL, detector TEXT NOT NULL,
                severity TEXT NOT NULL, family TEXT, technique TEXT, summary TEXT NOT NULL, json TEXT NOT NULL);
            CREATE INDEX IF NOT EXISTS alerts_time ON alerts(time);
            CREATE INDEX IF NOT EXISTS alerts_container ON alerts(container_id, time);
            CREATE TABLE IF NOT EXISTS samples (
                container_id TEXT NOT NULL, time REAL NOT NULL, cpu_cores REAL, cpu_share REAL, memory_bytes INTEGER,
                upload_bps REAL, download_bps REAL, tx_bps REAL, rx_bps REAL, connections_out INTEGER, connections_in INTEGER,
                destinations TEXT);
            CREATE INDEX IF NOT EXISTS samples_container ON samples(container_id, time);
            CREATE INDEX IF NOT EXISTS samples_time ON samples(time);
            CREATE TABLE IF NOT EXISTS minutes (
                container_id TEXT NOT NULL, minute INTEGER NOT NULL, samples INTEGER NOT NULL,
                cpu_cores REAL, cpu_cores_max REAL, cpu_share REAL, memory_bytes_max INTEGER,
                upload_bps REAL, download_bps REAL, connections_max INTEGER, destinations TEXT,
                PRIMARY KEY (container_id, minute)) WITHOUT ROWID;
            CREATE INDEX IF NOT EXISTS minutes_minute ON minutes(minute);
            CREATE TABLE IF NOT EXISTS silenced (
                id INTEGER PRIMARY KEY, time REAL NOT NULL, exception TEXT NOT NULL, container_id TEXT NOT NULL,
                detector TEXT NOT NULL, summary TEXT NOT NULL);
            CREATE INDEX IF NOT EXISTS silenced_time ON silenced(time);
            PRAGMA user_version = 1;
            """)
    }

    // MARK: writing

    /// What one batch writes.
    public struct Batch: Sendable {
        public var alerts: [Alert] = []
        public var samples: [ContainerTelemetry] = []
        public var minutes: [MinuteRow] = []
        public var silenced: [(time: Date, exception: String, alert: Alert)] = []
        public var isEmpty: Bool { alerts.isEmpty && samples.isEmpty && minutes.isEmpty && silenced.isEmpty }
        public init() {}
    }

    /// One container's minute.
    public struct MinuteRow: Sendable, Hashable, Codable {
        public var containerID: String
        public var minute: Int64
        public var samples: Int
        public var cpuCores: Double?
        public var cpuCoresMax: Double?
        public var cpuShare: Double?
        public var memoryBytesMax: Int64?
        public var uploadBps: Double?
        public var downloadBps: Double?
        public var connectionsMax: Int
        public var destinations: [String]

        public init(containerID: String, minute: Int64, samples: Int, cpuCores: Double?, cpuCoresMax: Double?, cpuShare: Double?, memoryBytesMax: Int64?,
                    uploadBps: Double?, downloadBps: Double?, connectionsMax: Int, destinations: [String]) {
            self.containerID = containerID
            self.minute = minute
            self.samples = samples
            self.cpuCores = cpuCores
            self.cpuCoresMax = cpuCoresMax
            self.cpuShare = cpuShare
            self.memoryBytesMax = memoryBytesMax
            self.uploadBps = uploadBps
            self.downloadBps = downloadBps
            self.connectionsMax = connectionsMax
            self.destinations = destinations
        }
    }

    static let json = ReportJSON.encoder()

    static func text<T: Encodable>(_ v: T) -> String { (try? json.encode(v)).map { String(decoding: $0, as: UTF8.self) } ?? "null" }

    /// Writes a batch in one transaction.
    public func write(_ b: Batch) throws(MinewatchError) {
        guard !b.isEmpty else { return }
        do {
            var due: [(Alert.Container, Date)] = []
            upserted.withLock { u in
                for (c, time) in b.samples.map({ ($0.container, $0.time) }) + b.alerts.map({ ($0.container, $0.detectedAt) }) {
                    let t = time.timeIntervalSince1970
                    if let prev = u[c.id], prev.metadata == c, t - prev.at < 60 { continue }
                    u[c.id] = (c, t)
                    due.append((c, time))
                }
                if u.count > 8192 { u.removeAll() }
            }
            try pool.write { db in
                for (c, time) in due { try Self.upsert(db, c, time: time) }
                for a in b.alerts {
                    try db.execute(sql: "INSERT INTO alerts (time, container_id, detector, severity, family, technique, summary, json) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                                   arguments: [a.detectedAt.timeIntervalSince1970, a.container.id, a.detector.rawValue, a.severity.rawValue,
                                               a.family, a.technique, a.summary, Self.text(a)])
                }
                let sample = try db.makeStatement(sql: """
                    INSERT INTO samples (container_id, time, cpu_cores, cpu_share, memory_bytes, upload_bps, download_bps, tx_bps, rx_bps,
                        connections_out, connections_in, destinations) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """)
                for t in b.samples {
                    try sample.execute(arguments: [t.container.id, t.time.timeIntervalSince1970, t.cpuCores, t.cpuShare,
                                                   t.memoryBytes.map { Int64(clamping: $0) }, t.outboundTxBytesPerSecond, t.outboundRxBytesPerSecond,
                                                   t.txBytesPerSecond, t.rxBytesPerSecond, t.outboundConnections, t.inboundConnections,
                                                   t.connections.isEmpty ? nil : Self.jsonArray(t.connections)])
                }
                for m in b.minutes {
                    try db.execute(sql: """
                        INSERT OR REPLACE INTO minutes (container_id, minute, samples, cpu_cores, cpu_cores_max, cpu_share, memory_bytes_max,
                            upload_bps, download_bps, connections_max, destinations) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """, arguments: [m.containerID, m.minute, m.samples, m.cpuCores, m.cpuCoresMax, m.cpuShare, m.memoryBytesMax,
                                         m.uploadBps, m.downloadBps, m.connectionsMax, m.destinations.isEmpty ? nil : Self.jsonArray(m.destinations)])
                }
                for s in b.silenced {
                    try Self.upsert(db, s.alert.container, time: s.time)
                    try db.execute(sql: "INSERT INTO silenced (time, exception, container_id, detector, summary) VALUES (?, ?, ?, ?, ?)",
                                   arguments: [s.time.timeIntervalSince1970, s.exception, s.alert.container.id, s.alert.detector.rawValue, s.alert.summary])
                }
            }
        } catch {
            throw MinewatchError(.io, operation: "write history", subject: path, message: Self.describe(error))
        }
    }

    /// A JSON array of strings, without an encoder (one per sample adds up); samples' and
    /// minutes' destinations are both written with it.
    static func jsonArray(_ items: [String]) -> String {
        var s = "["
        for (i, item) in items.enumerated() {
            if i > 0 { s += "," }
            s += "\""
            for ch in item.unicodeScalars {
                switch ch {
                case "\"": s += "\\\""
                case "\\": s += "\\\\"
                case _ where ch.value < 0x20: s += String(format: "\\u%04x", ch.value)
                default: s.unicodeScalars.append(ch)
                }
            }
            s += "\""
        }
        return s + "]"
    }

    static func upsert(_ db: Database, _ c: Alert.Container, time: Date) throws {
        let labels = c.labels.map { text($0) }
        try db.execute(sql: """
            INSERT INTO containers (id, name, image, runtime, k8s_namespace, k8s_pod, k8s_container, labels, first_seen, last_seen)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT(id) DO UPDATE SET last_seen = MAX(last_seen, excluded.last_seen),
                name = COALESCE(excluded.name, name), image = COALESCE(excluded.image, image),
                k8s_namespace = COALESCE(excluded.k8s_namespace, k8s_namespace), k8s_pod = COALESCE(excluded.k8s_pod, k8s_pod),
                k8s_container = COALESCE(excluded.k8s_container, k8s_container), labels = COALESCE(excluded.labels, labels)
            """, arguments: [c.id, c.name, c.image, c.runtime, c.k8s?.namespace, c.k8s?.pod, c.k8s?.container, labels,
                             time.timeIntervalSince1970, time.timeIntervalSince1970])
    }

    // MARK: retention

    /// Bytes on disk: the database and its WAL.
    public var bytesOnDisk: Int64 {
        let fm = FileManager.default
        return [path, path + "-wal", path + "-shm"].reduce(Int64(0)) { sum, p in
            sum + ((try? fm.attributesOfItem(atPath: p)[.size] as? NSNumber)?.int64Value ?? 0)
        }
    }

    /// Whether the file has come near its limit (90%): the sink then trims at once instead of
    /// waiting for the next periodic pass, so the file never grows past it.
    public var nearLimit: Bool { bytesOnDisk > limits.maxBytes / 10 * 9 }

    /// Deletes what is past its age, then, while the file is over 80% of its size, the oldest
    /// rows (samples, then minutes, then alerts and silenced alerts), and gives the space back.
    /// Returns rows deleted.
    @discardableResult
    public func enforceRetention(now: Date) throws(MinewatchError) -> Int {
        var deleted = 0
        do {
            try pool.write { db in
                let t = now.timeIntervalSince1970
                try db.execute(sql: "DELETE FROM samples WHERE time < ?", arguments: [t - limits.samplesRetention])
                deleted += db.changesCount
                try db.execute(sql: "DELETE FROM minutes WHERE minute < ?", arguments: [Int64((t - limits.retention) / 60)])
                deleted += db.changesCount
                try db.execute(sql: "DELETE FROM alerts WHERE time < ?", arguments: [t - limits.retention])
                deleted += db.changesCount
                try db.execute(sql: "DELETE FROM silenced WHERE time < ?", arguments: [t - limits.retention])
                deleted += db.changesCount
                try db.execute(sql: "DELETE FROM containers WHERE last_seen < ?", arguments: [t - limits.retention])
                deleted += db.changesCount
            }
            try reclaim()
            // Over its size: delete the oldest tenth of each table in turn until it fits (bounded).
            var rounds = 0
            while bytesOnDisk > limits.maxBytes / 10 * 8 && rounds < 40 {
                rounds += 1
                let removed = try pool.write { db -> Int in
                    for (table, column) in [("samples", "time"), ("minutes", "minute"), ("silenced", "time"), ("alerts", "time")] {
                        let n = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM \(table)") ?? 0
                        guard n > 0 else { continue }
                        try db.execute(sql: "DELETE FROM \(table) WHERE \(column) <= (SELECT \(column) FROM \(table) ORDER BY \(column) LIMIT 1 OFFSET ?)",
                                       arguments: [n / 10])
                        return db.changesCount
                    }
                    return 0
                }
                deleted += removed
                try reclaim()
                if removed == 0 { break }
            }
        } catch let e as MinewatchError {
            throw e
        } catch {
            throw MinewatchError(.io, operation: "enforce history retention", subject: path, message: Self.describe(error))
        }
        return deleted
    }

    /// Gives freed pages back to the file system and truncates the WAL.
    func reclaim() throws {
        try pool.write { db in try db.execute(sql: "PRAGMA incremental_vacuum") }
        try pool.writeWithoutTransaction { db in _ = try Row.fetchAll(db, sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
    }
}
