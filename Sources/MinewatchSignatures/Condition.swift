/// A rule condition, a small subset of YARA's:
///
///     $a and ($b or $c)
///     2 of them            any of them          all of them
///     2 of ($cfg*)         any of ($a, $b)      not $x
///     12 of ($rx*) within 4Ki
///
/// Counts refer to distinct strings that matched at least once. `within SIZE` asks for that many
/// distinct strings whose matches all start inside one window of SIZE bytes (constants of one
/// algorithm sit together in a binary; the same words scattered over a large file are chance).
public indirect enum Condition: Sendable, Hashable {
    case string(Int)
    case atLeast(Int, [Int])
    case within(Int, [Int], Int64)
    case and(Condition, Condition)
    case or(Condition, Condition)
    case not(Condition)

    /// Evaluate against the set of string indexes that matched; `offsets` gives where a string
    /// matched (start offsets, ascending, possibly only the first few), for `within`.
    public func evaluate(_ matched: (Int) -> Bool, offsets: (Int) -> [Int64] = { _ in [] }) -> Bool {
        switch self {
        case .string(let i): return matched(i)
        case .atLeast(let n, let set):
            var count = 0
            for i in set where matched(i) {
                count += 1
                if count >= n { return true }
            }
            return n <= 0
        case .within(let n, let set, let size):
            return Self.window(n, set, size, matched: matched, offsets: offsets) != nil
        case .and(let a, let b): return a.evaluate(matched, offsets: offsets) && b.evaluate(matched, offsets: offsets)
        case .or(let a, let b): return a.evaluate(matched, offsets: offsets) || b.evaluate(matched, offsets: offsets)
        case .not(let a): return !a.evaluate(matched, offsets: offsets)
        }
    }

    /// The start of the first window of `size` bytes holding matches of at least `n` distinct
    /// strings of `set`, or nil.
    public static func window(_ n: Int, _ set: [Int], _ size: Int64, matched: (Int) -> Bool, offsets: (Int) -> [Int64]) -> Int64? {
        if n <= 0 { return 0 }
        var hits: [(offset: Int64, string: Int)] = []
        var distinct = 0
        for i in set where matched(i) {
            distinct += 1
            for o in offsets(i) { hits.append((o, i)) }
        }
        guard distinct >= n else { return nil }
        hits.sort { $0.offset < $1.offset }
        var inWindow: [Int: Int] = [:]
        var lo = 0
        for hi in hits.indices {
            inWindow[hits[hi].string, default: 0] += 1
            while hits[hi].offset - hits[lo].offset >= size {
                let s = hits[lo].string
                if let c = inWindow[s], c > 1 { inWindow[s] = c - 1 } else { inWindow[s] = nil }
                lo += 1
            }
            if inWindow.count >= n { return hits[lo].offset }
        }
        return nil
    }

    /// The `within` terms of the condition (string sets whose offsets must be kept).
    public var windowedStrings: Set<Int> {
        switch self {
        case .string, .atLeast: return []
        case .within(_, let set, _): return Set(set)
        case .and(let a, let b), .or(let a, let b): return a.windowedStrings.union(b.windowedStrings)
        case .not(let a): return a.windowedStrings
        }
    }

    /// The windows that made `within` terms true, for evidence: (start, size).
    public func matchedWindows(_ matched: (Int) -> Bool, offsets: (Int) -> [Int64]) -> [(start: Int64, size: Int64)] {
        switch self {
        case .string, .atLeast: return []
        case .within(let n, let set, let size):
            return Self.window(n, set, size, matched: matched, offsets: offsets).map { [($0, size)] } ?? []
        case .and(let a, let b), .or(let a, let b):
            return a.matchedWindows(matched, offsets: offsets) + b.matchedWindows(matched, offsets: offsets)
        case .not: return []
        }
    }

    /// The fewest matched strings that can satisfy the condition. Used by validation to
    /// enforce "N of M" for miner families: one stray string must never convict.
    public var minimumStrings: Int {
        switch self {
        case .string: return 1
        case .atLeast(let n, _), .within(let n, _, _): return max(n, 0)
        case .and(let a, let b): return max(a.minimumStrings, b.minimumStrings, Condition.disjointSum(a, b))
        case .or(let a, let b): return min(a.minimumStrings, b.minimumStrings)
        case .not: return 0
        }
    }

    private static func disjointSum(_ a: Condition, _ b: Condition) -> Int {
        a.referenced.isDisjoint(with: b.referenced) ? a.minimumStrings + b.minimumStrings : 0
    }

    var referenced: Set<Int> {
        switch self {
        case .string(let i): return [i]
        case .atLeast(_, let s), .within(_, let s, _): return Set(s)
        case .and(let a, let b), .or(let a, let b): return a.referenced.union(b.referenced)
        case .not(let a): return a.referenced
        }
    }

    /// Whether a condition can be true with no string matched (then it would match every file).
    public var matchesEmpty: Bool { evaluate { _ in false } }
}

public struct ConditionParseError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// Recursive-descent parser for `Condition`. `or` binds weaker than `and`, `not` strongest.
struct ConditionParser {
    enum Token: Equatable {
        case ident(String)   // and, or, not, of, them, any, all
        case string(String)  // $name or $prefix*
        case number(Int)
        case lparen, rparen, comma
    }

    let stringIDs: [String]
    var tokens: [Token] = []
    var pos = 0

    init(stringIDs: [String]) { self.stringIDs = stringIDs }

    mutating func parse(_ text: String) throws(ConditionParseError) -> Condition {
        tokens = try Self.tokenize(text)
        pos = 0
        guard !tokens.isEmpty else { throw ConditionParseError(message: "empty condition") }
        let c = try parseOr()
        if pos != tokens.count { throw ConditionParseError(message: "unexpected \(describe(tokens[pos])) in condition") }
        return c
    }

    static func tokenize(_ text: String) throws(ConditionParseError) -> [Token] {
        var out: [Token] = []
        let chars = Array(text.unicodeScalars)
        var i = 0
        func isWord(_ c: Unicode.Scalar) -> Bool {
            (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || (c >= "0" && c <= "9") || c == "_" || c == "-" || c == "."
        }
        while i < chars.count {
            let c = chars[i]
            if c == " " || c == "\t" || c == "\n" || c == "\r" { i += 1; continue }
            switch c {
            case "(": out.append(.lparen); i += 1
            case ")": out.append(.rparen); i += 1
            case ",": out.append(.comma); i += 1
            case "$":
                var j = i + 1
                while j < chars.count, isWord(chars[j]) { j += 1 }
                var name = String(String.UnicodeScalarView(chars[(i + 1)..<j]))
                if j < chars.count, chars[j] == "*" { name += "*"; j += 1 }
                out.append(.string(name))
                i = j
            case "0"..."9":
                var j = i
                while j < chars.count, chars[j] >= "0", chars[j] <= "9" { j += 1 }
                guard let n = Int(String(String.UnicodeScalarView(chars[i..<j]))) else {
                    throw ConditionParseError(message: "bad number in condition")
                }
                out.append(.number(n))
                i = j
            default:
                guard isWord(c) else { throw ConditionParseError(message: "unexpected character '\(c)' in condition") }
                var j = i
                while j < chars.count, isWord(chars[j]) { j += 1 }
                out.append(.ident(String(String.UnicodeScalarView(chars[i..<j])).lowercased()))
                i = j
            }
        }
        return out
    }

    func describe(_ t: Token) -> String {
        switch t {
        case .ident(let s): return "'\(s)'"
        case .string(let s): return "'$\(s)'"
        case .number(let n): return "'\(n)'"
        case .lparen: return "'('"
        case .rparen: return "')'"
        case .comma: return "','"
        }
    }

    mutating func next() -> Token? {
        guard pos < tokens.count else { return nil }
        defer { pos += 1 }
        return tokens[pos]
    }

    func peek() -> Token? { pos < tokens.count ? tokens[pos] : nil }

    mutating func parseOr() throws(ConditionParseError) -> Condition {
        var lhs = try parseAnd()
        while peek() == .ident("or") {
            pos += 1
            lhs = .or(lhs, try parseAnd())
        }
        return lhs
    }

    mutating func parseAnd() throws(ConditionParseError) -> Condition {
        var lhs = try parseUnary()
        while peek() == .ident("and") {
            pos += 1
            lhs = .and(lhs, try parseUnary())
        }
        return lhs
    }

    mutating func parseUnary() throws(ConditionParseError) -> Condition {
        guard let t = next() else { throw ConditionParseError(message: "condition ends too early") }
        switch t {
        case .ident("not"): return .not(try parseUnary())
        case .lparen:
            let c = try parseOr()
            guard next() == .rparen else { throw ConditionParseError(message: "missing ')' in condition") }
            return c
        case .string(let name):
            if name.hasSuffix("*") { throw ConditionParseError(message: "wildcard '$\(name)' only inside 'of (...)'") }
            return .string(try index(of: name))
        case .number(let n):
            return try parseOf(count: .some(n))
        case .ident("any"):
            return try parseOf(count: .some(1))
        case .ident("all"):
            return try parseOf(count: nil)
        default:
            throw ConditionParseError(message: "unexpected \(describe(t)) in condition")
        }
    }

    /// After `N`, `any` or `all`: `of them` or `of ($a, $b*)`.
    mutating func parseOf(count: Int?) throws(ConditionParseError) -> Condition {
        guard next() == .ident("of") else { throw ConditionParseError(message: "expected 'of' in condition") }
        var set: [Int] = []
        switch next() {
        case .ident("them"):
            set = Array(stringIDs.indices)
        case .lparen:
            while true {
                guard case .string(let name)? = next() else {
                    throw ConditionParseError(message: "expected a $string in 'of (...)'")
                }
                set.append(contentsOf: try indexes(matching: name))
                let t = next()
                if t == .rparen { break }
                if t != .comma { throw ConditionParseError(message: "expected ',' or ')' in 'of (...)'") }
            }
        default:
            throw ConditionParseError(message: "expected 'them' or '(' after 'of'")
        }
        let unique = Array(Set(set)).sorted()
        let n = count ?? unique.count
        if n > unique.count {
            throw ConditionParseError(message: "condition asks for \(n) of \(unique.count) strings")
        }
        if peek() == .ident("within") {
            pos += 1
            guard case .number(let v)? = next() else {
                throw ConditionParseError(message: "expected a size after 'within' (e.g. 'within 4Ki')")
            }
            var text = String(v)
            var size = Int64(v)
            if case .ident(let unit)? = peek(), let scale = Self.sizeUnits[unit] {
                pos += 1
                text += unit
                size = Int64(v).multipliedReportingOverflow(by: scale).overflow ? -1 : Int64(v) * scale
            }
            guard size >= 1, size <= 1 << 30 else {
                throw ConditionParseError(message: "'within \(text)' is not a size from 1 byte to 1Gi")
            }
            if n < 2 { throw ConditionParseError(message: "'within' needs at least 2 strings to be near each other") }
            return .within(n, unique, size)
        }
        return .atLeast(n, unique)
    }

    /// Units a `within` size may carry (the tokenizer lower-cases them).
    static let sizeUnits: [String: Int64] = [
        "k": 1024, "ki": 1024, "kib": 1024, "kb": 1000, "m": 1 << 20, "mi": 1 << 20, "mib": 1 << 20, "mb": 1_000_000,
    ]

    func index(of name: String) throws(ConditionParseError) -> Int {
        guard let i = stringIDs.firstIndex(of: name) else {
            throw ConditionParseError(message: "condition names unknown string '$\(name)'")
        }
        return i
    }

    func indexes(matching name: String) throws(ConditionParseError) -> [Int] {
        if name.hasSuffix("*") {
            let prefix = String(name.dropLast())
            let found = stringIDs.indices.filter { stringIDs[$0].hasPrefix(prefix) }
            if found.isEmpty { throw ConditionParseError(message: "no string matches '$\(name)'") }
            return found
        }
        return [try index(of: name)]
    }
}
