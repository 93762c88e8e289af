import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import MinewatchCore
import Synchronization

/// The agent's HTTP endpoints (`GET /metrics` and what later features add), served by
/// Hummingbird on threads of its own so a slow scrape never touches a pass. Bound to loopback by
/// default; bound anywhere else it refuses every request without `Authorization: Bearer <token>`.
public final class AgentServer: Sendable {
    /// What a handler sees of a request: the path's parameters (`/api/containers/:id`) and the
    /// query's.
    public struct RouteRequest: Sendable {
        public var parameters: [String: String]
        public var query: [String: String]
        /// A POST's body (at most the route's `maxBody`).
        public var body: [UInt8]
        public init(parameters: [String: String] = [:], query: [String: String] = [:], body: [UInt8] = []) {
            self.parameters = parameters
            self.query = query
            self.body = body
        }
    }

    public struct RouteResponse: Sendable {
        public var status: Int
        public var contentType: String
        public var body: [UInt8]
        public init(status: Int = 200, contentType: String, body: [UInt8]) {
            self.status = status
            self.contentType = contentType
            self.body = body
        }
        public static func json(_ body: [UInt8], status: Int = 200) -> RouteResponse {
            RouteResponse(status: status, contentType: "application/json", body: body)
        }
        public static func error(_ status: Int, _ message: String) -> RouteResponse {
            let text = (try? JSONSerialization.data(withJSONObject: ["error": message])) ?? Data()
            return .json(Array(text), status: status)
        }
    }

    public struct Route: Sendable {
        public var path: String
        /// Parameter names in `path` (`:id`).
        public var parameterNames: [String]
        /// Served without the token: the dashboard's page and script, which hold no data (a
        /// browser cannot send a token for the page itself; the page sends it for the API).
        public var isPublic = false
        /// GET, or POST (the body is read up to `maxBody`; a longer one is answered 413).
        public var post = false
        public var maxBody = 0
        public var handler: @Sendable (RouteRequest) async -> RouteResponse
        public init(path: String, isPublic: Bool = false, handler: @escaping @Sendable (RouteRequest) async -> RouteResponse) {
            self.path = path
            self.isPublic = isPublic
            parameterNames = path.split(separator: "/").filter { $0.hasPrefix(":") }.map { String($0.dropFirst()) }
            self.handler = handler
        }
        /// A POST route taking a body of at most `maxBody` bytes.
        public static func post(_ path: String, maxBody: Int, handler: @escaping @Sendable (RouteRequest) async -> RouteResponse) -> Route {
            var r = Route(path: path, isPublic: true, handler: handler)
            r.post = true
            r.maxBody = maxBody
            return r
        }
        /// A route whose answer does not depend on the request.
        public static func fixed(_ path: String, isPublic: Bool = false, _ handler: @escaping @Sendable () -> (contentType: String, body: [UInt8])) -> Route {
            Route(path: path, isPublic: isPublic) { _ in
                let (t, b) = handler()
                return RouteResponse(contentType: t, body: b)
            }
        }
    }

    public let host: String
    public let port: Int
    let token: String?
    let routes: [Route]
    /// HTTPS with this certificate (reloaded when its files change); plain HTTP without.
    let tls: CertificateReloader?
    /// Without the loopback-or-token guard: for the admission webhook, whose client (the API
    /// server) reaches it by a cluster name and authenticates it by its certificate.
    let open: Bool
    let boundPort = Mutex<Int?>(nil)
    let failure = Mutex<String?>(nil)
    let started = DispatchSemaphore(value: 0)
    let task = Mutex<Task<Void, Never>?>(nil)
    let executor = QueueExecutor()
    /// Requests refused for a missing or wrong token.
    public let refusals = RequestCounter()
    public var refused: Int { refusals.value.load(ordering: .relaxed) }

    /// `token` is required when `host` is not loopback (the caller checks that one is set).
    public init(host: String, port: Int, token: String?, routes: [Route], tls: CertificateReloader? = nil, open: Bool = false) {
        self.host = host
        self.port = port
        self.token = token
        self.routes = routes
        self.tls = tls
        self.open = open
    }

    /// Starts serving; returns once the socket is bound (the port actually bound, for port 0),
    /// or throws why it could not bind.
    @discardableResult
    public func start() throws(MinewatchError) -> Int {
        let router = Router()
        if !open {
            router.add(middleware: BearerMiddleware(token: token, refused: refusals, publicPaths: Set(routes.filter(\.isPublic).map(\.path))))
        }
        for r in routes {
            let handler = r.handler
            let names = r.parameterNames
            let maxBody = r.maxBody
            let respond: @Sendable (Request, BasicRequestContext) async throws -> Response = { request, context in
                var params: [String: String] = [:]
                for n in names { if let v = context.parameters.get(n) { params[n] = v } }
                var query: [String: String] = [:]
                for (k, v) in request.uri.queryParameters { query[String(k)] = String(v) }
                var body: [UInt8] = []
                if maxBody > 0 {
                    guard let buffer = try? await request.body.collect(upTo: maxBody) else {
                        return Response(status: .contentTooLarge, headers: [.contentType: "text/plain; charset=utf-8"],
                                        body: ResponseBody(byteBuffer: ByteBuffer(string: "body larger than \(maxBody) bytes\n")))
                    }
                    body = Array(buffer.readableBytesView)
                }
                let answer = await handler(RouteRequest(parameters: params, query: query, body: body))
                var headers = HTTPFields()
                headers[.contentType] = answer.contentType
                headers[.cacheControl] = "no-store"
                if let n = HTTPField.Name("X-Content-Type-Options") { headers[n] = "nosniff" }
                // Nothing the page needs comes from elsewhere.
                if let n = HTTPField.Name("Content-Security-Policy") { headers[n] = "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:" }
                return Response(status: HTTPResponse.Status(code: answer.status), headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: answer.body)))
            }
            if r.post { router.post(RouterPath(r.path), use: respond) } else { router.get(RouterPath(r.path), use: respond) }
        }
        var logger = Logger(label: "minewatch.http") { _ in StreamLogHandler.standardError(label: "minewatch.http") }
        // Bind failures surface as errors of start(); cancelling the server on stop logs an error that is not one.
        logger.logLevel = .critical
        let server: HTTPServerBuilder
        do { server = try tls.map { try .tls(.http1(), tlsConfiguration: $0.configuration()) } ?? .http1() } catch {
            throw MinewatchError(.invalidArgument, operation: "configure TLS", subject: tls?.certFile, message: "\(error)")
        }
        let app = Application(router: router, server: server, configuration: .init(address: .hostname(host, port: port), serverName: "minewatch"),
                              onServerRunning: { [self] channel in
                                  boundPort.withLock { $0 = channel.localAddress?.port ?? port }
                                  started.signal()
                              }, logger: logger)
        // On a queue of its own rather than the shared cooperative pool: a caller that blocks
        // pool threads (a test runner, a busy host) must not keep the server from starting.
        let t = Task.detached(executorPreference: executor) { [self] in
            do {
                // No signal handling here: the agent's own loop handles SIGINT, SIGTERM and SIGHUP.
                try await app.runService(gracefulShutdownSignals: [])
            } catch {
                failure.withLock { $0 = "\(error)" }
                started.signal()
            }
        }
        task.withLock { $0 = t }
        if started.wait(timeout: .now() + 15) == .timedOut {
            throw MinewatchError(.network, operation: "listen", subject: "\(host):\(port)", message: "HTTP server did not start within 15 s")
        }
        if let f = failure.withLock({ $0 }) {
            throw MinewatchError(.network, operation: "listen", subject: "\(host):\(port)", message: f.split(separator: "\n").first.map(String.init) ?? f)
        }
        return boundPort.withLock { $0 } ?? port
    }

    public func stop() {
        task.withLock { $0?.cancel() }
    }
}

/// Refuses requests without the bearer token (401 with `WWW-Authenticate: Bearer`), comparing
/// in constant time. Without a token every request passes (loopback only).
struct BearerMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: String?
    let refused: RequestCounter
    let publicPaths: Set<String>

    /// Names a request to a loopback-only endpoint may carry in `Host`: anything else is a page
    /// elsewhere reaching it through DNS rebinding.
    static func isLoopbackHost(_ host: String) -> Bool {
        var h = Substring(host.lowercased())
        if h.hasPrefix("[") { h = h.dropFirst().prefix { $0 != "]" } } else if let colon = h.lastIndex(of: ":"), h.filter({ $0 == ":" }).count == 1 { h = h[..<colon] }
        return h == "localhost" || h == "::1" || h.hasPrefix("127.")
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let token else {
            // Without a token the endpoint is on loopback: refuse what a browser was tricked into.
            let host = request.head.authority ?? ""
            let crossSite = HTTPField.Name("Sec-Fetch-Site").map { request.headers[$0] == "cross-site" } ?? false
            if !Self.isLoopbackHost(host) || crossSite {
                refused.value.add(1, ordering: .relaxed)
                return Response(status: .forbidden, headers: [.contentType: "text/plain; charset=utf-8"],
                                body: ResponseBody(byteBuffer: ByteBuffer(string: "only loopback names are served here\n")))
            }
            return try await next(request, context)
        }
        if publicPaths.contains(request.uri.path) { return try await next(request, context) }
        let given = request.headers[.authorization] ?? ""
        let expected = "Bearer " + token
        if Self.constantTimeEqual(Array(given.utf8), Array(expected.utf8)) { return try await next(request, context) }
        refused.value.add(1, ordering: .relaxed)
        var headers = HTTPFields()
        headers[.wwwAuthenticate] = "Bearer realm=\"minewatch\""
        headers[.contentType] = "text/plain; charset=utf-8"
        return Response(status: .unauthorized, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: "a bearer token is required\n")))
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var diff = UInt8(a.count == b.count ? 0 : 1)
        for i in 0..<max(a.count, b.count) { diff |= (i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0) }
        return diff == 0
    }
}

/// Runs the server's async work on a serial dispatch queue of its own (threads outside the
/// cooperative pool); tasks the server starts inherit it.
final class QueueExecutor: TaskExecutor {
    let queue = DispatchQueue(label: "minewatch.http", qos: .utility)

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        queue.async { job.runSynchronously(on: executor) }
    }
}

/// A count shared with the request handlers.
public final class RequestCounter: Sendable {
    public let value = Atomic<Int>(0)
}

/// Reads a bearer token file: its first line, trimmed; a missing or empty file is an error.
public enum TokenFile {
    public static func read(_ path: String) throws(MinewatchError) -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw MinewatchError(.io, operation: "read token", subject: path, message: "cannot read the token file")
        }
        let token = String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline).first.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) } ?? ""
        guard token.count >= 16 else {
            throw MinewatchError(.invalidArgument, operation: "read token", subject: path, message: "the token must be at least 16 characters")
        }
        return token
    }
}
