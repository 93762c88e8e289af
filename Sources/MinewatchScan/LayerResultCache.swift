import MinewatchImage

/// The layer results of one run, by digest, so a layer shared by many images is scanned once.
/// Bounded for whole-registry scans: at most `maxEntries` results and `maxPaths` remembered paths
/// (a result's whiteouts and written paths dominate its size); past either, the least recently
/// used results go, and a layer seen again after that is scanned again (or read from `--cache`).
struct LayerResultCache {
    var maxEntries: Int
    var maxPaths: Int
    private var entries: [String: (result: LayerResult, used: UInt64, paths: Int)] = [:]
    private var tick: UInt64 = 0
    private(set) var paths = 0
    private(set) var evicted = 0

    init(maxEntries: Int = 4096, maxPaths: Int = 2_000_000) {
        self.maxEntries = maxEntries
        self.maxPaths = maxPaths
    }

    var count: Int { entries.count }

    mutating func get(_ digest: String) -> LayerResult? {
        guard var e = entries[digest] else { return nil }
        tick += 1
        e.used = tick
        entries[digest] = e
        return e.result
    }

    mutating func set(_ digest: String, _ result: LayerResult) {
        tick += 1
        let size = Self.paths(result)
        if let old = entries[digest] { paths -= old.paths }
        entries[digest] = (result, tick, size)
        paths += size
        while entries.count > 1 && (entries.count > maxEntries || paths > maxPaths) {
            guard let oldest = entries.min(by: { $0.value.used < $1.value.used })?.key, oldest != digest,
                  let gone = entries.removeValue(forKey: oldest) else { break }
            paths -= gone.paths
            evicted += 1
        }
    }

    static func paths(_ r: LayerResult) -> Int {
        r.changes.written.count + r.changes.whiteouts.count + r.changes.opaqueDirs.count + r.findings.count + 1
    }
}
