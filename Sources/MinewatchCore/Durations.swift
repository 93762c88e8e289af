/// Durations as users of podman, Falco and Go tools type them: `500ms`, `2s`, `1m`, `1h30m`,
/// `1.5s`, or bare seconds (`2`, `0.5`).
public enum Durations {
    static let units: [(String, Double)] = [("ms", 0.001), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1)]

    /// Seconds, or nil when the text is not a duration.
    public static func parse(_ text: String) -> Double? {
        let s = text.trimmingCharacters(in: " \t")
        guard !s.isEmpty else { return nil }
        if let v = Double(s), v.isFinite { return v }
        var total = 0.0
        var rest = Substring(s)
        while !rest.isEmpty {
            let number = rest.prefix { $0.isNumber || $0 == "." }
            guard !number.isEmpty, let v = Double(number) else { return nil }
            rest = rest.dropFirst(number.count)
            guard let (unit, mul) = units.first(where: { rest.hasPrefix($0.0) }) else { return nil }
            rest = rest.dropFirst(unit.count)
            total += v * mul
        }
        return total
    }

    /// "2s", "1m30s", "500ms": the form messages use.
    public static func format(_ seconds: Double) -> String {
        if seconds < 1 { return "\(Int((seconds * 1000).rounded()))ms" }
        if seconds.rounded() != seconds { return "\(seconds)s" }
        let s = Int(seconds)
        if s >= 86400 && s % 86400 == 0 { return "\(s / 86400)d" }
        if s >= 86400 { return "\(s / 86400)d" + format(Double(s % 86400)) }
        if s % 3600 == 0 { return "\(s / 3600)h" }
        if s >= 60 { return s % 60 == 0 ? "\(s / 60)m" : "\(s / 60)m\(s % 60)s" }
        return "\(s)s"
    }
}

extension String {
    func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s = s.dropFirst() }
        while let l = s.last, set.contains(l) { s = s.dropLast() }
        return String(s)
    }
}

/// Byte counts and rates as typed on command lines and in rule files: `65536`, `64Ki`, `64KiB`,
/// `1M`, `1.5MB`, `32k` (Ki/Mi/Gi are powers of 1024; k/K/M/G of 1000; a trailing `B` or
/// `/s` is allowed).
public enum ByteAmounts {
    static let units: [(String, Double)] = [("Gi", 1_073_741_824), ("Mi", 1_048_576), ("Ki", 1024), ("G", 1e9), ("M", 1e6), ("k", 1e3), ("K", 1e3), ("", 1)]

    public static func parse(_ text: String) -> Double? {
        var s = Substring(text.trimmingCharacters(in: " \t"))
        if s.hasSuffix("/s") { s = s.dropLast(2) }
        if s.hasSuffix("B") { s = s.dropLast() }
        for (suffix, mul) in units where s.hasSuffix(suffix) {
            if let v = Double(String(s.dropLast(suffix.count)).trimmingCharacters(in: " ")), v >= 0, v.isFinite { return v * mul }
        }
        return nil
    }

    /// A file's size limit (the history's `max_size`): at least 1 MiB and under 1 PB, or nil.
    public static func sizeLimit(_ text: String) -> Int64? {
        guard let b = parse(text), b >= 1_048_576, b < 1e15 else { return nil }
        return Int64(b)
    }
}
