import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import MinewatchCore
import MinewatchHTTP
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// `[registry/]repository[:tag][@digest]`, with Docker Hub defaults.
public struct ImageReference: Sendable, Hashable, CustomStringConvertible {
    public var registry: String
    public var repository: String
    public var tag: String?
    public var digest: String?

    public init?(parsing s: String) {
        var rest = s
        if rest.hasPrefix("docker://") { rest = String(rest.dropFirst(9)) }
        guard !rest.isEmpty, !rest.contains(" "), !rest.hasPrefix("/"), !rest.hasPrefix(".") else { return nil }
        var digest: String?
        if let at = rest.firstIndex(of: "@") {
            digest = String(rest[rest.index(after: at)...])
            rest = String(rest[..<at])
            guard let d = digest, d.contains(":") else { return nil }
        }
        var comps = rest.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard !comps.contains(where: \.isEmpty) else { return nil }
        var registry = "registry-1.docker.io"
        if comps.count > 1, let first = comps.first, first.contains(".") || first.contains(":") || first == "localhost" {
            registry = first == "docker.io" ? "registry-1.docker.io" : first
            comps.removeFirst()
        }
        var last = comps.removeLast()
        var tag: String?
        if let colon = last.lastIndex(of: ":") {
            tag = String(last[last.index(after: colon)...])
            last = String(last[..<colon])
        }
        comps.append(last)
        if registry == "registry-1.docker.io" && comps.count == 1 { comps.insert("library", at: 0) }
        let repo = comps.joined(separator: "/")
        guard repo.allSatisfy({ $0.isLowercase || $0.isNumber || "._-/".contains($0) }) else { return nil }
        self.registry = registry
        self.repository = repo
        self.tag = digest == nil ? (tag ?? "latest") : tag
        self.digest = digest
    }

    public var reference: String { digest ?? tag ?? "latest" }
    public var description: String { "\(registry)/\(repository)" + (tag.map { ":\($0)" } ?? "") + (digest.map { "@\($0)" } ?? "") }
}

public struct RegistryCredentials: Sendable, Hashable {
    public var username: String
    public var password: String
    public init(username: String, password: String) {
        self.username = username
        self.password = password
    }

    /// From `~/.docker/config.json` (`auths.<registry>.auth`, base64 user:password), if present.
    public static func fromDockerConfig(registry: String, home: String = NSHomeDirectory()) -> RegistryCredentials? {
        let path = ProcessInfo.processInfo.environment["DOCKER_CONFIG"].map { "\($0)/config.json" } ?? "\(home)/.docker/config.json"
        guard let data = FileManager.default.contents(atPath: path),
              let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let auths = obj["auths"] as? [String: Any] else { return nil }
        let keys = [registry, "https://\(registry)", "http://\(registry)"] + (registry == "registry-1.docker.io" ? ["https://index.docker.io/v1/", "docker.io"] : [])
        for k in keys {
            if let entry = auths[k] as? [String: Any], let auth = entry["auth"] as? String,
               let decoded = Data(base64Encoded: auth).map({ String(decoding: $0, as: UTF8.self) }),
               let colon = decoded.firstIndex(of: ":") {
                return RegistryCredentials(username: String(decoded[..<colon]), password: String(decoded[decoded.index(after: colon)...]))
            }
        }
        return nil
    }
}

/// OCI distribution API client: manifests, blobs, anonymous/basic/bearer auth, plain HTTP with
/// `insecure`, HTTPS through URLSession otherwise. Plain-HTTP blobs are streamed; HTTPS blobs are
/// downloaded into a private temporary folder first, then streamed from there.
public final class RegistryClient {
    public let ref: ImageReference
    public let insecure: Bool
    public let credentials: RegistryCredentials?
    var authorization: String?
    let http = HTTPClient()
    let temp: PrivateTempDir
    public var maxBlobSize: Int64 = 64 << 30
    /// Ask a token server for push as well as pull (storing attestations).
    public var pushAccess = false
    static let manifestAccept = [
        "application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json", "application/vnd.docker.distribution.manifest.v2+json",
    ].joined(separator: ", ")

    public init(ref: ImageReference, insecure: Bool, credentials: RegistryCredentials?) throws(MinewatchError) {
        self.ref = ref
        self.insecure = insecure
        self.credentials = credentials ?? RegistryCredentials.fromDockerConfig(registry: ref.registry)
        self.temp = try PrivateTempDir(label: "registry")
    }

    var hostPort: (String, Int) {
        let r = ref.registry
        if r.hasPrefix("["), let close = r.firstIndex(of: "]") {
            let host = String(r[r.index(after: r.startIndex)..<close])
            let port = Int(r[r.index(after: close)...].dropFirst()) ?? (insecure ? 80 : 443)
            return (host, port)
        }
        if let colon = r.lastIndex(of: ":"), let port = Int(r[r.index(after: colon)...]) { return (String(r[..<colon]), port) }
        return (r, insecure ? 80 : 443)
    }

    /// GET with the auth dance: on 401, answer a Basic or Bearer challenge once, then retry.
    /// `limit` caps an HTTPS body while it downloads.
    func get(_ path: String, accept: String? = nil, limit: Int64? = nil) throws(MinewatchError) -> (Int, [String: String], ByteStream) {
        try send("GET", path, accept: accept, limit: limit)
    }

    /// A request with the auth dance (GET, HEAD, POST, PUT). `path` is a path on the registry or
    /// an absolute URL it handed out (an upload's Location).
    func send(_ method: String, _ path: String, accept: String? = nil, headers extra: [String: String] = [:], body: [UInt8] = [],
              limit: Int64? = nil) throws(MinewatchError) -> (Int, [String: String], ByteStream) {
        var attempt = 0
        var url = path.hasPrefix("http://") || path.hasPrefix("https://") ? path : "\(insecure ? "http" : "https")://\(ref.registry)\(path)"
        var redirects = 0
        while true {
            var headers = extra
            if let accept { headers["Accept"] = accept }
            if let authorization, url.contains(ref.registry) { headers["Authorization"] = authorization }
            let (status, hdrs, body) = try fetch(url, method: method, headers: headers, body: body, limit: limit ?? maxBlobSize)
            if status == 401 && attempt == 0, let challenge = hdrs["www-authenticate"] {
                attempt += 1
                authorization = try authenticate(challenge)
                continue
            }
            if method == "GET" || method == "HEAD", [301, 302, 303, 307, 308].contains(status), let loc = hdrs["location"], redirects < 5 {
                redirects += 1
                url = loc.hasPrefix("/") ? "\(insecure ? "http" : "https")://\(ref.registry)\(loc)" : loc
                continue
            }
            return (status, hdrs, body)
        }
    }

    func fetch(_ url: String, method: String = "GET", headers: [String: String], body: [UInt8] = [], limit: Int64) throws(MinewatchError) -> (Int, [String: String], ByteStream) {
        guard let u = URL(string: url), let scheme = u.scheme, let host = u.host else {
            throw MinewatchError(.invalidArgument, operation: "fetch", subject: url, message: "invalid URL")
        }
        if scheme == "http" {
            guard insecure else {
                throw MinewatchError(.network, operation: "fetch", subject: url, message: "refusing plain HTTP without --insecure")
            }
            // URL.path drops a trailing slash, which the upload endpoint needs.
            let raw = URLComponents(url: u, resolvingAgainstBaseURL: false)?.percentEncodedPath ?? u.path
            var path = raw.isEmpty ? "/" : raw
            if let q = u.query { path += "?\(q)" }
            let r = try http.request(.tcp(host: host, port: u.port ?? 80), method: method, path: path, headers: headers, body: body)
            return (r.status, r.headers, r.body)
        }
        return try HTTPSFetcher.fetch(u, method: method, headers: headers, body: body, into: temp, limit: limit)
    }

    func authenticate(_ challenge: String) throws(MinewatchError) -> String {
        let lower = challenge.lowercased()
        if lower.hasPrefix("basic") {
            guard let c = credentials else {
                throw MinewatchError(.network, operation: "authenticate", subject: ref.registry, message: "registry wants a username and password (--username/--password)")
            }
            return "Basic " + Data("\(c.username):\(c.password)".utf8).base64EncodedString()
        }
        guard lower.hasPrefix("bearer") else {
            throw MinewatchError(.unsupported, operation: "authenticate", subject: ref.registry, message: "unsupported auth scheme '\(challenge.prefix(40))'")
        }
        let params = Self.challengeParams(String(challenge.dropFirst(6)))
        guard let realm = params["realm"], var comps = URLComponents(string: realm) else {
            throw MinewatchError(.format, operation: "authenticate", subject: ref.registry, message: "bearer challenge without realm")
        }
        var items = comps.queryItems ?? []
        if let s = params["service"] { items.append(URLQueryItem(name: "service", value: s)) }
        items.append(URLQueryItem(name: "scope", value: params["scope"] ?? "repository:\(ref.repository):\(pushAccess ? "pull,push" : "pull")"))
        comps.queryItems = items
        guard let tokenURL = comps.url?.absoluteString else {
            throw MinewatchError(.format, operation: "authenticate", subject: realm, message: "bad token URL")
        }
        var headers: [String: String] = [:]
        if let c = credentials { headers["Authorization"] = "Basic " + Data("\(c.username):\(c.password)".utf8).base64EncodedString() }
        let (status, _, body) = try fetch(tokenURL, headers: headers, limit: 1 << 20)
        let data = try body.readAll(limit: 1 << 20, what: "token")
        guard status == 200, let obj = try? JSONSerialization.jsonObject(with: Data(data)) as? [String: Any],
              let token = (obj["token"] as? String) ?? (obj["access_token"] as? String) else {
            throw MinewatchError(.network, operation: "get token", subject: realm, message: "token server answered \(status)")
        }
        return "Bearer \(token)"
    }

    static func challengeParams(_ s: String) -> [String: String] {
        var out: [String: String] = [:]
        var i = s.startIndex
        while i < s.endIndex {
            while i < s.endIndex, s[i] == " " || s[i] == "," { i = s.index(after: i) }
            guard let eq = s[i...].firstIndex(of: "=") else { break }
            let key = s[i..<eq].trimmingCharacters(in: .whitespaces).lowercased()
            var j = s.index(after: eq)
            var value = ""
            if j < s.endIndex, s[j] == "\"" {
                j = s.index(after: j)
                while j < s.endIndex, s[j] != "\"" { value.append(s[j]); j = s.index(after: j) }
                if j < s.endIndex { j = s.index(after: j) }
            } else {
                while j < s.endIndex, s[j] != "," { value.append(s[j]); j = s.index(after: j) }
            }
            out[key] = value
            i = j
        }
        return out
    }

    func readJSON(_ path: String, accept: String?, what: String) throws(MinewatchError) -> ([String: Any], [UInt8], [String: String]) {
        let (status, headers, body) = try get(path, accept: accept)
        let data = try body.readAll(limit: 16 << 20, what: what)
        guard status == 200 else {
            throw MinewatchError(.network, operation: "get \(what)", subject: ref.description,
                                 message: "registry answered \(status): \(String(decoding: data.prefix(200), as: UTF8.self))")
        }
        guard let obj = try? JSONSerialization.jsonObject(with: Data(data)) as? [String: Any] else {
            throw MinewatchError(.format, operation: "get \(what)", subject: ref.description, message: "not a JSON object")
        }
        return (obj, data, headers)
    }

    /// The manifest for a tag or digest, and the mismatch when it does not hash to the digest it
    /// was asked for (or to the `Docker-Content-Digest` the registry sent with it).
    public func manifest(_ reference: String) throws(MinewatchError) -> ([String: Any], DigestMismatch?) {
        let m = try manifestRead(reference)
        return (m.object, m.mismatch)
    }

    /// The manifest, its bytes, the digest computed from them and any mismatch with a claim.
    func manifestRead(_ reference: String) throws(MinewatchError) -> (object: [String: Any], bytes: [UInt8], digest: String, mismatch: DigestMismatch?) {
        let (obj, bytes, headers) = try readJSON("/v2/\(ref.repository)/manifests/\(reference)", accept: Self.manifestAccept, what: "manifest")
        let claimed = reference.contains(":") ? reference : headers["docker-content-digest"]
        return (obj, bytes, ContentDigest.of(bytes), claimed.flatMap { ContentDigest.check($0, bytes: bytes, location: "manifest \(reference)") })
    }

    /// The digest of the manifest (or index) `reference` names, computed from the bytes the
    /// registry sent; an error when they do not hash to the digest asked for.
    public func resolveDigest(_ reference: String? = nil) throws(MinewatchError) -> String {
        let m = try manifestRead(reference ?? ref.reference)
        if let mm = m.mismatch, (reference ?? ref.reference).contains(":") {
            throw MinewatchError(.format, operation: "resolve", subject: ref.description, message: "manifest does not hash to \(mm.claimed)")
        }
        return m.digest
    }

    /// A blob by digest. The download stops as soon as it passes `maxBlobSize` or the size the
    /// manifest declared for it (HTTPS: while the bytes arrive; plain HTTP: streamed, with the
    /// same cap on what is read).
    public func blob(_ digest: String, declaredSize: Int64? = nil) throws(MinewatchError) -> ByteStream {
        _ = try blobPath(digest, what: ref.description)  // validates the digest's shape
        let cap = min(maxBlobSize, declaredSize.map { max($0, 0) } ?? maxBlobSize)
        let (status, _, body) = try get("/v2/\(ref.repository)/blobs/\(digest)", limit: cap)
        guard status == 200 else {
            throw MinewatchError(.network, operation: "get blob", subject: "\(ref) \(digest)", message: "registry answered \(status)")
        }
        return CappedStream(body, limit: cap, what: "blob \(digest)", declared: declaredSize != nil && cap == declaredSize)
    }

    public func images(platform: Platform?) throws(MinewatchError) -> [RegistryImage] {
        let topRead = try manifestRead(ref.reference)
        let (top, topMismatch) = (topRead.object, topRead.mismatch)
        var mismatches = topMismatch.map { [$0] } ?? []
        let mt = (top["mediaType"] as? String) ?? ""
        var manifests: [([String: Any], String?)]
        if MediaTypes.indexTypes.contains(mt) || (top["manifests"] != nil && top["layers"] == nil) {
            manifests = try resolveManifests(index: top, platform: platform, what: ref.description, mismatches: &mismatches) {
                (digest) throws(MinewatchError) -> [UInt8] in
                try readJSON("/v2/\(ref.repository)/manifests/\(digest)", accept: Self.manifestAccept, what: "manifest").1
            }
        } else {
            manifests = [(top, nil)]
        }
        var out: [RegistryImage] = []
        for (m, _) in manifests {
            let (cfgDigest, layers) = try manifestParts(m, what: ref.description)
            let cfgBytes = try blob(cfgDigest).readAll(limit: 16 << 20, what: "config")
            let cfg = try ImageConfigInfo.parse(cfgBytes, name: "\(ref) config")
            var imageMismatches = mismatches
            if let mm = ContentDigest.check(cfgDigest, bytes: cfgBytes, location: "manifest:config") { imageMismatches.append(mm) }
            out.append(RegistryImage(client: self, configDigest: cfgDigest, config: cfg, layers: withDiffIDs(layers, cfg),
                                     digestMismatches: imageMismatches, manifestDigest: topMismatch == nil ? topRead.digest : nil))
        }
        return out
    }
}

/// Ends with an error once more than `limit` bytes were read: a blob larger than its declared
/// size, or than `--max-layer-size`, is never read past the cap.
final class CappedStream: ByteStream {
    let inner: ByteStream
    let limit: Int64
    let what: String
    let declared: Bool
    var count: Int64 = 0
    init(_ inner: ByteStream, limit: Int64, what: String, declared: Bool) {
        self.inner = inner
        self.limit = limit
        self.what = what
        self.declared = declared
    }
    func read(into buffer: UnsafeMutableRawBufferPointer) throws(MinewatchError) -> Int {
        // Ask for at most one byte past the cap, so an overlong body is noticed without reading on.
        let room = Int(min(Int64(buffer.count), limit - count + 1))
        guard room > 0 else { return 0 }
        let n = try inner.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<room]))
        count += Int64(n)
        if count > limit {
            throw MinewatchError(.limit, operation: "download", subject: what,
                                 message: declared ? "larger than the \(limit) bytes its manifest declares" : "larger than \(limit) bytes (--max-layer-size)")
        }
        return n
    }
}

public final class RegistryImage: ImageSource {
    public let kind = "registry-image"
    public var references: [String] { [client.ref.description] }
    public let configDigest: String?
    public let config: ImageConfigInfo
    public let layers: [LayerDescriptor]
    public let digestMismatches: [DigestMismatch]
    /// Blobs are fetched by digest, and registries and the runtimes that pull from them verify it.
    public var contentAddressed: Bool { true }
    public let manifestDigest: String?
    let client: RegistryClient

    init(client: RegistryClient, configDigest: String, config: ImageConfigInfo, layers: [LayerDescriptor],
         digestMismatches: [DigestMismatch], manifestDigest: String?) {
        self.client = client
        self.manifestDigest = manifestDigest
        self.configDigest = configDigest
        self.config = config
        self.layers = layers
        self.digestMismatches = digestMismatches
    }

    public func openLayer(_ layer: LayerDescriptor) throws(MinewatchError) -> ByteStream {
        try client.blob(layer.digest, declaredSize: layer.size)
    }
}

/// HTTPS through URLSession: the body is written to a private temporary file as it arrives and
/// the transfer is cancelled the moment it passes `limit`, so an endless or oversized blob never
/// fills the disk. The file is unlinked once open.
enum HTTPSFetcher {
    struct State {
        var status = 0
        var headers: [String: String] = [:]
        var received: Int64 = 0
        var error: String?
        var overLimit = false
    }

    final class Delegate: NSObject, URLSessionDataDelegate, Sendable {
        let state = Mutex(State())
        let fd: Int32
        let limit: Int64
        let done = DispatchSemaphore(value: 0)
        init(fd: Int32, limit: Int64) {
            self.fd = fd
            self.limit = limit
        }

        func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
                        completionHandler: @escaping @Sendable (URLSession.ResponseDisposition) -> Void) {
            if let http = response as? HTTPURLResponse {
                state.withLock { st in
                    st.status = http.statusCode
                    for (k, v) in http.allHeaderFields { st.headers[String(describing: k).lowercased()] = String(describing: v) }
                }
            }
            completionHandler(.allow)
        }

        func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
            let stop = state.withLock { st -> Bool in
                if st.overLimit || st.error != nil { return true }
                st.received += Int64(data.count)
                if st.received > limit {
                    st.overLimit = true
                    return true
                }
                let ok = data.withUnsafeBytes { b -> Bool in
                    var off = 0
                    while off < b.count {
                        let w = retryingEINTR { write(fd, b.baseAddress.map { $0 + off }, b.count - off) }
                        if w <= 0 { return false }
                        off += w
                    }
                    return true
                }
                if !ok { st.error = "write temporary file: \(String(cString: strerror(errno)).lowercased())" }
                return !ok
            }
            if stop { dataTask.cancel() }
        }

        func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: (any Error)?) {
            if let error {
                state.withLock { st in
                    if !st.overLimit && st.error == nil { st.error = error.localizedDescription.lowercased() }
                }
            }
            done.signal()
        }
    }

    static func fetch(_ url: URL, method: String = "GET", headers: [String: String], body: [UInt8] = [], into dir: PrivateTempDir,
                      limit: Int64) throws(MinewatchError) -> (Int, [String: String], ByteStream) {
        var req = URLRequest(url: url)
        req.timeoutInterval = 120
        req.httpMethod = method
        if !body.isEmpty || method == "PUT" || method == "POST" { req.httpBody = Data(body) }
        for (k, v) in headers { req.setValue(v, forHTTPHeaderField: k) }
        let path = "\(dir.path)/dl-\(UUID().uuidString)"
        let fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        if fd < 0 { throw MinewatchError.posix("create", subject: path, errno: errno) }
        unlink(path)  // the descriptor keeps it readable; nothing is left behind
        let delegate = Delegate(fd: fd, limit: limit)
        let session = URLSession(configuration: .ephemeral, delegate: delegate, delegateQueue: nil)
        let task = session.dataTask(with: req)
        task.resume()
        delegate.done.wait()
        session.finishTasksAndInvalidate()
        let st = delegate.state.withLock { $0 }
        let handle = FileHandleFD(fd: fd, path: path)
        if st.overLimit {
            throw MinewatchError(.limit, operation: "download", subject: url.absoluteString,
                                 message: "larger than \(limit) bytes; stopped after \(st.received) bytes")
        }
        if let e = st.error { throw MinewatchError(.network, operation: "fetch", subject: url.absoluteString, message: e) }
        let src = try FileByteSource(handle: handle)
        return (st.status, st.headers, SectionStream(source: src, offset: 0, length: src.size))
    }
}
