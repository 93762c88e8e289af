/// A rule condition, a small subset of YARA's:
///
///     $a and ($b or $c)
///     2 of them            any of them          all of them
///     2 of ($cfg*)         any of ($a, $b)      not $x
///
/// Counts refer to distinct strings that matched at least once.
public indirect enum Condition: Sendable, Hashable {
    case string(Int)
    case atLeast(Int, [Int])
    case and(Condition, Condition)
    case or(Condition, Condition)
    case not(Condition)

    /// Evaluate against the set of string indexes that matched.
    public func evaluate(_ matched: (Int) -> Bool) -> Bool {
        switch self {
        case .string(let i): return matched(i)
        case .atLeast(let n, let set):
            var count = 0
            for i in set where matched(i) {
                count += 1
                if count >= n { return true }
            }
            return n <= 0
        case .and(let a, let b): return a.evaluate(matched) && b.evaluate(matched)
        case .or(let a, let b): return a.evaluate(matched) || b.evaluate(matched)
        case .not(let a): return !a.evaluate(matched)
        }
    }

    /// The fewest matched strings that can satisfy the condition. Used by validation to
    /// enforce "N of M" for miner families: one stray string must never convict.
    public var minimumStrings: Int {
        switch self {
        case .string: return 1
        case .atLeast(let n, _): return max(n, 0)
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
        case .atLeast(_, let s): return Set(s)
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
        return .atLeast(n, unique)
    }

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
