import CWorkloadTLS
import Foundation
#if canImport(Glibc)
import Glibc
#endif

// Small blocking TCP helpers for the test workloads (loopback or a test network only).

struct WorkloadError: Error, CustomStringConvertible {
    var description: String
}

/// A connection handed from the accepting thread to the one that serves it (never shared).
final class Conn: @unchecked Sendable {
    let fd: Int32
    var buffer: [UInt8] = []
    /// Set after a TLS handshake: reads and writes go through it.
    var tls: OpaquePointer?
    init(fd: Int32) { self.fd = fd }
    deinit {
        if let tls { mw_tls_free(tls) }
        close(fd)
    }

    /// A TLS handshake as a client, sending `sni` (certificates are not checked: test servers).
    func startTLS(sni: String) throws {
        guard let t = mw_tls_client(fd, sni) else { throw WorkloadError(description: "TLS: \(String(cString: mw_tls_error()))") }
        tls = t
    }

    /// A TLS handshake as a server.
    func acceptTLS(_ ctx: UnsafeMutableRawPointer) throws {
        // An accepted socket inherits the listener's 1 s receive timeout, which a TLS read
        // cannot tell from a failure: wait for the peer instead (the process is bounded).
        var tv = timeval(tv_sec: 0, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        guard let t = mw_tls_accept(ctx, fd) else { throw WorkloadError(description: "TLS accept: \(String(cString: mw_tls_error()))") }
        tls = t
    }

    /// Decrypted bytes waiting inside TLS (poll does not see them) or already buffered.
    var hasPending: Bool { !buffer.isEmpty || (tls.map { mw_tls_pending($0) > 0 } ?? false) }

    /// Whether bytes can be read within `seconds` (buffered, pending in TLS, or on the socket).
    func readable(within seconds: Double) -> Bool {
        if hasPending { return true }
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&p, 1, Int32(seconds * 1000)) > 0
    }

    /// Connects, retrying a refused or unreachable connection every 250 ms for `retryFor`
    /// seconds, as real miners and agents retry their pool or vendor (XMRig's `retry-pause`): a
    /// server started next to the client may not listen yet on a loaded machine.
    static func connect(host: String, port: Int, retryFor: TimeInterval) throws -> Conn {
        let until = Date().addingTimeInterval(retryFor)
        while true {
            do { return try connect(host: host, port: port) } catch {
                if Date() >= until { throw error }
                usleep(250_000)
            }
        }
    }

    static func connect(host: String, port: Int) throws -> Conn {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var res: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &res) == 0, let ai = res else {
            throw WorkloadError(description: "resolve \(host)")
        }
        defer { freeaddrinfo(res) }
        let fd = socket(ai.pointee.ai_family, ai.pointee.ai_socktype, ai.pointee.ai_protocol)
        if fd < 0 || Glibc.connect(fd, ai.pointee.ai_addr, ai.pointee.ai_addrlen) != 0 {
            if fd >= 0 { close(fd) }
            throw WorkloadError(description: "connect \(host):\(port): errno \(errno)")
        }
        var tv = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        return Conn(fd: fd)
    }

    func send(_ bytes: [UInt8]) throws {
        var off = 0
        if let tls {
            while off < bytes.count {
                let n = bytes.withUnsafeBytes { mw_tls_write(tls, $0.baseAddress.map { $0 + off }, bytes.count - off) }
                if n <= 0 { throw WorkloadError(description: "TLS write failed") }
                off += n
            }
            return
        }
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress.map { $0 + off }, bytes.count - off, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { throw WorkloadError(description: "send: errno \(errno)") }
            off += n
        }
    }

    func send(_ s: String) throws { try send(Array(s.utf8)) }

    /// Reads more bytes into `buffer`; false at end of stream.
    func fill() throws -> Bool {
        var tmp = [UInt8](repeating: 0, count: 65536)
        if let tls {
            let n = tmp.withUnsafeMutableBytes { mw_tls_read(tls, $0.baseAddress, $0.count) }
            if n < 0 { throw WorkloadError(description: "TLS read failed") }
            if n == 0 { return false }
            buffer += tmp[0..<n]
            return true
        }
        let n = tmp.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n < 0 {
            if errno == EAGAIN || errno == EINTR { return true }
            throw WorkloadError(description: "recv: errno \(errno)")
        }
        if n == 0 { return false }
        buffer += tmp[0..<n]
        return true
    }

    func readLine() throws -> String? {
        while true {
            if let i = buffer.firstIndex(of: 10) {
                let line = String(decoding: buffer[..<i], as: UTF8.self)
                buffer.removeSubrange(...i)
                return line
            }
            if buffer.count > 1 << 20 { throw WorkloadError(description: "line too long") }
            if try !fill() { return nil }
        }
    }

    func readExactly(_ n: Int) throws -> [UInt8] {
        while buffer.count < n { if try !fill() { throw WorkloadError(description: "closed early") } }
        let out = Array(buffer[..<n])
        buffer.removeSubrange(..<n)
        return out
    }
}

extension Conn {
    /// One HTTP response head: its status line, the head as it came (lines ending in "\n", the
    /// blank line included) and its Content-Length (0 without one); nil when the connection
    /// closed before a status line.
    func readResponseHead() throws -> (status: String, head: String, length: Int)? {
        guard let status = try readLine() else { return nil }
        var head = status + "\n", length = 0
        while let line = try readLine() {
            head += line + "\n"
            let l = line.trimmingCharacters(in: .init(charactersIn: "\r"))
            if l.isEmpty { break }
            if l.lowercased().hasPrefix("content-length:") { length = Int(l.dropFirst(15).trimmingCharacters(in: .whitespaces)) ?? 0 }
        }
        return (status, head, length)
    }
}

/// A TCP socket listening on host:port (IPv4, SO_REUSEADDR).
func listeningSocket(host: String, port: Int, backlog: Int32) throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var one: Int32 = 1
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    addr.sin_addr.s_addr = inet_addr(host)
    let ok = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    guard ok == 0, listen(fd, backlog) == 0 else { throw WorkloadError(description: "listen \(host):\(port): errno \(errno)") }
    return fd
}

/// Listens on host:port and hands each connection to `handle` on its own thread.
func serve(host: String, port: Int, until deadline: Date, handle: @escaping @Sendable (Conn) -> Void) throws {
    let fd = try listeningSocket(host: host, port: port, backlog: 64)
    var tv = timeval(tv_sec: 1, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    log("listening on \(host):\(port)")
    while Date() < deadline {
        let c = accept(fd, nil, nil)
        if c < 0 { continue }
        let conn = Conn(fd: c)
        Thread.detachNewThread { handle(conn) }
    }
    close(fd)
}

func log(_ s: String) {
    FileHandle.standardError.write(Data("mw-workload: \(s)\n".utf8))
}

func json(_ obj: Any) -> String {
    String(decoding: (try? JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])) ?? Data("{}".utf8), as: UTF8.self)
}

func parseJSON(_ s: String) -> [String: Any]? {
    (try? JSONSerialization.jsonObject(with: Data(s.utf8))) as? [String: Any]
}

func randomHex(_ n: Int) -> String {
    (0..<n).map { _ in String(Int.random(in: 0..<16), radix: 16) }.joined()
}

/// Address and port from "host:port".
func hostPort(_ s: String) throws -> (String, Int) {
    guard let colon = s.lastIndex(of: ":"), let p = Int(s[s.index(after: colon)...]) else {
        throw WorkloadError(description: "expected host:port, got \(s)")
    }
    return (String(s[..<colon]), p)
}

/// A TLS server context from a PEM certificate and key (the test makes them with openssl).
func tlsServerContext(cert: String, key: String) throws -> UnsafeMutableRawPointer {
    guard let ctx = mw_tls_server_ctx(cert, key) else { throw WorkloadError(description: "TLS context: \(String(cString: mw_tls_error()))") }
    return ctx
}

/// Connects to a URL's host (http:// plain, https:// TLS with the URL's host, or `sni`, as server name).
func connect(url: String, sni: String? = nil) throws -> (Conn, host: String, path: String) {
    guard let u = URL(string: url), let h = u.host else { throw WorkloadError(description: "bad URL \(url)") }
    let secure = u.scheme == "https" || u.scheme == "wss"
    let c = try Conn.connect(host: h, port: u.port ?? (secure ? 443 : 80))
    if secure { try c.startTLS(sni: sni ?? h) }
    return (c, h, u.path.isEmpty ? "/" : u.path)
}
