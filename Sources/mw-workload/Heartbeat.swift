import Crypto
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// DePIN uptime farming as the public bots do it (Grass-style): a persistent WebSocket over TLS
/// to the network's server name, a small JSON PING every `period` seconds, the server's PONG;
/// almost no CPU and almost no bandwidth.
enum Heartbeat {
    /// A masked client text frame (RFC 6455 section 5.2).
    static func clientFrame(_ text: String) -> [UInt8] {
        let payload = Array(text.utf8)
        var f: [UInt8] = [0x81]
        if payload.count < 126 { f.append(0x80 | UInt8(payload.count)) } else { f += [0x80 | 126, UInt8(payload.count >> 8), UInt8(payload.count & 0xff)] }
        let mask = (0..<4).map { _ in UInt8.random(in: 0...255) }
        f += mask
        f += payload.enumerated().map { $0.element ^ mask[$0.offset % 4] }
        return f
    }

    static func serverFrame(_ text: String) -> [UInt8] {
        let payload = Array(text.utf8)
        return [0x81, UInt8(min(125, payload.count))] + payload.prefix(125)
    }

    /// Reads one frame's payload (masked or not); nil at the end.
    static func readFrame(_ c: Conn) throws -> [UInt8]? {
        guard let head = try? c.readExactly(2) else { return nil }
        var len = Int(head[1] & 0x7f)
        if len == 126 { let b = try c.readExactly(2); len = Int(b[0]) << 8 | Int(b[1]) }
        if len == 127 { throw WorkloadError(description: "frame too large") }
        let mask = head[1] & 0x80 != 0 ? try c.readExactly(4) : []
        let p = try c.readExactly(len)
        return mask.isEmpty ? p : p.enumerated().map { $0.element ^ mask[$0.offset % 4] }
    }

    static func runClient(server: String, sni: String, period: Double, deadline: Date) throws {
        let (h, p) = try hostPort(server)
        let c = try Conn.connect(host: h, port: p, retryFor: 15)
        try c.startTLS(sni: sni)
        let key = Data((0..<16).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
        try c.send("GET / HTTP/1.1\r\nHost: \(sni):\(p)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: \(key)\r\nSec-WebSocket-Version: 13\r\nOrigin: chrome-extension://lkbnfiajjmbhnfledhphioinpickokdi\r\n\r\n")
        guard let status = try c.readLine(), status.contains(" 101") else { throw WorkloadError(description: "no WebSocket upgrade") }
        while let l = try c.readLine(), !l.trimmingCharacters(in: .init(charactersIn: "\r")).isEmpty {}
        var beats = 0
        while Date() < deadline {
            let id = UUID().uuidString.lowercased()
            try c.send(clientFrame("{\"id\":\"\(id)\",\"version\":\"1.0.0\",\"action\":\"PING\",\"data\":{}}"))
            guard try readFrame(c) != nil else { throw WorkloadError(description: "the server closed the WebSocket") }
            beats += 1
            let wake = Date().addingTimeInterval(period)
            while Date() < wake && Date() < deadline { usleep(100_000) }
        }
        print("{\"heartbeats\": \(beats)}")
    }

    static func runServer(listen: String, cert: String, key: String, deadline: Date) throws {
        let ctx = UncheckedContext(ctx: try tlsServerContext(cert: cert, key: key))
        let (h, p) = try hostPort(listen)
        try serve(host: h, port: p, until: deadline) { c in
            do {
                try c.acceptTLS(ctx.ctx)
                var wsKey = ""
                while let l = try c.readLine()?.trimmingCharacters(in: .init(charactersIn: "\r")), !l.isEmpty {
                    if l.lowercased().hasPrefix("sec-websocket-key:") { wsKey = l.dropFirst(18).trimmingCharacters(in: .whitespaces) }
                }
                let accept = Data(Insecure.SHA1.hash(data: Array((wsKey + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").utf8))).base64EncodedString()
                try c.send("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: \(accept)\r\n\r\n")
                while let msg = try readFrame(c) {
                    let id = (parseJSON(String(decoding: msg, as: UTF8.self))?["id"] as? String) ?? ""
                    try c.send(serverFrame("{\"id\":\"\(id)\",\"origin_action\":\"PONG\"}"))
                }
            } catch {
                log("heartbeat server: \(error)")
            }
        }
    }
}

