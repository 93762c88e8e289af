import Foundation
import MinewatchModel

/// `minewatch verify`'s output.
public enum AttestationRenderer {
    public static func render(_ check: AttestationCheck, format: OutputFormat) -> String {
        switch format {
        case .table:
            return (check.valid ? "VALID    " : "INVALID  ") + "\(check.image)@\(check.digest): \(check.detail)"
                + (check.key.map { " (key \($0))" } ?? "")
        case .json, .sarif:
            return (try? ReportJSON.encoder().encode(check)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        }
    }
}
