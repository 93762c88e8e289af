import Foundation
#if canImport(Glibc)
import Glibc
#endif

// Small blocking TCP helpers for the test workloads (loopback or a test network only).

struct WorkloadError: Error, CustomStringConvertible {
    var description: String
}

final class Conn: @unchecked Sendable {
    let fd: Int32
    var buffer: [UInt8] = []
    init(fd: Int32) { self.fd = fd }
    deinit { close(fd) }

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

/// Listens on host:port and hands each connection to `handle` on its own thread.
func serve(host: String, port: Int, until deadline: Date, handle: @escaping @Sendable (Conn) -> Void) throws {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var one: Int32 = 1
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    addr.sin_addr.s_addr = inet_addr(host)
    let ok = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    guard ok == 0, listen(fd, 64) == 0 else { throw WorkloadError(description: "listen \(host):\(port): errno \(errno)") }
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
