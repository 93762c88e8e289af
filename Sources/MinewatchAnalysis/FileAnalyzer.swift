import MinewatchCore
import MinewatchModel
import MinewatchSignatures
import MinewatchUnpack

/// How packed executables are unpacked while they are analysed.
public struct UnpackOptions: Sendable {
    /// Largest packed file kept in memory for unpacking (UPX output is rarely over a few MiB).
    public var maxPacked = 64 << 20
    /// Most bytes one file may unpack to, and the largest expansion ratio past 64 MiB (as for layers).
    public var maxOutput: Int64 = 32 << 30
    public var maxRatio: Int64 = 250
    public init() {}
}

/// Turns the rule matches of one file into findings: applies benign-context suppression and
/// file-scope correlations, and scans what a packed executable unpacks to with every rule.
/// Pure logic over bytes handed to it.
public struct FileAnalyzer: Sendable {
    public let rules: CompiledRules
    public var unpack: UnpackOptions
    public static let chunkSize = 256 * 1024
    /// Bytes of an ELF file's start that decide whether it is kept for unpacking.
    static let sniffBytes = 4096

    public init(rules: CompiledRules, unpack: UnpackOptions = UnpackOptions()) {
        self.rules = rules
        self.unpack = unpack
    }

    /// Scans content read through `read` (returns 0 at the end). An ELF file whose first bytes
    /// look UPX-packed is also kept (bounded) while it streams past, then unpacked and scanned.
    /// `running`: the file is what a process runs (watch's executables and scripts), so the
    /// rules' `runs:` severity applies, as it does for manifests.
    public func analyze(
        path: String, layer: String?, fileType: FileType? = nil, running: Bool = false,
        read: (UnsafeMutableRawBufferPointer) throws(MinewatchError) -> Int,
        buffer: UnsafeMutableRawBufferPointer,
        onBytes: (Int) -> Void = { _ in }
    ) throws(MinewatchError) -> (findings: [Finding], bytes: Int64) {
        var m = FileMatcher(rules: rules, path: path, fileType: fileType)
        var kept: [UInt8]?
        var decided = false
        var tooLarge = false
        var overlay: OverlayMeter?
        while true {
            let n = try read(buffer)
            if n == 0 { break }
            let chunk = UnsafeRawBufferPointer(rebasing: buffer[0..<n])
            if !decided && kept == nil && m.bytesSeen == 0 {
                if n >= 4 && chunk[0] == 0x7f && chunk[1] == 0x45 && chunk[2] == 0x4c && chunk[3] == 0x46 {
                    kept = []
                    if fileType == nil, let end = ELFExtent.end(chunk) { overlay = OverlayMeter(imageEnd: end) }
                } else {
                    decided = true
                }
            }
            overlay?.feed(chunk, at: m.bytesSeen)
            if let count = kept?.count {
                if count + n > unpack.maxPacked {
                    kept = nil
                    tooLarge = decided
                    decided = true
                } else {
                    kept?.append(contentsOf: chunk)
                    if !decided && count + n >= Self.sniffBytes {
                        decided = true
                        if kept?.withUnsafeBytes({ UPX.looksPacked($0) }) != true { kept = nil }
                    }
                }
            }
            m.feed(chunk)
            onBytes(n)
        }
        if !decided, let k = kept, !(k.withUnsafeBytes { UPX.looksPacked($0) }) { kept = nil }
        let type = m.fileType ?? .text
        var out = findings(from: m.finish(), path: path, layer: layer, fileType: type, running: running || type == .manifest)
        if let k = kept {
            out = k.withUnsafeBytes { unpacked($0, packedFindings: out, path: path, layer: layer, running: running) }
        } else if tooLarge {
            out = noteUnreadable(out, path: path, layer: layer, reason: "packed file larger than \(unpack.maxPacked) bytes: not unpacked")
        }
        if let o = overlay, !out.contains(where: { $0.category == "packed-executable" }), let why = o.verdict(fileSize: m.bytesSeen),
           let rule = rules.ruleSet.checkRule(.packedOverlay) {
            out.append(Finding(ruleId: rule.id, severity: rule.severity, family: rule.family, category: rule.category, title: rule.title,
                               path: path, layer: layer, evidence: [Evidence(kind: .attribute, name: "overlay", value: why, offset: o.imageEnd)],
                               technique: rule.technique))
        }
        return (out, m.bytesSeen)
    }

    /// Unpacks a packed executable and scans the result with every content rule. Findings of the
    /// unpacked program say so in their evidence; a file whose UPX headers were wiped gets the
    /// `packed-tampered` finding; one that cannot be unpacked keeps a low finding with the reason.
    func unpacked(_ file: UnsafeRawBufferPointer, packedFindings: [Finding], path: String, layer: String?, running: Bool) -> [Finding] {
        let cap = min(unpack.maxOutput, max(64 << 20, Int64(file.count) * unpack.maxRatio))
        let limits = UPX.Limits(maxBlock: 128 << 20, maxOutput: cap)
        let layout: UPX.Layout
        var m = FileMatcher(rules: rules, path: path, fileType: .elf)
        do throws(UPX.Failure) {
            layout = try UPX.locate(file, limits: limits)
            try UPX.decode(file, layout, limits: limits) { _, bytes in m.feed(bytes) }
        } catch {
            return noteUnreadable(packedFindings, path: path, layer: layer, reason: "UPX blocks not unpacked: \(error)")
        }
        let note = Evidence(kind: .attribute, name: "unpacked",
                            value: "UPX-packed (\(layout.method), \(Self.size(layout.packedSize)) -> \(Self.size(layout.unpackedSize)), \(layout.architecture))")
        var out = packedFindings.map { f -> Finding in
            guard f.category == "packed-executable" else { return f }
            var f = f
            f.evidence.insert(note, at: 0)
            return f
        }
        let seen = Set(packedFindings.map(\.ruleId))
        for var f in findings(from: m.finish(), path: path, layer: layer, fileType: .elf, running: running) where !seen.contains(f.ruleId) {
            // Names and paths were judged on the packed file already.
            guard let rule = rules.ruleSet.rules.first(where: { $0.id == f.ruleId }), !(rule.strings.isEmpty && rule.wallets.isEmpty) else { continue }
            f.evidence.insert(note, at: 0)
            out.append(f)
        }
        if !layout.headersIntact, let rule = rules.ruleSet.checkRule(.packedTampered) {
            out.append(Finding(ruleId: rule.id, severity: rule.severity, family: rule.family, category: rule.category, title: rule.title,
                               path: path, layer: layer, evidence: [note, Evidence(kind: .attribute, name: "tampered",
                               value: "UPX's magic and headers (l_info, PackHeader) are missing, so upx -d refuses the file; its \(layout.extents.count) blocks were found by \(layout.foundBySearch ? "searching for valid block chains" : "the program headers the UPX stub needs")")],
                               technique: rule.technique))
        }
        return out
    }

    /// A packed file that could not be unpacked: the reason joins its packed-executable finding,
    /// or becomes one (`packed-unreadable`) when no rule recognised the packer.
    func noteUnreadable(_ findings: [Finding], path: String, layer: String?, reason: String) -> [Finding] {
        let why = Evidence(kind: .attribute, name: "not unpacked", value: reason)
        var out = findings
        if let i = out.firstIndex(where: { $0.category == "packed-executable" }) {
            out[i].evidence.append(why)
            return out
        }
        guard let rule = rules.ruleSet.checkRule(.packedUnreadable) else { return out }
        out.append(Finding(ruleId: rule.id, severity: rule.severity, family: rule.family, category: rule.category, title: rule.title,
                           path: path, layer: layer, evidence: [why], technique: rule.technique))
        return out
    }

    static func size(_ n: Int) -> String {
        let mib = 1 << 20, kib = 1 << 10
        if n >= mib { return "\(oneDecimal(Double(n) / Double(mib))) MiB" }
        if n >= kib { return "\(oneDecimal(Double(n) / Double(kib))) KiB" }
        return "\(n) bytes"
    }

    static func oneDecimal(_ v: Double) -> String {
        let tenths = Int((v * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)"
    }

    /// Scans a string (image metadata) as one file.
    public func analyze(text: String, path: String, fileType: FileType = .metadata) -> [Finding] {
        var m = FileMatcher(rules: rules, path: path, fileType: fileType)
        var bytes = Array(text.utf8)
        bytes.withUnsafeMutableBytes { b in m.feed(UnsafeRawBufferPointer(b)) }
        bytes.removeAll()
        return findings(from: m.finish(), path: path, layer: nil, fileType: fileType,
                        running: RuleLoader.describesWhatRuns(path: path, fileType: fileType))
    }

    func findings(from matches: [RuleMatch], path: String, layer: String?, fileType: FileType, running: Bool) -> [Finding] {
        // Benign context (a rule file, documentation) caps the rest; never for executables.
        let contexts = fileType == .elf ? [] : matches.filter { $0.rule.suppressTo != nil }
        let cap = contexts.compactMap(\.rule.suppressTo).min()
        var out: [Finding] = []
        for m in matches where m.rule.suppressTo == nil {
            let evidence = Self.dedupe(m.evidence)
            var f = Finding(ruleId: m.rule.id, severity: m.rule.severity, family: m.rule.family, category: m.rule.category,
                            title: m.rule.title, path: path, layer: layer, evidence: evidence,
                            technique: m.rule.technique, line: evidence.compactMap(\.line).min())
            if running, let r = m.rule.severityWhenRunning, r != f.severity {
                f.note = "\(r) rather than \(f.severity): \(fileType == .manifest ? "the manifest runs it" : "it is what runs")"
                f.severity = r
            }
            if let cap, f.severity > cap {
                f.cappedFrom = f.severity
                f.note = "capped at \(cap) from \(f.severity): file is a \(contexts.map { "\($0.rule.title) (\($0.rule.id))" }.joined(separator: ", "))"
                f.severity = cap
            }
            out.append(f)
        }
        Correlator.apply(rules.ruleSet.correlations.filter { $0.scope == .file }, to: &out)
        return out
    }

    static func dedupe(_ ev: [Evidence]) -> [Evidence] {
        var seen = Set<Evidence>()
        return ev.filter { seen.insert($0).inserted }
    }
}

/// Raises findings when the other evidence a correlation asks for is present in the same scope.
/// Findings that benign context capped (`cappedFrom`) are neither raised nor partners.
public enum Correlator {
    public static func apply(_ correlations: [Correlation], to findings: inout [Finding]) {
        for c in correlations {
            // Decide on the severities before this correlation changes any of them.
            let before = findings
            for i in findings.indices where findings[i].cappedFrom == nil && c.targetCategories.contains(findings[i].category) {
                let partners = before.indices.filter { j in
                    j != i && before[j].cappedFrom == nil && before[j].category != before[i].category
                        && c.withCategories.contains(before[j].category) && before[j].severity >= c.withMinSeverity
                }
                guard !partners.isEmpty, findings[i].severity < c.raiseTo else { continue }
                let from = findings[i].severity
                findings[i].severity = c.raiseTo
                let others = partners.prefix(3).map { j -> String in
                    before[j].path == findings[i].path ? before[j].ruleId : "\(before[j].ruleId) at \(before[j].path)"
                }
                let note = "raised from \(from) by \(c.id): \(c.title) (\(others.joined(separator: ", ")))"
                findings[i].note = findings[i].note.map { "\($0); \(note)" } ?? note
            }
        }
    }
}

/// Where an ELF file's described content ends: the furthest of its segments' file ranges and its
/// section header table. Bytes past that are an overlay. Read from the file's first bytes only
/// (the headers must be there); nil when they are not, or the file is not 32/64-bit little-endian ELF.
enum ELFExtent {
    static func end(_ b: UnsafeRawBufferPointer) -> Int64? {
        guard b.count >= 64, b[0] == 0x7f, b[1] == 0x45, b[2] == 0x4c, b[3] == 0x46, b[5] == 1 else { return nil }
        let is64 = b[4] == 2
        guard is64 || b[4] == 1 else { return nil }
        func u16(_ o: Int) -> Int { Int(b[o]) | Int(b[o + 1]) << 8 }
        func u32(_ o: Int) -> Int64 { Int64(b[o]) | Int64(b[o + 1]) << 8 | Int64(b[o + 2]) << 16 | Int64(b[o + 3]) << 24 }
        func u64(_ o: Int) -> Int64 {
            var v: UInt64 = 0
            for k in 0..<8 { v |= UInt64(b[o + k]) << (8 * UInt64(k)) }
            return v > UInt64(Int64.max) ? -1 : Int64(v)
        }
        let phoff = is64 ? u64(32) : u32(28), shoff = is64 ? u64(40) : u32(32)
        let phentsize = u16(is64 ? 54 : 42), phnum = u16(is64 ? 56 : 44)
        let shentsize = u16(is64 ? 58 : 46), shnum = u16(is64 ? 60 : 48)
        guard phoff >= 0, shoff >= 0, phentsize >= (is64 ? 56 : 32), phnum > 0 else { return nil }
        let table = phoff + Int64(phentsize) * Int64(phnum)
        guard table <= Int64(b.count) else { return nil }
        var end = max(table, shoff > 0 ? shoff + Int64(shentsize) * Int64(shnum) : 0)
        for i in 0..<phnum {
            let e = Int(phoff) + i * phentsize
            let off = is64 ? u64(e + 8) : u32(e + 4), size = is64 ? u64(e + 32) : u32(e + 16)
            guard off >= 0, size >= 0, off <= Int64.max - size else { return nil }
            end = max(end, off + size)
        }
        return end
    }
}

/// The bytes of an ELF file past `imageEnd`: how many, and a histogram of up to 4 MiB of them.
struct OverlayMeter {
    let imageEnd: Int64
    var histogram = ByteHistogram()
    static let minimum = 64 << 10
    static let sample = 4 << 20

    init(imageEnd: Int64) { self.imageEnd = imageEnd }

    mutating func feed(_ chunk: UnsafeRawBufferPointer, at offset: Int64) {
        let end = offset + Int64(chunk.count)
        guard end > imageEnd, histogram.total < Self.sample else { return }
        let from = Int(max(0, imageEnd - offset))
        let upTo = min(chunk.count, from + Self.sample - histogram.total)
        histogram.add(UnsafeRawBufferPointer(rebasing: chunk[from..<upTo]))
    }

    /// Why the overlay looks like a packed payload, or nil: 64 KiB or more, a quarter of the file
    /// or more, and 7.9 bits of entropy a byte or more (encrypted or compressed).
    func verdict(fileSize: Int64) -> String? {
        let size = fileSize - imageEnd
        guard size >= Int64(Self.minimum), size * 4 >= fileSize, histogram.total > 0 else { return nil }
        let entropy = histogram.entropy
        guard entropy >= 7.9 else { return nil }
        let pct = Int((Double(size) * 100 / Double(fileSize)).rounded())
        return "\(FileAnalyzer.size(Int(size))) (\(pct)% of the file) past offset \(imageEnd), where its headers end, at \(FileAnalyzer.oneDecimal(entropy)) bits of entropy a byte"
    }
}
