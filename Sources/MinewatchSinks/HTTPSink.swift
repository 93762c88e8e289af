import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import MinewatchCore
import MinewatchHTTP
import MinewatchModel
import Synchronization

/// Posts each alert as one JSON document to an HTTP receiver (Falcosidekick's `POST /`, or any
/// webhook that takes the same body). A failed post is retried with exponential back-off
/// (0.5 s doubling, at most 30 s between tries, `retries` times); the sink's own thread waits,
/// never a pass: while it waits, its bounded queue fills and what does not fit is dropped and
/// counted. Telemetry is not posted; responses are posted when `render` gives them a body.
public final class HTTPSink: Sink {
    public let name: String
    let url: URL
    let timeout: Double
    let retries: Int
    let token: String?
    let render: @Sendable (WatchRecord) -> [UInt8]?
    /// Waits between tries (tests pass a shorter one).
    let backoff: @Sendable (Int) -> Double
    let lastStatus = Atomic<Int>(0)

    public init(name: String, url: URL, timeout: Double = 5, retries: Int = 5, token: String? = nil,
                backoff: @escaping @Sendable (Int) -> Double = { min(30, 0.5 * pow(2, Double($0))) },
                render: @escaping @Sendable (WatchRecord) -> [UInt8]?) {
        self.name = name
        self.url = url
        self.timeout = timeout
        self.retries = retries
        self.token = token
        self.backoff = backoff
        self.render = render
    }

    public func write(_ record: WatchRecord) throws(MinewatchError) {
        guard let body = render(record) else { return }
        var attempt = 0
        while true {
            let outcome: Result<Int, MinewatchError>
            do throws(MinewatchError) { outcome = .success(try post(body)) } catch { outcome = .failure(error) }
            let err: MinewatchError
            let retryable: Bool
            switch outcome {
            case .success(let status):
                lastStatus.store(status, ordering: .relaxed)
                if (200..<300).contains(status) { return }
                err = MinewatchError(.network, operation: "post alert", subject: url.absoluteString, message: "receiver answered \(status)")
                // A 4xx other than 408/429 will not get better by retrying.
                retryable = !(400..<500).contains(status) || status == 408 || status == 429
            case .failure(let e):
                err = e
                retryable = true
            }
            guard retryable, attempt < retries else { throw err }
            usleep(UInt32(backoff(attempt) * 1_000_000))
            attempt += 1
        }
    }

    func post(_ body: [UInt8]) throws(MinewatchError) -> Int {
        var headers = ["Content-Type": "application/json"]
        if let token { headers["Authorization"] = "Bearer \(token)" }
        if url.scheme == "http", let host = url.host {
            var client = HTTPClient()
            client.timeoutSeconds = max(1, Int(timeout.rounded(.up)))
            var path = url.path.isEmpty ? "/" : url.path
            if let q = url.query { path += "?\(q)" }
            let r = try client.request(.tcp(host: host, port: url.port ?? 80), method: "POST", path: path, headers: headers, body: body)
            _ = try? r.body.readAll(limit: 1 << 20, what: "receiver reply")
            return r.status
        }
        return try postWithURLSession(body, headers: headers)
    }

    /// HTTPS through Foundation's URLSession (the system's TLS and CA store).
    func postWithURLSession(_ body: [UInt8], headers: [String: String]) throws(MinewatchError) -> Int {
        var req = URLRequest(url: url, timeoutInterval: timeout)
        req.httpMethod = "POST"
        req.httpBody = Data(body)
        for (k, v) in headers { req.setValue(v, forHTTPHeaderField: k) }
        let done = DispatchSemaphore(value: 0)
        let result = Mutex<(Int, String?)>((0, nil))
        URLSession.shared.dataTask(with: req) { _, resp, err in
            result.withLock { $0 = ((resp as? HTTPURLResponse)?.statusCode ?? 0, err.map { "\($0.localizedDescription)" }) }
            done.signal()
        }.resume()
        if done.wait(timeout: .now() + timeout + 1) == .timedOut {
            throw MinewatchError(.network, operation: "post alert", subject: url.absoluteString, message: "timed out after \(Durations.format(timeout))")
        }
        let (status, err) = result.withLock { $0 }
        if let err { throw MinewatchError(.network, operation: "post alert", subject: url.absoluteString, message: err) }
        return status
    }
}
