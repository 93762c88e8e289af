import Foundation
import MinewatchCore
import MinewatchModel
import MinewatchAnalysis
import MinewatchImage
import MinewatchSignatures

/// What scanning one layer produced. Cached (within a run, and in `--cache DIR`) only under the
/// digests of the bytes that were actually scanned, never under a digest the image claimed.
public struct LayerResult: Sendable, Codable {
    public var findings: [Finding]
    public var changes: LayerChanges
    public var issues: [ScanIssue]
    public var files: Int
    public var bytes: Int64
    /// SHA-256 of the stored and of the uncompressed bytes scanned; nil when they could not be
    /// read to the end (such a result is never cached).
    public var digests: LayerDigests?
}

/// Progress events for a front end (the CLI draws them on stderr when it is a TTY).
public protocol ScanProgress: AnyObject {
    func begin(target: String, totalBytes: Int64?)
    func advance(bytes: Int)
    func end(target: String)
    /// The next target is number `index` (from 0) of `count` (a list of images).
    func list(index: Int, count: Int)
}

extension ScanProgress {
    public func list(index: Int, count: Int) {}
}

public struct ScanOptions: Sendable {
    public var platform: Platform?
    public var limits = DecompressionLimits()
    public var cacheDirectory: String?
    /// Engine API socket for image references; nil means the usual sockets when present.
    public var engineSocket: String?
    /// Plain HTTP to registries (a local registry without TLS).
    public var insecureRegistry = false
    public var credentials: RegistryCredentials?
    /// Most bytes an image exported from the engine may take in the temporary folder.
    public var maxImageSize: Int64 = 64 << 30
    /// Threads that match a root filesystem's files (the walk stays on one): the CPUs this
    /// process may use, at most 8.
    public var threads = ScanOptions.defaultThreads
    public static var defaultThreads: Int { min(max(ProcessInfo.processInfo.activeProcessorCount, 1), 8) }
    public init(platform: Platform? = nil) { self.platform = platform }
}

/// Scans targets (image archives, layouts, folders, files) with the compiled rules.
/// Layers shared between images are scanned once per run (and once ever with a cache folder).
public final class ImageScanner {
    public let rules: CompiledRules
    public let options: ScanOptions
    let analyzer: FileAnalyzer
    var layerCache = LayerResultCache()
    public weak var progress: ScanProgress?
    var buffer: UnsafeMutableRawBufferPointer
    let rulesFingerprint: String

    public init(rules: CompiledRules, options: ScanOptions = ScanOptions()) {
        self.rules = rules
        self.options = options
        self.analyzer = FileAnalyzer(rules: rules)
        self.buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: FileAnalyzer.chunkSize, alignment: 16)
        self.rulesFingerprint = ImageScanner.fingerprint(rules.ruleSet)
    }

    deinit { buffer.deallocate() }

    /// Scans one target: a path, or an image reference (`engine:NAME`, `registry:NAME`, or a
    /// bare NAME: the engine when it has the image, else the registry; see `ImageLookup`). Never
    /// throws: what cannot be read becomes `errors[]`.
    public func scan(target: String) -> [TargetReport] {
        let lookup = ImageLookup(engineSocket: options.engineSocket, insecureRegistry: options.insecureRegistry,
                                 credentials: options.credentials, platform: options.platform, maxImageSize: options.maxImageSize)
        switch lookup.resolve(target) {
        case .path(let path): return scan(path: path)
        case .images(let images, let kind): return images.map { scan(image: $0, target: target, kind: kind) }
        case .unavailable(let problems):
            return [TargetReport(target: target, kind: "image-reference", errors: problems.map { ScanIssue(message: $0) })]
        }
    }

    /// Scans one target path; never throws: what cannot be read becomes `errors[]`.
    public func scan(path: String) -> [TargetReport] {
        let opened: OpenedTarget
        do { opened = try TargetOpener.open(path, platform: options.platform) } catch {
            return [TargetReport(target: path, kind: "unknown", errors: [ScanIssue(message: error.description)])]
        }
        switch opened {
        case .images(let kind, let images):
            return images.enumerated().map { i, img in
                let name = images.count > 1 ? "\(path)#\(i)" : path
                return scan(image: img, target: name, kind: kind)
            }
        case .layerTarball(let source):
            progress?.begin(target: path, totalBytes: source.size)
            defer { progress?.end(target: path) }
            var report = TargetReport(target: path, kind: opened.kind)
            let r = scanLayer(SectionStream(source: source, offset: 0, length: source.size), digest: nil, name: path)
            report.findings = r.findings
            report.errors = r.issues
            report.stats.files = r.files
            report.stats.bytes = r.bytes
            report.stats.layersScanned = 1
            finishImage(&report)
            return [report]
        case .rootfs(let root):
            return [scanRootfs(root, target: path)]
        case .file(let file):
            return [scanFile(file, target: path)]
        }
    }

    public func scan(image: ImageSource, target: String, kind: String) -> TargetReport {
        var report = TargetReport(target: target, kind: kind,
                                  image: ImageInfo(references: image.references, configDigest: image.configDigest,
                                                   layers: image.layers.map(\.digest), manifestDigest: image.manifestDigest))
        progress?.begin(target: target, totalBytes: image.layers.compactMap(\.size).reduce(0, +))
        defer { progress?.end(target: target) }
        report.findings += scanMetadata(image.config)
        report.findings += image.digestMismatches.compactMap(integrityFinding)
        var changes: [LayerChanges] = []
        var layerOf = Array(repeating: -1, count: report.findings.count)  // layer index of each finding (-1: none)
        for layer in image.layers {
            let (result, fromCache) = layerResult(layer, of: image)
            if fromCache { report.stats.layersFromCache += 1 } else { report.stats.layersScanned += 1 }
            changes.append(result.changes)
            report.findings += result.findings
            layerOf += Array(repeating: layer.index, count: result.findings.count)
            let mismatches = Self.layerMismatches(layer, result.digests).compactMap(integrityFinding)
            report.findings += mismatches
            layerOf += Array(repeating: -1, count: mismatches.count)
            report.errors += result.issues.map { var i = $0; i.layer = i.layer ?? layer.digest; return i }
            report.stats.files += result.files
            report.stats.bytes += result.bytes
        }
        let stack = LayerStack(changes: changes)
        for i in report.findings.indices where layerOf[i] >= 0 {
            if stack.isHidden(path: report.findings[i].path, layer: layerOf[i]) { report.findings[i].hidden = true }
        }
        markWhatRuns(&report.findings, runs: image.config.runPaths)
        finishImage(&report)
        return report
    }

    /// One layer's result, from the cache or by scanning. A result known for the digest the layer
    /// claims stands for it only when that is safe: for a content-addressed source (a registry:
    /// blobs are fetched and verified by digest), or after the layer's bytes were hashed (not
    /// scanned) and found to be exactly the bytes the result came from. Whatever is scanned is
    /// cached under the digests of what was read.
    func layerResult(_ layer: LayerDescriptor, of image: ImageSource) -> (LayerResult, fromCache: Bool) {
        let name = "layer \(layer.index) (\(layer.digest))"
        let claimed = layer.blobDigest ?? layer.diffID ?? layer.digest
        if ContentDigest.isVerifiableSHA256(claimed), let cached = layerCache.get(claimed) ?? loadPersisted(claimed),
           let known = cached.digests {
            if image.contentAddressed && known.blob == claimed {
                if let s = layer.size { progress?.advance(bytes: Int(s)) }
                return (cached, true)
            }
            do {
                let stream = CountingProgressStream(try image.openLayer(layer), progress: progress)
                if try LayerWalker(limits: options.limits).digests(stream, name: name) == known { return (cached, true) }
                // The layer is not what the cached result was made from: scan it (read again).
            } catch {
                return (LayerResult(findings: [], changes: LayerChanges(), issues: [ScanIssue(layer: layer.digest, message: error.description)],
                                    files: 0, bytes: 0, digests: nil), false)
            }
        }
        let result: LayerResult
        do {
            let stream = try image.openLayer(layer)
            result = scanLayer(CountingProgressStream(stream, progress: progress), digest: layer.digest, name: name)
        } catch {
            result = LayerResult(findings: [], changes: LayerChanges(),
                                 issues: [ScanIssue(layer: layer.digest, message: error.description)], files: 0, bytes: 0, digests: nil)
        }
        remember(result)
        return (result, false)
    }

    /// Caches a result under the digests of the bytes it was made from (never under a claim).
    func remember(_ result: LayerResult) {
        guard let d = result.digests else { return }
        for key in Set([d.blob, d.content]) {
            layerCache.set(key, result)
            if result.issues.isEmpty { persist(key, result) }
        }
    }

    /// The layer's digest claims that the bytes read do not bear out.
    static func layerMismatches(_ layer: LayerDescriptor, _ digests: LayerDigests?) -> [DigestMismatch] {
        guard let digests else { return [] }
        var out: [DigestMismatch] = []
        if let c = layer.blobDigest, ContentDigest.isVerifiableSHA256(c), c != digests.blob {
            out.append(DigestMismatch(location: "manifest:layers[\(layer.index)]", claimed: c, actual: digests.blob, layer: layer.digest))
        }
        if let c = layer.diffID, ContentDigest.isVerifiableSHA256(c), c != digests.content {
            out.append(DigestMismatch(location: "config:rootfs.diff_ids[\(layer.index)]", claimed: c, actual: digests.content, layer: layer.digest))
        }
        return out
    }

    /// A digest claim that did not hold, as a finding of the rule that reports it (rule data:
    /// `check: digest-mismatch`; none when a rule file disabled it).
    func integrityFinding(_ m: DigestMismatch) -> Finding? {
        guard let rule = rules.ruleSet.checkRule(.digestMismatch) else { return nil }
        return Finding(ruleId: rule.id, severity: rule.severity, family: rule.family, category: rule.category, title: rule.title,
                       path: m.location, layer: m.layer,
                       evidence: [Evidence(kind: .attribute, name: "digest", value: "image claims \(m.claimed) for content \(m.actual)")])
    }

    /// Image-scope correlations (findings stay in scan order: metadata, then layers base first).
    func finishImage(_ report: inout TargetReport) {
        Correlator.apply(rules.ruleSet.correlations.filter { $0.scope == .image }, to: &report.findings)
    }

    /// Findings in the files the image's Entrypoint/Cmd runs (its program, an interpreter's
    /// script) take their rule's `runs:` severity, as the Entrypoint+Cmd text does. Applied after
    /// the layers were scanned, so cached layer results stay independent of the image.
    func markWhatRuns(_ findings: inout [Finding], runs: Set<String>) {
        guard !runs.isEmpty else { return }
        var byID: [String: Rule] = [:]
        for r in rules.ruleSet.rules where r.severityWhenRunning != nil { byID[r.id] = r }
        guard !byID.isEmpty else { return }
        for i in findings.indices where !findings[i].hidden && runs.contains(findings[i].path) {
            guard let r = byID[findings[i].ruleId]?.severityWhenRunning, r != findings[i].severity else { continue }
            findings[i].note = "\(r) rather than \(findings[i].severity): the image's entrypoint runs it"
            findings[i].severity = r
        }
    }

    /// Entrypoint, Cmd, Env, Labels and history lines, scanned as text.
    public func scanMetadata(_ c: ImageConfigInfo) -> [Finding] {
        var out: [Finding] = []
        let command = (c.entrypoint + c.cmd).joined(separator: " ")
        if !command.isEmpty { out += analyzer.analyze(text: command, path: "config:Entrypoint+Cmd") }
        if !c.env.isEmpty { out += analyzer.analyze(text: c.env.joined(separator: "\n"), path: "config:Env") }
        if !c.labels.isEmpty {
            let text = c.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "\n")
            out += analyzer.analyze(text: text, path: "config:Labels")
        }
        for (i, h) in c.history.enumerated() where !h.isEmpty {
            out += analyzer.analyze(text: h, path: "history[\(i)]")
        }
        return out
    }

    func scanLayer(_ raw: ByteStream, digest: String?, name: String) -> LayerResult {
        var findings: [Finding] = []
        var issues: [ScanIssue] = []
        var files = 0
        let walker = LayerWalker(limits: options.limits)
        let buf = buffer
        let walked = walker.walk(raw, name: name, visit: { (v) throws(MinewatchError) -> Void in
            files += 1
            let r = try analyzer.analyze(path: v.entry.path, layer: digest, read: v.read, buffer: buf)
            findings += r.findings
        }, issue: { issues.append($0) })
        return LayerResult(findings: findings, changes: walked.changes, issues: issues, files: files, bytes: walked.bytes,
                           digests: walked.digests)
    }

    func scanRootfs(_ root: String, target: String) -> TargetReport {
        var report = TargetReport(target: target, kind: "rootfs")
        progress?.begin(target: target, totalBytes: nil)
        defer { progress?.end(target: target) }
        let walker = RootfsWalker(root: root)
        if options.threads > 1 {
            do throws(MinewatchError) {
                let out = try ParallelFileScan(analyzer: analyzer, workers: options.threads)
                    .run(walker, progress: progress.map { p in { [weak p] n in p?.advance(bytes: n) } }, issue: { report.errors.append($0) })
                report.stats.files += out.files
                report.stats.bytes += out.bytes
                report.findings += out.findings
                report.errors += out.errors
            } catch {
                report.errors.append(ScanIssue(message: error.description))
            }
            finishImage(&report)
            return report
        }
        let buf = buffer
        do throws(MinewatchError) {
            try walker.walk(visit: { path, handle, _ in
                report.stats.files += 1
                do throws(MinewatchError) {
                    var offset: Int64 = 0
                    let r = try analyzer.analyze(path: path, layer: nil, read: { (b) throws(MinewatchError) -> Int in
                        let n = try handle.pread(into: b, at: offset)
                        offset += Int64(n)
                        return n
                    }, buffer: buf, onBytes: { [weak progress] n in progress?.advance(bytes: n) })
                    report.findings += r.findings
                    report.stats.bytes += r.bytes
                } catch {
                    report.errors.append(ScanIssue(path: path, message: error.description))
                }
            }, issue: { report.errors.append($0) })
        } catch {
            report.errors.append(ScanIssue(message: error.description))
        }
        finishImage(&report)
        return report
    }

    func scanFile(_ file: String, target: String) -> TargetReport {
        var report = TargetReport(target: target, kind: "file")
        do {
            let h = try FileHandleFD.open(file)
            let size = Int64(try h.stat().st_size)
            progress?.begin(target: target, totalBytes: size)
            defer { progress?.end(target: target) }
            let name = URL(fileURLWithPath: file).lastPathComponent
            let r = try analyzer.analyze(path: "/" + name, layer: nil, read: { (b) throws(MinewatchError) -> Int in
                try h.read(into: b)
            }, buffer: buffer, onBytes: { [weak progress] n in progress?.advance(bytes: n) })
            report.findings = r.findings
            report.stats.files = 1
            report.stats.bytes = r.bytes
        } catch {
            report.errors.append(ScanIssue(message: error.description))
        }
        finishImage(&report)
        return report
    }

    // MARK: persistent cache (--cache DIR): one JSON file per layer digest and rule set.

    /// Version of the cache entries' shape; part of every cache file name.
    static let cacheFormat = "3"

    /// The persistent cache's key for a rule set: the SHA-256 of the version, the entries' shape and
    /// the canonical encoding of every rule and correlation (any edited field misses the cache).
    static func fingerprint(_ set: RuleSet) -> String {
        SHA256Digest.hex(Array("\(MinewatchVersion.current)\n\(cacheFormat)\n".utf8) + set.canonicalEncoding())
    }

    func cachePath(_ digest: String) -> String? {
        guard let dir = options.cacheDirectory else { return nil }
        let safe = digest.replacingOccurrences(of: ":", with: "-").filter { $0.isLetter || $0.isNumber || $0 == "-" }
        guard safe.count >= 16 else { return nil }
        return "\(dir)/\(safe)-\(rulesFingerprint).json"
    }

    func loadPersisted(_ digest: String) -> LayerResult? {
        guard let p = cachePath(digest), let data = FileManager.default.contents(atPath: p) else { return nil }
        return try? JSONDecoder().decode(LayerResult.self, from: data)
    }

    func persist(_ digest: String, _ r: LayerResult) {
        guard let p = cachePath(digest), let dir = options.cacheDirectory else { return }
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.userInfo[Finding.internalFieldsKey] = true
        if let data = try? encoder.encode(r) { try? data.write(to: URL(fileURLWithPath: p), options: .atomic) }
    }
}

/// Reports compressed bytes read from a layer as progress.
final class CountingProgressStream: ByteStream {
    let inner: ByteStream
    weak var progress: ScanProgress?
    init(_ inner: ByteStream, progress: ScanProgress?) {
        self.inner = inner
        self.progress = progress
    }
    func read(into buffer: UnsafeMutableRawBufferPointer) throws(MinewatchError) -> Int {
        let n = try inner.read(into: buffer)
        progress?.advance(bytes: n)
        return n
    }
}
