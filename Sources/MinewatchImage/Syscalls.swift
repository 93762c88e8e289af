import MinewatchCore
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

/// A directory opened as the root of an untrusted tree. Every path below it is opened one
/// component at a time with `openat(O_NOFOLLOW)`, so neither `..` nor a symlink can lead
/// outside the root (the approach of apple/containerization's FileDescriptorOps).
public final class SafeDirectory: Sendable {
    public let fd: Int32
    public let path: String

    public init(path: String) throws(MinewatchError) {
        let fd = retryingEINTR { Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        if fd < 0 { throw MinewatchError.posix("open directory", subject: path, errno: errno) }
        self.fd = fd
        self.path = path
    }

    init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    deinit { close(fd) }

    /// Split a relative path into safe components; rejects `..` and empty paths.
    public static func components(_ rel: String) throws(MinewatchError) -> [String] {
        let parts = rel.split(separator: "/", omittingEmptySubsequences: true).map(String.init).filter { $0 != "." }
        if parts.isEmpty { throw MinewatchError(.unsafePath, operation: "resolve path", subject: rel, message: "empty path") }
        if parts.contains("..") {
            throw MinewatchError(.unsafePath, operation: "resolve path", subject: rel, message: "path leaves its root ('..')")
        }
        return parts
    }

    /// Open a regular file below the root. Symlinks anywhere on the way are refused.
    public func openFile(_ rel: String) throws(MinewatchError) -> FileHandleFD {
        let parts = try Self.components(rel)
        var dirfd = fd
        var opened: [Int32] = []
        defer { for d in opened { close(d) } }
        for p in parts.dropLast() {
            let next = retryingEINTR { openat(dirfd, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
            if next < 0 {
                let e = errno
                let msg = e == ELOOP || e == ENOTDIR ? "a component is a symlink or not a directory" : String(cString: strerror(e)).lowercased()
                throw MinewatchError(.unsafePath, operation: "open", subject: "\(path)/\(rel)", errno: e, message: msg)
            }
            opened.append(next)
            dirfd = next
        }
        let last = parts[parts.count - 1]
        let f = retryingEINTR { openat(dirfd, last, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC) }
        if f < 0 {
            let e = errno
            if e == ELOOP { throw MinewatchError(.unsafePath, operation: "open", subject: "\(path)/\(rel)", errno: e, message: "is a symlink") }
            throw MinewatchError.posix("open", subject: "\(path)/\(rel)", errno: e)
        }
        let h = FileHandleFD(fd: f, path: "\(path)/\(rel)")
        let st = try h.stat()
        if (st.st_mode & S_IFMT) != S_IFREG {
            throw MinewatchError(.unsafePath, operation: "open", subject: "\(path)/\(rel)", message: "not a regular file")
        }
        return h
    }
}
