import Foundation

/// JSON text written by hand where a document's key order matters (DSSE envelopes, manifests
/// rendered for the rules): a string as a JSON string literal, escaped by Foundation.
public enum JSONText {
    public static func string(_ s: String) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: [s], options: [.withoutEscapingSlashes])) ?? Data("[\"\"]".utf8)
        return String(decoding: data.dropFirst().dropLast(), as: UTF8.self)
    }
}
