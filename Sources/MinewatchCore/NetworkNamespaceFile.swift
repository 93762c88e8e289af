#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A process's network namespace file (/proc/<pid>/ns/net), opened to make a socket in it.
public enum NetworkNamespaceFile {
    /// Opens `pid`'s namespace file; with `expected`, only if the pid is in that namespace (by
    /// its inode number) now: a pid reused since it was read would otherwise give a socket in
    /// someone else's namespace, filed under this one's number. The caller closes the descriptor.
    public static func open(procRoot: String, pid: Int32, expected: UInt64?, operation: String) throws(MinewatchError) -> Int32 {
        let path = "\(procRoot)/\(pid)/ns/net"
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw .posix("open", subject: path, errno: errno) }
        if let expected {
            var st = stat()
            guard fstat(fd, &st) == 0, UInt64(st.st_ino) == expected else {
                close(fd)
                throw MinewatchError(.notFound, operation: operation, subject: path, message: "no longer network namespace \(expected)")
            }
        }
        return fd
    }
}
