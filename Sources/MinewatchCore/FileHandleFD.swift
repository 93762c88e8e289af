#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// An owned file descriptor, closed on deinit.
public final class FileHandleFD: Sendable {
    public let fd: Int32
    public let path: String

    public init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    deinit { close(fd) }

    /// Open a file for reading without following a final symlink.
    public static func open(_ path: String, noFollow: Bool = false) throws(MinewatchError) -> FileHandleFD {
        var flags = O_RDONLY | O_CLOEXEC
        if noFollow { flags |= O_NOFOLLOW }
        let fd = retryingEINTR { Glibc.open(path, flags) }
        if fd < 0 { throw MinewatchError.posix("open", subject: path, errno: errno) }
        return FileHandleFD(fd: fd, path: path)
    }

    /// The whole of a file a user named (a path on the command line or in a config): a regular
    /// file, a pipe (`<(...)`, `/dev/stdin`) or anything else `read` works on, read to its end;
    /// more than `limit` bytes is a `limit` error.
    public static func readWhole(_ path: String, limit: Int, what: String) throws(MinewatchError) -> [UInt8] {
        let h = try open(path)
        var out: [UInt8] = []
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 16)
        defer { chunk.deallocate() }
        while true {
            let n = try h.read(into: chunk)
            if n == 0 { return out }
            if out.count + n > limit {
                throw MinewatchError(.limit, operation: "read \(what)", subject: path, message: "larger than \(limit) bytes")
            }
            out += UnsafeRawBufferPointer(rebasing: chunk[0..<n])
        }
    }

    /// The path the kernel gives for the open file (`/proc/self/fd/N`): for a file opened through
    /// `/proc/<pid>/exe`, the executable as that process's mount namespace names it, for the very
    /// file opened even if the process has since started another program. nil when unreadable.
    public func kernelPath() -> String? { readLink("/proc/self/fd/\(fd)") }

    public func stat() throws(MinewatchError) -> Glibc.stat {
        var st = Glibc.stat()
        if fstat(fd, &st) != 0 { throw MinewatchError.posix("fstat", subject: path, errno: errno) }
        return st
    }

    /// Read up to `buffer.count` bytes at `offset`; returns bytes read (0 at end of file).
    public func pread(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws(MinewatchError) -> Int {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return 0 }
        let n = retryingEINTR { Glibc.pread(fd, base, buffer.count, off_t(offset)) }
        if n < 0 { throw MinewatchError.posix("read", subject: path, errno: errno) }
        return n
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(MinewatchError) -> Int {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return 0 }
        let n = retryingEINTR { Glibc.read(fd, base, buffer.count) }
        if n < 0 { throw MinewatchError.posix("read", subject: path, errno: errno) }
        return n
    }
}

/// Where a symbolic link points (`path` relative to the folder `dirfd`, or absolute), at most
/// `size - 1` bytes of it (a longer target is cut short); nil when it is not a readable link.
public func readLink(_ path: String, in dirfd: Int32 = AT_FDCWD, size: Int = 4096) -> String? {
    var buf = [CChar](repeating: 0, count: size)
    let n = readlinkat(dirfd, path, &buf, buf.count - 1)
    if n <= 0 { return nil }
    return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
