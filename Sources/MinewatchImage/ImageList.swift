import Foundation
import MinewatchCore

extension RegistryClient {
    /// Every tag of the repository (`GET /v2/<name>/tags/list`, following the `Link: <...>;
    /// rel="next"` pages of the distribution spec; registries that ignore `n` send one page),
    /// sorted and without duplicates, and without the tags
    /// cosign stores signatures, attestations and SBOMs under (`sha256-<hex>.att`, `.sig`, `.sbom`):
    /// those are not images of the repository.
    public func tags(pageSize: Int = 1000, maxPages: Int = 10_000) throws(MinewatchError) -> [String] {
        var out: [String] = []
        var next: String? = "/v2/\(ref.repository)/tags/list?n=\(max(pageSize, 1))"
        var pages = 0
        var asked = Set<String>()
        while let path = next, pages < maxPages, asked.insert(path).inserted {
            pages += 1
            let (obj, _, headers) = try readJSON(path, accept: "application/json", what: "tag list")
            var tags: [String] = []
            if let field = obj["tags"], !(field is NSNull) {
                guard let list = field as? [String] else {
                    throw MinewatchError(.format, operation: "list tags", subject: ref.description, message: "field 'tags' is not a list of strings")
                }
                tags = list
            }
            out += tags.filter { !Self.isSignatureTag($0) }
            next = headers["link"].flatMap(Self.nextLink)
        }
        return Array(Set(out)).sorted()
    }

    /// `sha256-<64 hex>.att` (or `.sig`, `.sbom`): where cosign keeps what it stores about an image.
    static func isSignatureTag(_ tag: String) -> Bool {
        guard tag.hasPrefix("sha256-") else { return false }
        for suffix in [".att", ".sig", ".sbom"] where tag.hasSuffix(suffix) {
            let hex = tag.dropFirst(7).dropLast(suffix.count)
            return hex.count == 64 && hex.allSatisfy(\.isHexDigit)
        }
        return false
    }

    /// The path of a `Link` header's `rel="next"` target (the registry's own paths only).
    static func nextLink(_ header: String) -> String? {
        for part in header.split(separator: ",") {
            let p = part.trimmingCharacters(in: .whitespaces)
            guard p.contains("rel=\"next\"") || p.contains("rel=next"),
                  let open = p.firstIndex(of: "<"), let close = p.firstIndex(of: ">"), open < close else { continue }
            let target = String(p[p.index(after: open)..<close])
            if target.hasPrefix("/v2/") { return target }
            if let u = URLComponents(string: target), u.path.hasPrefix("/v2/") {
                return u.path + (u.percentEncodedQuery.map { "?\($0)" } ?? "")
            }
        }
        return nil
    }
}

/// One deterministic part of an image list: `--shard INDEX/COUNT`, INDEX from 0 (Kubernetes'
/// `JOB_COMPLETION_INDEX`). An image belongs to the shard its reference's SHA-256 picks, so each
/// pod of an Indexed Job decides alone, from the name alone, and two pods that listed a registry a
/// moment apart still agree on every image both saw.
public struct Shard: Sendable, Hashable, CustomStringConvertible {
    public var index: Int
    public var count: Int

    public init?(parsing s: String) {
        let parts = s.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let i = Int(parts[0]), let n = Int(parts[1]), n >= 1, n <= 100_000, i >= 0, i < n else { return nil }
        index = i
        count = n
    }

    public init(index: Int, count: Int) {
        self.index = index
        self.count = count
    }

    public var description: String { "\(index)/\(count)" }

    public func contains(_ reference: String) -> Bool {
        count == 1 || Self.bucket(reference, of: count) == index
    }

    static func bucket(_ reference: String, of count: Int) -> Int {
        let h = SHA256Digest.hash(Array(reference.utf8)).prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        return Int(h % UInt64(count))
    }
}

/// The scan targets a command line names: its arguments, the lines of `--from FILE`, and with
/// `--all-tags` every tag of each registry repository named, deduplicated in order, then cut to a
/// shard.
public struct ImageList {
    public var insecure: Bool
    public var credentials: RegistryCredentials?

    public init(insecure: Bool, credentials: RegistryCredentials?) {
        self.insecure = insecure
        self.credentials = credentials
    }

    /// The references of a list file: one a line; blank lines and `#` comments skipped. An error
    /// names the file and line of a line that cannot be a target.
    public static func parse(_ text: String, file: String) throws(MinewatchError) -> [String] {
        var out: [String] = []
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            if line.contains(where: { $0 == " " || $0 == "\t" || $0.asciiValue.map { $0 < 0x20 } == true }) {
                throw MinewatchError(.invalidArgument, operation: "read image list", subject: "\(file):\(i + 1)",
                                     message: "one image reference a line, without spaces: '\(line.prefix(80))'")
            }
            out.append(line)
        }
        return out
    }

    public static func read(file: String) throws(MinewatchError) -> [String] {
        let data: Data?
        if file == "-" {
            data = FileHandle.standardInput.readDataToEndOfFile()
        } else {
            data = FileManager.default.contents(atPath: file)
        }
        guard let data else {
            throw MinewatchError(.io, operation: "read image list", subject: file, message: "cannot read the file")
        }
        guard data.count <= 64 << 20 else {
            throw MinewatchError(.limit, operation: "read image list", subject: file, message: "larger than 64 MiB")
        }
        return try parse(String(decoding: data, as: UTF8.self), file: file)
    }

    /// `registry:HOST/REPO` (or `docker://`) with every tag listed: one `registry:HOST/REPO:TAG`
    /// each. A target that is not a registry repository is an error (there is nothing to list).
    public func allTags(of target: String) throws(MinewatchError) -> [String] {
        var name = target
        for prefix in ["registry:", "docker://"] where name.hasPrefix(prefix) { name = String(name.dropFirst(prefix.count)) }
        guard name != target, let ref = ImageReference(parsing: name) else {
            throw MinewatchError(.invalidArgument, operation: "list tags", subject: target,
                                 message: "--all-tags lists registry repositories: write registry:HOST/REPOSITORY")
        }
        var repo = ref
        repo.tag = nil
        repo.digest = nil
        let client = try RegistryClient(ref: repo, insecure: insecure, credentials: credentials)
        return try client.tags().map { "registry:\(repo.registry)/\(repo.repository):\($0)" }
    }

    /// Arguments and list-file lines, expanded (`allTags`), deduplicated in order and cut to
    /// `shard`. Repositories that could not be listed come back as problems; the rest still run.
    public func expand(_ targets: [String], allTags: Bool, shard: Shard?) -> (targets: [String], problems: [(String, MinewatchError)]) {
        var out: [String] = []
        var seen = Set<String>()
        var problems: [(String, MinewatchError)] = []
        for t in targets {
            var expanded = [t]
            if allTags {
                do { expanded = try self.allTags(of: t) } catch {
                    problems.append((t, error))
                    continue
                }
            }
            for e in expanded where seen.insert(e).inserted && (shard?.contains(e) ?? true) { out.append(e) }
        }
        return (out, problems)
    }
}
