/// The top level of one Stratum JSON line, read without building it: the `method` and `id`, what
/// kind of value `params` and `result` are, whether `result` is an object with a `job`, and
/// whether `error` is set. Most lines of a mining session are submits, their replies and job
/// pushes, which need nothing more; `FlowInspector` parses the others with Foundation. The whole
/// line is validated as JSON (RFC 8259 grammar, nesting at most 64 deep) and a line that is not a
/// single JSON object, or whose `method` or `id` is written with escapes or as a fraction, gives
/// nil and is left to Foundation, so both paths accept the same lines.
struct StratumLine {
    enum Kind: Equatable { case object, array, string, number, bool(Bool), null }

    var method: String?
    var id: String?
    var params: Kind?
    var result: Kind?
    var resultHasJob = false
    /// `error` is present and not null.
    var errorSet = false

    static func scan(_ bytes: [UInt8]) -> StratumLine? {
        // Foundation reads UTF-8 only; Stratum lines are ASCII, so the check is rarely paid.
        if bytes.contains(where: { $0 >= 0x80 }), String(validating: bytes, as: UTF8.self) == nil { return nil }
        return bytes.withUnsafeBufferPointer { b -> StratumLine? in
            var r = Reader(b: b)
            var line = StratumLine()
            guard r.topLevel(into: &line) else { return nil }
            r.space()
            return r.i == b.count ? line : nil
        }
    }

    struct Reader {
        let b: UnsafeBufferPointer<UInt8>
        var i = 0

        init(b: UnsafeBufferPointer<UInt8>) { self.b = b }

        mutating func space() {
            while i < b.count, b[i] == 0x20 || b[i] == 0x09 || b[i] == 0x0a || b[i] == 0x0d { i += 1 }
        }

        mutating func eat(_ c: UInt8) -> Bool {
            space()
            guard i < b.count, b[i] == c else { return false }
            i += 1
            return true
        }

        /// The top-level object, noting the fields Stratum needs.
        mutating func topLevel(into line: inout StratumLine) -> Bool {
            guard eat(0x7b) else { return false }
            if eat(0x7d) { return true }
            repeat {
                space()
                guard let key = string() else { return false }
                guard eat(0x3a) else { return false }
                space()
                let start = i
                guard let kind = value(depth: 1, noteJob: key.elementsEqual("result".utf8)) else { return false }
                let text = UnsafeBufferPointer(rebasing: b[start..<i])
                switch String(decoding: key, as: UTF8.self) {
                case "method":
                    guard kind == .string, !text.contains(0x5c) else { return false }
                    line.method = String(decoding: text.dropFirst().dropLast(), as: UTF8.self)
                case "id":
                    switch kind {
                    case .string:
                        guard !text.contains(0x5c) else { return false }
                        line.id = String(decoding: text.dropFirst().dropLast(), as: UTF8.self)
                    case .number:
                        // Written as Foundation would print it back (no fraction, sign or 16+ digits).
                        guard text.count < 16, !text.contains(where: { $0 == 0x2e || $0 == 0x65 || $0 == 0x45 || $0 == 0x2d }) else { return false }
                        line.id = String(decoding: text, as: UTF8.self)
                    default:
                        line.id = nil
                    }
                case "params": line.params = kind
                case "result":
                    line.result = kind
                    line.resultHasJob = sawJob
                case "error": line.errorSet = kind != .null
                default: break
                }
                sawJob = false
            } while eat(0x2c)
            return eat(0x7d)
        }

        var sawJob = false

        /// A JSON string's bytes between its quotes (escapes left as written), or nil.
        mutating func string() -> UnsafeBufferPointer<UInt8>? {
            guard i < b.count, b[i] == 0x22 else { return nil }
            i += 1
            let start = i
            while i < b.count {
                let c = b[i]
                if c == 0x22 {
                    i += 1
                    return UnsafeBufferPointer(rebasing: b[start..<(i - 1)])
                }
                if c < 0x20 { return nil }
                if c == 0x5c {
                    guard i + 1 < b.count else { return nil }
                    let e = b[i + 1]
                    if e == 0x75 {
                        guard let unit = hex4(at: i + 2) else { return nil }
                        i += 6
                        if unit >= 0xdc00 && unit <= 0xdfff { return nil }  // a low surrogate alone
                        if unit >= 0xd800 && unit <= 0xdbff {
                            // A high surrogate must be followed by an escaped low one.
                            guard i + 1 < b.count, b[i] == 0x5c, b[i + 1] == 0x75, let low = hex4(at: i + 2),
                                  low >= 0xdc00 && low <= 0xdfff else { return nil }
                            i += 6
                        }
                        continue
                    }
                    guard [0x22, 0x5c, 0x2f, 0x62, 0x66, 0x6e, 0x72, 0x74].contains(e) else { return nil }
                    i += 2
                    continue
                }
                i += 1
            }
            return nil
        }

        func hex4(at k: Int) -> UInt16? {
            guard k + 3 < b.count else { return nil }
            var v: UInt16 = 0
            for c in b[k...(k + 3)] {
                guard Self.isHex(c) else { return nil }
                v = v << 4 | UInt16(c <= 0x39 ? c - 0x30 : (c | 0x20) - 0x61 + 10)
            }
            return v
        }

        static func isHex(_ c: UInt8) -> Bool { (c >= 0x30 && c <= 0x39) || (c | 0x20 >= 0x61 && c | 0x20 <= 0x66) }

        /// Skips one value, checking its grammar; `noteJob`: the value is `result`, and a `job` key
        /// at its top level sets `sawJob`.
        mutating func value(depth: Int, noteJob: Bool = false) -> Kind? {
            guard depth <= 64, i < b.count else { return nil }
            switch b[i] {
            case 0x7b:
                i += 1
                if eat(0x7d) { return .object }
                repeat {
                    space()
                    guard let key = string() else { return nil }
                    if noteJob && key.elementsEqual("job".utf8) { sawJob = true }
                    guard eat(0x3a) else { return nil }
                    space()
                    guard value(depth: depth + 1) != nil else { return nil }
                } while eat(0x2c)
                return eat(0x7d) ? .object : nil
            case 0x5b:
                i += 1
                if eat(0x5d) { return .array }
                repeat {
                    space()
                    guard value(depth: depth + 1) != nil else { return nil }
                } while eat(0x2c)
                return eat(0x5d) ? .array : nil
            case 0x22:
                return string() != nil ? .string : nil
            case 0x74: return literal("true") ? .bool(true) : nil
            case 0x66: return literal("false") ? .bool(false) : nil
            case 0x6e: return literal("null") ? .null : nil
            default:
                return number() ? .number : nil
            }
        }

        mutating func literal(_ word: StaticString) -> Bool {
            let n = word.utf8CodeUnitCount
            guard i + n <= b.count else { return false }
            for k in 0..<n where b[i + k] != word.utf8Start[k] { return false }
            i += n
            return true
        }

        /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
        mutating func number() -> Bool {
            func digits() -> Int {
                let s = i
                while i < b.count, b[i] >= 0x30 && b[i] <= 0x39 { i += 1 }
                return i - s
            }
            if i < b.count, b[i] == 0x2d { i += 1 }
            guard i < b.count, b[i] >= 0x30 && b[i] <= 0x39 else { return false }
            if b[i] == 0x30 { i += 1 } else { _ = digits() }
            if i < b.count, b[i] == 0x2e {
                i += 1
                guard digits() > 0 else { return false }
            }
            if i < b.count, b[i] == 0x65 || b[i] == 0x45 {
                i += 1
                if i < b.count, b[i] == 0x2b || b[i] == 0x2d { i += 1 }
                guard digits() > 0 else { return false }
            }
            return true
        }
    }
}
