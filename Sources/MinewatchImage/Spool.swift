import Foundation
import MinewatchCore
#if canImport(Glibc)
import Glibc
#endif

/// A private temporary folder (0700, from mkdtemp) removed with everything in it on deinit.
/// Untrusted downloads are spooled only here, with a size limit.
public final class PrivateTempDir: Sendable {
    public let path: String

    public init(label: String) throws(MinewatchError) {
        let base = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        var template = Array("\(base)/minewatch-\(label)-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { p -> Bool in
            guard let base = p.baseAddress else { return false }
            return mkdtemp(base) != nil
        }
        if !made { throw MinewatchError.posix("create temporary folder", subject: base, errno: errno) }
        path = String(cString: template.map { UInt8(bitPattern: $0) }.filter { $0 != 0 } + [0])
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    /// Copies `stream` into a new file here (O_EXCL, 0600), refusing more than `limit` bytes.
    public func spool(_ stream: ByteStream, name: String, limit: Int64, what: String) throws(MinewatchError) -> String {
        let file = "\(path)/\(name)"
        let fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        if fd < 0 { throw MinewatchError.posix("create", subject: file, errno: errno) }
        defer { close(fd) }
        var buf = [UInt8](repeating: 0, count: 256 * 1024)
        var total: Int64 = 0
        while true {
            let n = try buf.withMutableBytes { (b) throws(MinewatchError) -> Int in try stream.read(into: b) }
            if n == 0 { break }
            total += Int64(n)
            if total > limit {
                throw MinewatchError(.limit, operation: "download", subject: what, message: "larger than \(limit) bytes (--max-image-size)")
            }
            var off = 0
            while off < n {
                let w = buf.withUnsafeBytes { b in retryingEINTR { write(fd, b.baseAddress.map { $0 + off }, n - off) } }
                if w < 0 { throw MinewatchError.posix("write", subject: file, errno: errno) }
                off += w
            }
        }
        return file
    }
}
