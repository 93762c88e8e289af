import MinewatchCore
import MinewatchModel
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A rule that matched one file, with the evidence behind it.
public struct RuleMatch: Sendable {
    public var rule: Rule
    public var evidence: [Evidence]
}

/// Rules compiled for scanning: every string of every rule in one `PatternMatcher`.
public final class CompiledRules: Sendable {
    public let ruleSet: RuleSet
    let matcher: PatternMatcher
    /// For each pattern: which rule and which of its strings.
    let ownerRule: [Int32]
    let ownerString: [Int32]
    /// First global pattern index of each rule.
    let ruleBase: [Int]
    let walletRules: [Int]
    let nameRules: [Int]
    let captureKinds: [Capture?]
    /// Patterns whose match offsets a `within` condition needs.
    let keepsOffsets: [Bool]

    public init(_ ruleSet: RuleSet) {
        self.ruleSet = ruleSet
        var patterns: [PatternMatcher.Pattern] = []
        var oR: [Int32] = []
        var oS: [Int32] = []
        var base: [Int] = []
        var caps: [Capture?] = []
        var keeps: [Bool] = []
        for (ri, r) in ruleSet.rules.enumerated() {
            base.append(patterns.count)
            let windowed = r.condition?.windowedStrings ?? []
            for (si, s) in r.strings.enumerated() {
                patterns.append(.init(bytes: s.bytes, nocase: s.nocase))
                oR.append(Int32(ri))
                oS.append(Int32(si))
                caps.append(s.capture)
                keeps.append(windowed.contains(si))
            }
        }
        keepsOffsets = keeps
        matcher = PatternMatcher(patterns: patterns)
        ownerRule = oR
        ownerString = oS
        ruleBase = base
        captureKinds = caps
        walletRules = ruleSet.rules.indices.filter { !ruleSet.rules[$0].wallets.isEmpty }
        nameRules = ruleSet.rules.indices.filter { !ruleSet.rules[$0].names.isEmpty }
    }

    public var patternCount: Int { matcher.patterns.count }
    /// The shared matcher, for the benchmark tool.
    public var matcherForBenchmark: PatternMatcher { matcher }

    /// Decide the file type from the first bytes of content.
    public static func sniff(_ head: UnsafeRawBufferPointer) -> FileType {
        if head.count >= 4, head[0] == 0x7f, head[1] == 0x45, head[2] == 0x4c, head[3] == 0x46 { return .elf }
        let n = min(head.count, 4096)
        var printable = 0
        for i in 0..<n {
            let b = head[i]
            if b == 0 { return .binary }
            if b >= 0x20 || b == 0x09 || b == 0x0a || b == 0x0d || b >= 0x80 { printable += 1 }
        }
        if n == 0 || printable * 100 >= n * 95 {
            if n >= 2, head[0] == UInt8(ascii: "#"), head[1] == UInt8(ascii: "!") { return .script }
            if ManifestKind.detect(head) != nil { return .manifest }
            return .text
        }
        return .binary
    }
}

/// Matching one file (or one metadata string): feed its content chunk by chunk, then `finish`.
public struct FileMatcher: Sendable {
    public let rules: CompiledRules
    public let path: String
    public private(set) var fileType: FileType?
    var stream = PatternMatcher.Stream()
    var wallets = WalletScanner()
    var walletsConfigured = false
    /// First offset and count per pattern that matched.
    var firstOffset: [Int32: Int64] = [:]
    var hitCount: [Int32: Int] = [:]
    /// Start offsets of the first matches of patterns a `within` condition needs.
    var offsets: [Int32: [Int64]] = [:]
    static let maxOffsetsPerPattern = 256
    var captures: [Int32: [String]] = [:]
    var openCaptures: [(pattern: Int32, bytes: [UInt8])] = []
    public private(set) var bytesSeen: Int64 = 0

    static let maxCaptureLength = 200
    static let maxCapturesPerString = 5
    static let urlChars: [Bool] = (0..<256).map { (b: Int) -> Bool in
        let isDigit = b >= 48 && b <= 57
        let isLetter = (b >= 65 && b <= 90) || (b >= 97 && b <= 122)
        if isDigit || isLetter { return true }
        return "-._~:/?#[]@!$&*+,;=%".utf8.contains(UInt8(b))
    }

    /// Bytes a `value` capture takes: printable ASCII except spaces, quotes and separators.
    static let valueChars: [Bool] = (0..<256).map { (b: Int) -> Bool in
        b > 0x20 && b < 0x7f && !"\"'`,;<>()[]{}|\\".utf8.contains(UInt8(b))
    }

    static func captureChars(_ c: Capture?) -> [Bool] { c == .value ? valueChars : urlChars }

    /// Offsets of the line breaks seen, for text files up to `lineIndexLimit` bytes.
    var newlines: [Int64] = []
    var indexLines = true
    public static let lineIndexLimit: Int64 = 4 << 20

    public init(rules: CompiledRules, path: String, fileType: FileType? = nil) {
        self.rules = rules
        self.path = path
        self.fileType = fileType
    }

    public mutating func feed(_ chunk: UnsafeRawBufferPointer) {
        // Both passes (patterns, wallets) over the same 32 KiB block while it is in L1.
        let block = 32 * 1024
        if chunk.count > block {
            var i = 0
            while i < chunk.count {
                let e = min(i + block, chunk.count)
                feedBlock(UnsafeRawBufferPointer(rebasing: chunk[i..<e]))
                i = e
            }
        } else {
            feedBlock(chunk)
        }
    }

    mutating func feedBlock(_ chunk: UnsafeRawBufferPointer) {
        if chunk.isEmpty { return }
        if fileType == nil { fileType = CompiledRules.sniff(chunk) }
        let chunkStart = stream.position
        // Continue captures left open by the previous chunk.
        if !openCaptures.isEmpty { extendCaptures(chunk) }
        var newMatches: [(Int32, Int64)] = []
        // Move state into locals so the match callback does not capture `self`.
        var s = PatternMatcher.Stream()
        var hits: [Int32: Int] = [:]
        var first: [Int32: Int64] = [:]
        var kept: [Int32: [Int64]] = [:]
        swap(&s, &stream)
        swap(&hits, &hitCount)
        swap(&first, &firstOffset)
        swap(&kept, &offsets)
        let captureKinds = rules.captureKinds
        let keepsOffsets = rules.keepsOffsets
        let capturedCounts = captures.mapValues(\.count)
        rules.matcher.feed(&s, chunk) { pi, offset in
            let p = Int32(pi)
            if let c = hits[p] {
                hits[p] = c + 1
            } else {
                hits[p] = 1
                first[p] = offset
            }
            if keepsOffsets[pi], (hits[p] ?? 0) <= Self.maxOffsetsPerPattern { kept[p, default: []].append(offset) }
            if captureKinds[pi] != nil, (capturedCounts[p] ?? 0) < Self.maxCapturesPerString, newMatches.count < 64 {
                newMatches.append((p, offset))
            }
        }
        swap(&s, &stream)
        swap(&hits, &hitCount)
        swap(&first, &firstOffset)
        swap(&kept, &offsets)
        for (p, offset) in newMatches {
            let len = rules.matcher.patterns[Int(p)].bytes.count
            let endLocal = Int(offset - chunkStart) + len   // > 0: matches are reported where they end
            var bytes = rules.matcher.patterns[Int(p)].bytes
            var j = endLocal
            let chars = Self.captureChars(captureKinds[Int(p)])
            while j < chunk.count, bytes.count < Self.maxCaptureLength, chars[Int(chunk[j])] {
                bytes.append(chunk[j])
                j += 1
            }
            if j == chunk.count && bytes.count < Self.maxCaptureLength {
                openCaptures.append((p, bytes))
            } else {
                closeCapture(p, bytes)
            }
        }
        if !walletsConfigured {
            walletsConfigured = true
            let binary = fileType == .elf || fileType == .binary
            if binary { wallets = WalletScanner(binary: true) }
        }
        wallets.feed(chunk)
        if indexLines {
            if fileType == .elf || fileType == .binary || fileType == .metadata || bytesSeen + Int64(chunk.count) > Self.lineIndexLimit {
                indexLines = false
                newlines = []
            } else {
                for i in 0..<chunk.count where chunk[i] == 0x0a { newlines.append(bytesSeen + Int64(i)) }
            }
        }
        bytesSeen += Int64(chunk.count)
    }

    /// The 1-based line of `offset` in a text file; nil for binary or large files.
    public func line(at offset: Int64) -> Int? {
        guard indexLines else { return nil }
        var lo = 0, hi = newlines.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if newlines[mid] < offset { lo = mid + 1 } else { hi = mid }
        }
        return lo + 1
    }

    mutating func extendCaptures(_ chunk: UnsafeRawBufferPointer) {
        var still: [(pattern: Int32, bytes: [UInt8])] = []
        for var c in openCaptures {
            var j = 0
            let chars = Self.captureChars(rules.captureKinds[Int(c.pattern)])
            while j < chunk.count, c.bytes.count < Self.maxCaptureLength, chars[Int(chunk[j])] {
                c.bytes.append(chunk[j])
                j += 1
            }
            if j == chunk.count && c.bytes.count < Self.maxCaptureLength { still.append(c) } else { closeCapture(c.pattern, c.bytes) }
        }
        openCaptures = still
    }

    mutating func closeCapture(_ p: Int32, _ bytes: [UInt8]) {
        var s = String(decoding: bytes, as: UTF8.self)
        while let last = s.last, ".,;:/".contains(last) && s.count > 1 { s.removeLast() }
        if !(captures[p]?.contains(s) ?? false) { captures[p, default: []].append(s) }
    }

    /// The rules that matched, in rule order, each with its evidence. Wallets found in the
    /// file are attached to every match so a responder sees them next to the family.
    public mutating func finish() -> [RuleMatch] {
        for c in openCaptures { closeCapture(c.pattern, c.bytes) }
        openCaptures = []
        wallets.finish()
        let type = fileType ?? .text
        let publicWallets = rules.ruleSet.publicWallets
        let found = wallets.found.filter { !publicWallets.contains($0.address) }
        let walletEvidence = found.map {
            Evidence(kind: .wallet, name: $0.kind.currency, value: $0.address, offset: $0.offset, line: line(at: $0.offset))
        }
        let foundCurrencies = Set(found.map(\.kind.currency))
        var matchedRules = Set<Int>()
        for p in hitCount.keys { matchedRules.insert(Int(rules.ownerRule[Int(p)])) }
        let baseName = (path.split(separator: "/").last.map(String.init) ?? path).lowercased()
        for ri in rules.nameRules where rules.ruleSet.rules[ri].names.contains(baseName) { matchedRules.insert(ri) }
        for ri in rules.walletRules where !rules.ruleSet.rules[ri].wallets.isDisjoint(with: foundCurrencies) {
            matchedRules.insert(ri)
        }
        // Path-only rules (documentation, rule-file locations).
        for (ri, r) in rules.ruleSet.rules.enumerated() where r.strings.isEmpty && r.names.isEmpty && r.wallets.isEmpty && r.check == nil && !r.domainsOnly {
            matchedRules.insert(ri)
        }
        var out: [RuleMatch] = []
        for ri in matchedRules.sorted() {
            let rule = rules.ruleSet.rules[ri]
            if !rule.fileTypes.isEmpty && !Self.applies(rule.fileTypes, to: type) { continue }
            if let max = rule.maxSize, bytesSeen > max { continue }
            if !rule.paths.isEmpty && !rule.paths.contains(where: { fnmatch($0, path, 0) == 0 }) { continue }
            if !rule.names.isEmpty && !rule.names.contains(baseName) { continue }
            var ev: [Evidence] = []
            if let cond = rule.condition {
                let base = rules.ruleBase[ri]
                let matched = { (si: Int) in hitCount[Int32(base + si)] != nil }
                let at = { (si: Int) in offsets[Int32(base + si)] ?? [] }
                if !cond.evaluate(matched, offsets: at) { continue }
                for w in cond.matchedWindows(matched, offsets: at) {
                    ev.append(Evidence(kind: .attribute, name: "window", value: "\(w.size) bytes from offset \(w.start)", offset: w.start))
                }
                for (si, s) in rule.strings.enumerated() {
                    let p = Int32(base + si)
                    guard let off = firstOffset[p] else { continue }
                    if let caps = captures[p], !caps.isEmpty {
                        let kind: Evidence.Kind = s.capture == .value ? .attribute : .pool
                        for c in caps { ev.append(Evidence(kind: kind, name: s.id, value: c, offset: off, line: line(at: off))) }
                    } else {
                        ev.append(Evidence(kind: .signature, name: s.id, value: Self.printable(s.bytes), offset: off, line: line(at: off)))
                    }
                }
            }
            if !rule.names.isEmpty { ev.append(Evidence(kind: .attribute, name: "name", value: baseName)) }
            if !rule.wallets.isEmpty {
                ev.append(contentsOf: walletEvidence.filter { rule.wallets.contains($0.name) })
            } else {
                ev.append(contentsOf: walletEvidence)
            }
            out.append(RuleMatch(rule: rule, evidence: ev))
        }
        return out
    }

    /// A manifest is text and its commands are command lines: rules for text or metadata apply.
    static func applies(_ types: Set<FileType>, to type: FileType) -> Bool {
        types.contains(type) || (type == .manifest && (types.contains(.text) || types.contains(.metadata)))
    }

    /// A pattern as a readable string: text when printable, otherwise `{hex}`.
    public static func printable(_ bytes: [UInt8]) -> String {
        if bytes.allSatisfy({ $0 >= 0x20 && $0 < 0x7f }) { return String(decoding: bytes, as: UTF8.self) }
        return "{" + bytes.map { String(format2: $0) }.joined(separator: " ") + "}"
    }
}

extension String {
    init(format2 b: UInt8) {
        let digits = Array("0123456789abcdef")
        self = String([digits[Int(b >> 4)], digits[Int(b & 15)]])
    }
}
