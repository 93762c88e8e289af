import Foundation
import GRDB
import MinewatchCore
import MinewatchModel

/// Reads the history offline (`minewatch history`, the dashboard), also while the agent writes
/// it: WAL readers see the last committed batch.
public final class HistoryReader: Sendable {
    public let path: String
    let pool: DatabasePool

    public init(path: String) throws(MinewatchError) {
        self.path = path
        guard FileManager.default.fileExists(atPath: path) else {
            throw MinewatchError(.notFound, operation: "open history", subject: path, message: "no such file (the agent writes it with --history FILE)")
        }
        do {
            var config = Configuration()
            config.readonly = true
            config.label = "minewatch.history.reader"
            pool = try DatabasePool(path: path, configuration: config)
            let version = try pool.read { try Int.fetchOne($0, sql: "PRAGMA user_version") } ?? 0
            guard version == HistoryStore.schemaVersion else {
                throw DatabaseError(message: "history schema \(version), expected \(HistoryStore.schemaVersion)")
            }
        } catch let e as MinewatchError {
            throw e
        } catch {
            throw MinewatchError(.io, operation: "open history", subject: path, message: HistoryStore.describe(error))
        }
    }

    public struct ContainerRecord: Sendable, Hashable, Codable {
        public var id: String
        public var name: String?
        public var image: String?
        public var runtime: String?
        public var k8s: KubernetesMetadata?
        public var labels: [String: String]?
        public var firstSeen: Date
        public var lastSeen: Date
    }

    public struct Sample: Sendable, Hashable, Codable {
        public var time: Date
        public var cpuCores: Double?
        public var cpuShare: Double?
        public var memoryBytes: Int64?
        public var uploadBytesPerSecond: Double?
        public var downloadBytesPerSecond: Double?
        public var connections: Int?
        public var destinations: [String]?
    }

    public struct Silenced: Sendable, Hashable, Codable {
        public var time: Date
        public var exception: String
        public var containerID: String
        public var detector: String
        public var summary: String
    }

    func run<T>(_ what: String, _ body: (Database) throws -> T) throws(MinewatchError) -> T {
        do { return try pool.read(body) } catch {
            throw MinewatchError(.io, operation: what, subject: path, message: HistoryStore.describe(error))
        }
    }

    static let decoder: JSONDecoder = {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .iso8601
        return d
    }()

    /// Containers whose id starts with `ref` or whose name, pod or Kubernetes container name is
    /// `ref`, most recently seen first.
    public func containers(matching ref: String? = nil) throws(MinewatchError) -> [ContainerRecord] {
        try run("read containers") { db in
            var sql = "SELECT * FROM containers"
            var args: [any DatabaseValueConvertible] = []
            if let ref {
                sql += " WHERE id LIKE ? OR name = ? OR k8s_pod = ? OR k8s_container = ?"
                args = [ref.replacingOccurrences(of: "%", with: "") + "%", ref, ref, ref]
            }
            sql += " ORDER BY last_seen DESC LIMIT 1000"
            return try Row.fetchAll(db, sql: sql, arguments: StatementArguments(args)).map(Self.container)
        }
    }

    static func container(_ r: Row) -> ContainerRecord {
        let ns: String? = r["k8s_namespace"], pod: String? = r["k8s_pod"], c: String? = r["k8s_container"]
        let k8s = KubernetesMetadata(namespace: ns, pod: pod, container: c)
        let labels = (r["labels"] as String?).flatMap { try? decoder.decode([String: String].self, from: Data($0.utf8)) }
        return ContainerRecord(id: r["id"], name: r["name"], image: r["image"], runtime: r["runtime"], k8s: k8s.isEmpty ? nil : k8s, labels: labels,
                               firstSeen: Date(timeIntervalSince1970: r["first_seen"]), lastSeen: Date(timeIntervalSince1970: r["last_seen"]))
    }

    /// `SELECT * FROM table` of the rows since `since`, of one container when given.
    static func rows(_ table: String, since: Date?, container: String?) -> (String, [any DatabaseValueConvertible]) {
        var sql = "SELECT * FROM \(table) WHERE time >= ?"
        var args: [any DatabaseValueConvertible] = [since?.timeIntervalSince1970 ?? 0]
        if let container {
            sql += " AND container_id = ?"
            args.append(container)
        }
        return (sql, args)
    }

    /// Alerts since `since`, oldest first, for one container id when given (at most `limit`).
    public func alerts(since: Date? = nil, container: String? = nil, limit: Int = 10_000) throws(MinewatchError) -> [Alert] {
        try run("read alerts") { db in
            var (sql, args) = Self.rows("alerts", since: since, container: container)
            sql += " ORDER BY time DESC, id DESC LIMIT ?"
            args.append(limit)
            let texts = try Row.fetchAll(db, sql: sql, arguments: StatementArguments(args)).map { $0["json"] as String }
            return texts.reversed().compactMap { try? Self.decoder.decode(Alert.self, from: Data($0.utf8)) }
        }
    }

    /// The container's telemetry since `since`: per pass while those samples are kept, and per
    /// minute before that (`perMinute` forces minutes). At most `limit` points, the latest.
    public func series(container id: String, since: Date, perMinute: Bool = false, limit: Int = 5000) throws(MinewatchError) -> [Sample] {
        try run("read series") { db in
            let t = min(max(since.timeIntervalSince1970.isFinite ? since.timeIntervalSince1970 : 0, 0), 1e11)
            var out: [Sample] = []
            let firstSample = perMinute ? nil : try Double.fetchOne(db, sql: "SELECT MIN(time) FROM samples WHERE container_id = ?", arguments: [id])
            // Minutes before the first per-pass sample (or all of them).
            let minuteEnd = firstSample.map { Int64($0 / 60) } ?? Int64.max
            let minutes = try Row.fetchAll(db, sql: """
                SELECT * FROM minutes WHERE container_id = ? AND minute >= ? AND minute < ? ORDER BY minute DESC LIMIT ?
                """, arguments: [id, Int64(t / 60), minuteEnd, limit])
            for r in minutes.reversed() {
                out.append(Sample(time: Date(timeIntervalSince1970: Double((r["minute"] as Int64) * 60)), cpuCores: r["cpu_cores"], cpuShare: r["cpu_share"],
                                  memoryBytes: r["memory_bytes_max"], uploadBytesPerSecond: r["upload_bps"], downloadBytesPerSecond: r["download_bps"],
                                  connections: r["connections_max"], destinations: Self.strings(r["destinations"])))
            }
            if !perMinute {
                let rows = try Row.fetchAll(db, sql: "SELECT * FROM samples WHERE container_id = ? AND time >= ? ORDER BY time DESC LIMIT ?",
                                            arguments: [id, t, limit])
                for r in rows.reversed() {
                    let out_: Int? = r["connections_out"], in_: Int? = r["connections_in"]
                    out.append(Sample(time: Date(timeIntervalSince1970: r["time"]), cpuCores: r["cpu_cores"], cpuShare: r["cpu_share"],
                                      memoryBytes: r["memory_bytes"], uploadBytesPerSecond: r["upload_bps"], downloadBytesPerSecond: r["download_bps"],
                                      connections: (out_ ?? 0) + (in_ ?? 0), destinations: Self.strings(r["destinations"])))
                }
            }
            return Array(out.suffix(limit))
        }
    }

    static func strings(_ text: String?) -> [String]? {
        text.flatMap { try? decoder.decode([String].self, from: Data($0.utf8)) }
    }

    /// Alerts exceptions silenced since `since`.
    public func silenced(since: Date? = nil, container: String? = nil) throws(MinewatchError) -> [Silenced] {
        try run("read silenced alerts") { db in
            var (sql, args) = Self.rows("silenced", since: since, container: container)
            sql += " ORDER BY time LIMIT 10000"
            return try Row.fetchAll(db, sql: sql, arguments: StatementArguments(args)).map {
                Silenced(time: Date(timeIntervalSince1970: $0["time"]), exception: $0["exception"], containerID: $0["container_id"],
                         detector: $0["detector"], summary: $0["summary"])
            }
        }
    }

    /// What one container did since `since`: its record, its telemetry (`series`), its alerts
    /// (at most `alertLimit`, the latest) and what exceptions silenced there. The dashboard's
    /// series API and `minewatch history container` both answer with it.
    public struct ContainerHistory: Sendable, Codable {
        public var container: ContainerRecord
        public var since: Date
        public var samples: [Sample]
        public var alerts: [Alert]
        public var silenced: [Silenced]
    }

    public func history(of c: ContainerRecord, since: Date, perMinute: Bool, alertLimit: Int = 10_000) throws(MinewatchError) -> ContainerHistory {
        ContainerHistory(container: c, since: since, samples: try series(container: c.id, since: since, perMinute: perMinute),
                         alerts: try alerts(since: since, container: c.id, limit: alertLimit), silenced: try silenced(since: since, container: c.id))
    }

    /// Row counts per table (for `history` and the tests).
    public func counts() throws(MinewatchError) -> [String: Int] {
        try run("count history") { db in
            var out: [String: Int] = [:]
            for t in ["containers", "alerts", "samples", "minutes", "silenced"] {
                out[t] = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM \(t)") ?? 0
            }
            return out
        }
    }

    /// SQLite's own check of the file ("ok" when sound).
    public func integrityCheck() throws(MinewatchError) -> String {
        try run("check history") { db in try String.fetchAll(db, sql: "PRAGMA integrity_check").joined(separator: "; ") }
    }
}
