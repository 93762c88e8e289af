/// Files that say what will run before an image exists: Dockerfiles (Containerfiles), compose
/// files and Kubernetes manifests. Recognised by content (the first block of a text file), so a
/// renamed `Dockerfile.prod` or a `deploy.yml` is still one.
public enum ManifestKind: String, Sendable, Hashable, CaseIterable {
    case dockerfile
    case compose
    case kubernetes

    /// Dockerfile instructions (the reference's list); a Dockerfile's lines start with one.
    static let instructions: Set<String> = [
        "FROM", "RUN", "CMD", "LABEL", "MAINTAINER", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME",
        "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL",
    ]

    /// The kind of manifest `head` (the start of a text file) is; nil for anything else.
    public static func detect(_ head: UnsafeRawBufferPointer) -> ManifestKind? {
        let text = String(decoding: head.prefix(4096), as: UTF8.self)
        var lines = text.split(separator: "\n", omittingEmptySubsequences: true).map { $0.trimmingSuffix("\r") }
        // The last line may be cut by the block boundary.
        if head.count > 4096 || text.last != "\n", lines.count > 1 { lines.removeLast() }
        if isDockerfile(lines) { return .dockerfile }
        var topKeys = Set<String>()
        var hasImage = false
        for l in lines {
            if l.hasPrefix("#") { continue }
            if let first = l.first, first != " " && first != "\t" && first != "-", let colon = l.firstIndex(of: ":") {
                topKeys.insert(String(l[..<colon].trimmingSuffix(" ")))
            }
            let t = l.drop(while: { $0 == " " || $0 == "\t" || $0 == "-" })
            if t.hasPrefix("image:") || t.hasPrefix("\"image\":") || t.hasPrefix("build:") { hasImage = true }
        }
        if topKeys.contains("apiVersion") && topKeys.contains("kind") { return .kubernetes }
        if topKeys.contains("services") && hasImage { return .compose }
        return nil
    }

    /// The first instruction (after comments, parser directives and blank lines) is FROM or an
    /// ARG before it, and most non-continued lines start with an instruction.
    static func isDockerfile(_ lines: [Substring]) -> Bool {
        var first: String?
        var instructionLines = 0, otherLines = 0
        var continued = false
        for raw in lines {
            let l = raw.drop(while: { $0 == " " || $0 == "\t" })
            if l.isEmpty || l.hasPrefix("#") { continue }
            defer { continued = l.hasSuffix("\\") }
            if continued { continue }
            let word = l.prefix(while: { $0 != " " && $0 != "\t" }).uppercased()
            if instructions.contains(word) {
                instructionLines += 1
                if first == nil || first == "ARG" { first = word }
            } else {
                otherLines += 1
                if first == nil { return false }
            }
        }
        return first == "FROM" && instructionLines >= 1 && otherLines * 4 <= instructionLines
    }
}

extension Substring {
    func trimmingSuffix(_ c: Character) -> Substring {
        var s = self
        while s.last == c { s.removeLast() }
        return s
    }
}
