import Foundation
import MinewatchCore
#if canImport(Glibc)
import Glibc
#endif

/// Where an HTTP/1.1 connection goes: a unix socket (the engine API) or host:port (a registry).
public enum HTTPEndpoint: Sendable, Hashable, CustomStringConvertible {
    case unix(path: String)
    case tcp(host: String, port: Int)

    public var description: String {
        switch self {
        case .unix(let p): "unix://\(p)"
        case .tcp(let h, let p): "\(h):\(p)"
        }
    }
}

public struct HTTPResponse {
    public var status: Int
    /// Header names in lower case.
    public var headers: [String: String]
    public var body: ByteStream
}

/// A small blocking HTTP/1.1 client over a socket: one request per connection, bodies streamed
/// (Content-Length, chunked, or to end of connection), timeouts on every read and write.
/// Plain HTTP only; HTTPS registries go through URLSession (`HTTPSFetcher` in MinewatchImage).
public struct HTTPClient: Sendable {
    public var timeoutSeconds: Int = 60
    public static let maxHeaderBytes = 64 * 1024
    public init() {}

    public func request(
        _ endpoint: HTTPEndpoint, method: String = "GET", path: String, headers: [String: String] = [:], body requestBody: [UInt8] = []
    ) throws(MinewatchError) -> HTTPResponse {
        let fd = try connect(endpoint)
        let conn = SocketStream(fd: fd, name: "\(endpoint)\(path)")
        var host = "localhost"
        if case .tcp(let h, let p) = endpoint { host = h.contains(":") ? "[\(h)]:\(p)" : "\(h):\(p)" }
        var req = "\(method) \(path) HTTP/1.1\r\nHost: \(host)\r\nUser-Agent: minewatch/\(MinewatchVersion.current)\r\nConnection: close\r\n"
        for (k, v) in headers.sorted(by: { $0.key < $1.key }) { req += "\(k): \(v)\r\n" }
        if method == "POST" || method == "PUT" || !requestBody.isEmpty, headers.keys.allSatisfy({ $0.lowercased() != "content-length" }) {
            req += "Content-Length: \(requestBody.count)\r\n"
        }
        req += "\r\n"
        try conn.write(Array(req.utf8) + requestBody)
        let (status, hdrs, leftover) = try readHead(conn)
        let raw = PrefixedStream(prefix: leftover, inner: conn)
        let body: ByteStream
        if method == "HEAD" || status == 204 || status == 304 {
            body = EmptyStream()
        } else if hdrs["transfer-encoding"]?.lowercased().contains("chunked") == true {
            body = ChunkedStream(raw, name: conn.name)
        } else if let cl = hdrs["content-length"].flatMap({ Int64($0.trimmingCharacters(in: .whitespaces)) }), cl >= 0 {
            body = LimitedStream(raw, length: cl, name: conn.name)
        } else {
            body = raw
        }
        return HTTPResponse(status: status, headers: hdrs, body: body)
    }

    func connect(_ endpoint: HTTPEndpoint) throws(MinewatchError) -> Int32 {
        switch endpoint {
        case .unix(let path):
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            if fd < 0 { throw MinewatchError.posix("socket", subject: path, errno: errno) }
            var addr = sockaddr_un()
            addr.sun_family = sa_family_t(AF_UNIX)
            let bytes = Array(path.utf8)
            guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else {
                close(fd)
                throw MinewatchError(.invalidArgument, operation: "connect", subject: path, message: "socket path too long")
            }
            withUnsafeMutableBytes(of: &addr.sun_path) { p in
                for (i, b) in bytes.enumerated() { p[i] = b }
                p[bytes.count] = 0
            }
            let rc = withUnsafePointer(to: &addr) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            if rc != 0 {
                let e = errno
                close(fd)
                throw MinewatchError.posix("connect", subject: path, errno: e)
            }
            setTimeouts(fd)
            return fd
        case .tcp(let host, let port):
            var hints = addrinfo()
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            hints.ai_family = AF_UNSPEC
            var res: UnsafeMutablePointer<addrinfo>?
            let rc = getaddrinfo(host, String(port), &hints, &res)
            guard rc == 0, let first = res else {
                throw MinewatchError(.network, operation: "resolve", subject: host, message: String(cString: gai_strerror(rc)).lowercased())
            }
            defer { freeaddrinfo(res) }
            var lastErr: Int32 = 0
            var ai: UnsafeMutablePointer<addrinfo>? = first
            while let a = ai {
                let fd = socket(a.pointee.ai_family, a.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue), a.pointee.ai_protocol)
                if fd >= 0 {
                    setTimeouts(fd)
                    if Glibc.connect(fd, a.pointee.ai_addr, a.pointee.ai_addrlen) == 0 { return fd }
                    lastErr = errno
                    close(fd)
                }
                ai = a.pointee.ai_next
            }
            throw MinewatchError.posix("connect", subject: "\(host):\(port)", errno: lastErr)
        }
    }

    func setTimeouts(_ fd: Int32) {
        var tv = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    func readHead(_ conn: SocketStream) throws(MinewatchError) -> (Int, [String: String], [UInt8]) {
        var buf: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            if let end = Self.headEnd(buf) {
                let head = String(decoding: buf[..<end], as: UTF8.self)
                let leftover = Array(buf[(end + 4)...])
                var lines = head.components(separatedBy: "\r\n")
                let statusLine = lines.removeFirst()
                let parts = statusLine.split(separator: " ", maxSplits: 2)
                guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]) else {
                    throw MinewatchError(.format, operation: "read HTTP response", subject: conn.name, message: "bad status line '\(statusLine.prefix(80))'")
                }
                var headers: [String: String] = [:]
                for l in lines {
                    guard let colon = l.firstIndex(of: ":") else { continue }
                    let k = l[..<colon].lowercased()
                    let v = l[l.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                    headers[k] = headers[k].map { "\($0), \(v)" } ?? v
                }
                if status == 100 { buf = leftover; continue }
                return (status, headers, leftover)
            }
            if buf.count > Self.maxHeaderBytes {
                throw MinewatchError(.limit, operation: "read HTTP response", subject: conn.name, message: "headers larger than \(Self.maxHeaderBytes) bytes")
            }
            let n = try chunk.withMutableBytes { (b) throws(MinewatchError) -> Int in try conn.read(into: b) }
            if n == 0 { throw MinewatchError(.network, operation: "read HTTP response", subject: conn.name, message: "connection closed before the response") }
            buf += chunk[0..<n]
        }
    }

    static func headEnd(_ b: [UInt8]) -> Int? {
        guard b.count >= 4 else { return nil }
        for i in 0...(b.count - 4) where b[i] == 13 && b[i + 1] == 10 && b[i + 2] == 13 && b[i + 3] == 10 { return i }
        return nil
    }
}

/// A connected socket as a byte stream; closes on deinit.
public final class SocketStream: ByteStream {
    let fd: Int32
    let name: String
    init(fd: Int32, name: String) {
        self.fd = fd
        self.name = name
    }
    deinit { close(fd) }

    func write(_ bytes: [UInt8]) throws(MinewatchError) {
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { b in retryingEINTR { send(fd, b.baseAddress.map { $0 + off }, bytes.count - off, Int32(MSG_NOSIGNAL)) } }
            if n < 0 { throw MinewatchError.posix("send", subject: name, errno: errno) }
            off += n
        }
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(MinewatchError) -> Int {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return 0 }
        let n = retryingEINTR { recv(fd, base, buffer.count, 0) }
        if n < 0 {
            let e = errno
            if e == EAGAIN || e == EWOULDBLOCK {
                throw MinewatchError(.network, operation: "read", subject: name, message: "timed out")
            }
            throw MinewatchError.posix("read", subject: name, errno: e)
        }
        return n
    }
}

/// Exactly `length` bytes of the inner stream; an early end is an error.
public final class LimitedStream: ByteStream {
    let inner: ByteStream
    var left: Int64
    let name: String
    init(_ inner: ByteStream, length: Int64, name: String) {
        self.inner = inner
        self.left = length
        self.name = name
    }
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(MinewatchError) -> Int {
        if left == 0 { return 0 }
        let want = Int(min(Int64(buffer.count), left))
        let n = try inner.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want]))
        if n == 0 { throw MinewatchError(.network, operation: "read body", subject: name, message: "connection closed \(left) bytes early") }
        left -= Int64(n)
        return n
    }
}

/// HTTP/1.1 chunked transfer decoding.
public final class ChunkedStream: ByteStream {
    let inner: ByteStream
    let name: String
    var left: Int64 = 0
    var done = false
    var one = [UInt8](repeating: 0, count: 1)
    init(_ inner: ByteStream, name: String) {
        self.inner = inner
        self.name = name
    }

    func readLine() throws(MinewatchError) -> String {
        var line: [UInt8] = []
        while true {
            let n = try one.withMutableBytes { (b) throws(MinewatchError) -> Int in try inner.read(into: b) }
            if n == 0 { throw MinewatchError(.network, operation: "read chunk", subject: name, message: "connection closed inside chunked body") }
            if one[0] == 10 { break }
            if one[0] != 13 { line.append(one[0]) }
            if line.count > 1024 { throw MinewatchError(.format, operation: "read chunk", subject: name, message: "chunk header too long") }
        }
        return String(decoding: line, as: UTF8.self)
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(MinewatchError) -> Int {
        if done { return 0 }
        if left == 0 {
            let sizeText = try readLine().split(separator: ";").first.map(String.init) ?? ""
            guard let size = Int64(sizeText.trimmingCharacters(in: .whitespaces), radix: 16), size >= 0 else {
                throw MinewatchError(.format, operation: "read chunk", subject: name, message: "bad chunk size '\(sizeText.prefix(20))'")
            }
            if size == 0 {
                while try !readLine().isEmpty {}  // trailers
                done = true
                return 0
            }
            left = size
        }
        let want = Int(min(Int64(buffer.count), left))
        let n = try inner.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want]))
        if n == 0 { throw MinewatchError(.network, operation: "read chunk", subject: name, message: "connection closed inside a chunk") }
        left -= Int64(n)
        if left == 0 { _ = try readLine() }
        return n
    }
}
