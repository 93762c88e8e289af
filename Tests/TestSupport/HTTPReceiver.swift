import Foundation

/// A tiny HTTP/1.1 receiver on loopback: answers each request with the next status of `statuses`
/// (200 after them) and keeps the bodies.
public struct ReceiverError: Error { public var errno: Int32 }

public final class Receiver: @unchecked Sendable {
    let fd: Int32
    public let port: Int
    let lock = NSLock()
    var statuses: [Int]
    var requests: [(head: String, body: [UInt8])] = []

    public init(statuses: [Int]) throws {
        self.statuses = statuses
        let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, 4)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0, listen(s, 16) == 0 else { throw ReceiverError(errno: errno) }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(s, $0, &len) } }
        fd = s
        port = Int(UInt16(bigEndian: addr.sin_port))
        Thread { [self] in self.serve() }.start()
    }

    func serve() {
        while true {
            let c = accept(fd, nil, nil)
            if c < 0 { return }
            var data: [UInt8] = []
            var buf = [UInt8](repeating: 0, count: 65536)
            var head = ""
            var body: [UInt8] = []
            while true {
                let n = read(c, &buf, buf.count)
                if n <= 0 { break }
                data += buf[0..<n]
                if let r = data.firstRange(of: Array("\r\n\r\n".utf8)) {
                    head = String(decoding: data[..<r.lowerBound], as: UTF8.self)
                    let len = head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
                        .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
                    if data.count - r.upperBound >= len { body = Array(data[r.upperBound..<(r.upperBound + len)]); break }
                }
            }
            lock.lock()
            requests.append((head, body))
            let status = statuses.isEmpty ? 200 : statuses.removeFirst()
            lock.unlock()
            let reply = "HTTP/1.1 \(status) X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            _ = reply.withCString { write(c, $0, strlen($0)) }
            close(c)
        }
    }

    public var received: [(head: String, body: [UInt8])] { lock.lock(); defer { lock.unlock() }; return requests }
    public func stop() { shutdown(fd, Int32(SHUT_RDWR)); close(fd) }
}
