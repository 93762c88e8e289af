import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Small files the kernel generates when read (cgroup counters, /proc/<pid>/net/dev), read every
/// pass for every container: kept open and read again with pread at offset 0, which regenerates
/// them, so a pass costs no path walk and no open per file (with 500 containers the opens cost
/// more than the reads). Files not read during a pass are closed by `sweep()`. At most
/// `capacity` are kept (the rest are opened per read).
/// Used from one thread only (the sampler's).
public final class KeptFiles {
    var fds: [String: (fd: Int32, pass: UInt64)] = [:]
    var pass: UInt64 = 0
    public let capacity: Int

    /// `capacity` is bounded by an eighth of the soft descriptor limit (the sampler keeps two of
    /// these beside `ProcStatFiles`, which takes up to half, and rings and sockets need the rest).
    public init(capacity: Int = 8192) {
        var lim = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &lim) == 0 {
            self.capacity = min(capacity, max(0, Int(min(lim.rlim_cur, 1 << 30)) / 8 - 16))
        } else {
            self.capacity = min(capacity, 64)
        }
    }

    deinit { for f in fds.values { close(f.fd) } }

    /// Files open now.
    public var count: Int { fds.count }

    /// The file at `path`, at most `limit` bytes; nil when it cannot be opened or read (a kept
    /// file that fails is closed: its cgroup or process is gone). `key` names what the open file
    /// stands for when the path alone does not (a /proc/<pid> file is the process that started
    /// at a given tick, not whichever process has the pid later).
    public func read(_ path: String, key: String? = nil, limit: Int = 16384) -> [UInt8]? {
        withContents(path, key: key, limit: limit) { Array($0) }
    }

    /// Reused for every read: most files are a line or a few hundred bytes.
    var scratch = [UInt8](repeating: 0, count: 4096)

    /// `body` over the file's bytes (see `read`), valid only during the call (the buffer is this
    /// reader's: `body` must not read through it again); nil when the file cannot be opened or
    /// read.
    public func withContents<R>(_ path: String, key: String? = nil, limit: Int = 16384, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R? {
        let name = key ?? path
        var fd = fds[name]?.fd ?? -1
        let kept = fd >= 0
        if !kept {
            fd = open(path, O_RDONLY | O_CLOEXEC)
            if fd < 0 { return nil }
        }
        var used = 0
        while used < limit {
            if used == scratch.count { scratch += [UInt8](repeating: 0, count: min(limit, scratch.count * 2) - scratch.count) }
            let room = min(scratch.count, limit) - used
            let n = scratch.withUnsafeMutableBytes { b in b.baseAddress.map { pread(fd, $0 + used, room, off_t(used)) } ?? -1 }
            if n < 0 {
                close(fd)
                fds[name] = nil
                return nil
            }
            used += n
            // A read that does not fill the room is the end: the kernel's generated files (seq_file,
            // kernfs) fill what is asked up to their end, and regular files end there too. That
            // saves a second pread per file per pass.
            if n < room { break }
        }
        if kept {
            fds[name]?.pass = pass
        } else if fds.count < capacity {
            fds[name] = (fd, pass)
        } else {
            close(fd)
        }
        return scratch.withUnsafeBufferPointer { b in body(UnsafeBufferPointer(rebasing: b[0..<used])) }
    }

    /// The decimal number a file holds on its first line (leading spaces allowed: cgroup v1's
    /// counters), or nil.
    public func number(_ path: String) -> UInt64? {
        withContents(path, limit: 64) { b -> UInt64? in
            let digits = b.drop { $0 == 0x20 }.prefix { $0 != 0x0A }
            return digits.isEmpty ? nil : UInt64(String(decoding: digits, as: UTF8.self))
        } ?? nil
    }

    /// Ends a pass: closes the files that were not read during it.
    public func sweep() {
        for (name, f) in fds where f.pass != pass {
            close(f.fd)
            fds[name] = nil
        }
        pass &+= 1
    }
}
