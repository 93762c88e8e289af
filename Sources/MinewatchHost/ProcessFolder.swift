import MinewatchCore
#if canImport(Glibc)
import Glibc
#endif

/// A process's /proc folder, opened once and checked to be the process that was sampled (its start
/// time). Everything below it is then opened relative to that folder: once the process is gone its
/// folder answers nothing, so a pid reused meanwhile (by a host process, say) is never read through
/// (its `root` would be the host's `/`).
public final class ProcessFolder {
    public let fd: Int32
    public let path: String

    /// nil when the process is gone or is no longer the one that started at `startTicks`.
    public init?(procRoot: String, pid: Int32, startTicks: UInt64) {
        let path = "\(procRoot)/\(pid)"
        let fd = retryingEINTR { Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        if fd < 0 { return nil }
        let stat = retryingEINTR { openat(fd, "stat", O_RDONLY | O_CLOEXEC) }
        var buf = [UInt8](repeating: 0, count: 2048)
        let n = stat < 0 ? -1 : buf.withUnsafeMutableBytes { b in retryingEINTR { read(stat, b.baseAddress, b.count) } }
        if stat >= 0 { close(stat) }
        guard n > 0, let parsed = ProcParsers.stat(Array(buf[0..<n])), parsed.start == startTicks else {
            close(fd)
            return nil
        }
        self.fd = fd
        self.path = path
    }

    deinit { close(fd) }

    /// Opens an entry of the folder (`exe`, a kernel-made link to the very file the process runs).
    public func open(_ name: String, flags: Int32) -> FileHandleFD? {
        let f = retryingEINTR { openat(fd, name, flags | O_CLOEXEC) }
        return f < 0 ? nil : FileHandleFD(fd: f, path: "\(path)/\(name)")
    }

    /// The bytes of an entry of the folder (`maps`, `task/<tid>/stat`), at most `limit`; nil when it
    /// cannot be opened or is empty.
    public func contents(_ name: String, limit: Int) -> [UInt8]? {
        guard let h = open(name, flags: O_RDONLY) else { return nil }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: min(limit, 64 << 10))
        while out.count < limit {
            let n = buf.withUnsafeMutableBytes { b in retryingEINTR { read(h.fd, b.baseAddress, min(b.count, limit - out.count)) } }
            if n <= 0 { break }
            out.append(contentsOf: buf[0..<n])
        }
        return out.isEmpty ? nil : out
    }

    /// The text of a link of the folder (`cwd`: the working folder as the container sees it).
    public func link(_ name: String) -> String? { readLink(name, in: fd) }

    /// The process's root folder as a confined root: paths below it resolve as they do for the
    /// process itself and never leave it.
    public func root(links: ConfinedRoot.Links = .inRoot) -> ConfinedRoot? {
        let f = retryingEINTR { openat(fd, "root", O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        return f < 0 ? nil : ConfinedRoot(fd: f, path: "\(path)/root", links: links)
    }
}
