import Foundation

/// The JSON minewatch writes everywhere a reader might diff or parse it (reports, JSON lines,
/// the history's alert records, the dashboard's API): sorted keys, slashes as they are, dates in
/// ISO 8601.
public enum ReportJSON {
    public static func encoder(pretty: Bool = false) -> JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = pretty ? [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        e.dateEncodingStrategy = .iso8601
        return e
    }

    /// Reads what `encoder` wrote (ISO 8601 dates).
    public static func decoder() -> JSONDecoder {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .iso8601
        return d
    }
}
