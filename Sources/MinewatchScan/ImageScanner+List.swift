import MinewatchCore
import MinewatchImage
import MinewatchModel

extension ImageScanner {
    /// Scans every target in order, as `scan(target:)` does, one report per image. Two targets
    /// that are the same image (two tags of one manifest in one repository) make one report that
    /// lists both references: the second costs its manifest and config, its layers come from the
    /// run's layer cache. `progress` hears each target's place in the list.
    public func scan(targets: [String]) -> [TargetReport] {
        var reports: [TargetReport] = []
        var byImage: [String: Int] = [:]
        for (i, t) in targets.enumerated() {
            progress?.list(index: i, count: targets.count)
            for r in scan(target: t) {
                if let key = Self.imageKey(r), let at = byImage[key], var image = reports[at].image {
                    for ref in r.image?.references ?? [] where !image.references.contains(ref) { image.references.append(ref) }
                    reports[at].image = image
                    continue
                }
                if let key = Self.imageKey(r) { byImage[key] = reports.count }
                reports.append(r)
            }
        }
        return reports
    }

    /// `registry/repository@manifest-digest` of a report read cleanly from a registry (nil
    /// otherwise: reports with errors or from other sources are never merged).
    static func imageKey(_ r: TargetReport) -> String? {
        guard r.kind == "registry-image", r.errors.isEmpty, let image = r.image, let digest = image.manifestDigest,
              let name = image.references.first, let ref = ImageReference(parsing: name) else { return nil }
        return "\(ref.registry)/\(ref.repository)@\(digest)"
    }

    /// Layers scanned and layers answered from the run's cache, for a list's summary line.
    public var layerCacheSize: (entries: Int, evicted: Int) { (layerCache.count, layerCache.evicted) }
}
