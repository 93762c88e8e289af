import CShims
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Why a path below a `ConfinedRoot` was not opened. Every refusal names the path as the
/// root's owner would write it (`root/rel`).
public struct PathRefusal: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Reason: Sendable, Equatable {
        /// The relative path is empty (or only `.` and `/`).
        case empty
        /// The path holds a NUL byte: the system would see a different (shorter) name than the
        /// one checked (`..\0x` is `..` to openat).
        case nulByte
        /// `..` would leave the root (refused lexically where links are refused).
        case leavesRoot
        /// A symlink on the way or at the end, where links are refused.
        case symlink
        /// A procfs-style link (`/proc/self/root`, `/proc/<pid>/fd/N`) on the way.
        case magicLink
        /// The path crosses onto another mount where the root forbids it.
        case crossesMount
        /// A component on the way is not a folder.
        case notDirectory
        /// The path names something other than what was asked for (a FIFO, a device, a socket, a folder).
        case wrongKind(FileKind)
        /// A file of a kernel pseudo-filesystem (procfs, sysfs, debugfs, tracefs, securityfs,
        /// cgroupfs): reading one can have side effects (`/proc/kmsg` consumes the kernel log).
        case pseudoFile
        /// The file is larger than the caller's limit.
        case tooLarge(size: Int64, limit: Int64)
        case missing
        /// Any other error of the system, by errno.
        case system(Int32)
    }

    public var path: String
    public var reason: Reason

    public init(path: String, reason: Reason) {
        self.path = path
        self.reason = reason
    }

    public var description: String { "\(path): \(message)" }

    public var message: String {
        switch reason {
        case .empty: return "empty path"
        case .nulByte: return "path contains a NUL byte"
        case .leavesRoot: return "path leaves its root ('..')"
        case .symlink: return "a component is a symlink"
        case .magicLink: return "a component is a symlink or a procfs magic link"
        case .crossesMount: return "path crosses onto another mount"
        case .notDirectory: return "a component is not a folder"
        case .wrongKind(let k): return "not a regular file (\(k))"
        case .pseudoFile: return "a file of a kernel pseudo-filesystem (procfs, sysfs, ...)"
        case .tooLarge(let size, let limit): return "larger than \(limit) bytes (\(size))"
        case .missing: return "no such file"
        case .system(let e): return String(cString: strerror(e)).lowercased()
        }
    }

    /// The same refusal as the project's error type (`unsafe-path` for what an attacker controls).
    public var error: MinewatchError {
        switch reason {
        case .missing: return MinewatchError(.notFound, operation: "open", subject: path, errno: ENOENT, message: message)
        case .tooLarge: return MinewatchError(.limit, operation: "open", subject: path, message: message)
        case .system(let e): return MinewatchError.posix("open", subject: path, errno: e)
        default: return MinewatchError(.unsafePath, operation: "open", subject: path, message: message)
        }
    }
}

/// The type of a file, from `st_mode`.
public enum FileKind: String, Sendable, Equatable {
    case regular, directory, symlink, fifo, socket, characterDevice = "character device", blockDevice = "block device", unknown

    public init(mode: mode_t) {
        switch mode & S_IFMT {
        case S_IFREG: self = .regular
        case S_IFDIR: self = .directory
        case S_IFLNK: self = .symlink
        case S_IFIFO: self = .fifo
        case S_IFSOCK: self = .socket
        case S_IFCHR: self = .characterDevice
        case S_IFBLK: self = .blockDevice
        default: self = .unknown
        }
    }
}

/// The one way minewatch opens a path that an image, a container or a runtime bundle controls.
///
/// A `ConfinedRoot` is a folder opened once; every path below it is resolved by the kernel with
/// `openat2(2)` so that nothing outside the root is ever reached:
/// - `.refused` links (image trees, layouts, bundles, overlay upper folders): `RESOLVE_BENEATH |
///   RESOLVE_NO_SYMLINKS`, and `..` is refused before the kernel sees it;
/// - `.inRoot` links (a running container's `/proc/<pid>/root`): `RESOLVE_IN_ROOT`, so an absolute
///   link (`/app/run.js -> /etc/shadow`) and `..` resolve inside the container as its own programs
///   see them, never on the host;
/// - always `RESOLVE_NO_MAGICLINKS` (no `/proc/self/root` jump), and `RESOLVE_NO_XDEV` when
///   `sameMount` is set.
///
/// Files are first opened with `MW_O_PATH` (which never blocks and opens no device), checked to be
/// regular files, and only then reopened for reading through `/proc/self/fd`: a FIFO never blocks
/// the agent and a device node is never opened. Where `openat2` is missing (older kernels, seccomp
/// filters) the same rules hold component by component with `O_NOFOLLOW`; links are then refused
/// in both modes.
public final class ConfinedRoot: Sendable {
    public enum Links: Sendable { case refused, inRoot }
    /// How paths are resolved: the kernel's `openat2`, or one component at a time (the fallback,
    /// chosen here only where `openat2` is missing; tests ask for it to check it too).
    public enum Resolver: Sendable { case automatic, componentWise }

    public let fd: Int32
    public let path: String
    public let links: Links
    public let sameMount: Bool
    let resolver: Resolver
    let device: UInt64

    /// Opens `path` itself as the root. The root is chosen by minewatch (a folder it was given, or
    /// `/proc/<pid>/root`, whose magic link is meant to be followed here and nowhere below).
    public convenience init(path: String, links: Links = .refused, sameMount: Bool = false, resolver: Resolver = .automatic) throws(PathRefusal) {
        let fd = retryingEINTR { open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        if fd < 0 { throw PathRefusal(path: path, reason: Self.reason(errno)) }
        self.init(fd: fd, path: path, links: links, sameMount: sameMount, resolver: resolver)
    }

    /// Takes `fd`, an open folder (a process's `root` opened through its verified /proc folder),
    /// as the root; it is closed with this.
    public init(fd: Int32, path: String, links: Links = .refused, sameMount: Bool = false, resolver: Resolver = .automatic) {
        var st = stat()
        fstat(fd, &st)
        self.fd = fd
        self.path = path
        self.links = links
        self.sameMount = sameMount
        self.resolver = resolver
        self.device = UInt64(st.st_dev)
    }

    deinit { close(fd) }

    /// `openat2` works here (checked once per process).
    public static let kernelResolves: Bool = {
        let fd = mw_openat2(AT_FDCWD, "/", UInt64(MW_O_PATH | O_CLOEXEC), 0, UInt64(RESOLVE_NO_MAGICLINKS))
        if fd >= 0 { close(fd) }
        return fd >= 0
    }()

    /// `root/rel` for messages.
    public func display(_ rel: String) -> String {
        path.hasSuffix("/") || rel.hasPrefix("/") ? path + rel : "\(path)/\(rel)"
    }

    // MARK: what callers use

    /// Opens a regular file below the root for reading.
    public func openFile(_ rel: String) throws(PathRefusal) -> FileHandleFD {
        let opath = try resolve(rel)
        defer { close(opath) }
        return try Self.reopenRegular(opath, display: display(rel))
    }

    /// The whole of a regular file below the root, refused when larger than `limit` bytes.
    public func readFile(_ rel: String, limit: Int) throws(PathRefusal) -> [UInt8] {
        let h = try openFile(rel)
        return try Self.readAll(h, limit: limit, display: display(rel))
    }

    /// What is at `rel` without following a link at its end (a link on the way is refused as
    /// usual); nil when nothing is there.
    public func kind(of rel: String) throws(PathRefusal) -> FileKind? {
        let parts = try components(rel)
        let parent = parts.dropLast().joined(separator: "/")
        let dirfd: Int32
        if parent.isEmpty {
            dirfd = dup(fd)
        } else {
            do { dirfd = try resolve(parent, directory: true) } catch {
                if error.reason == .missing { return nil }
                throw error
            }
        }
        if dirfd < 0 { throw PathRefusal(path: display(rel), reason: .system(errno)) }
        defer { close(dirfd) }
        var st = stat()
        if fstatat(dirfd, parts[parts.count - 1], &st, AT_SYMLINK_NOFOLLOW) != 0 {
            if errno == ENOENT { return nil }
            throw PathRefusal(path: display(rel), reason: Self.reason(errno))
        }
        return FileKind(mode: st.st_mode)
    }

    // MARK: one entry of a folder being walked (rootfs scans)

    /// Opens the entry `name` (one component, no `/`) of the open folder `dirfd` for reading, when
    /// it is a regular file: never through a link, never blocking, never opening a device.
    public static func openRegular(in dirfd: Int32, name: String, display: String) throws(PathRefusal) -> FileHandleFD {
        try openRegular(in: dirfd, rawName: Array(name.utf8CString), display: display)
    }

    /// The same for a name as the folder holds it (bytes that need not be UTF-8), NUL-terminated.
    public static func openRegular(in dirfd: Int32, rawName: [CChar], display: String) throws(PathRefusal) -> FileHandleFD {
        guard isSingleComponent(rawName) else { throw PathRefusal(path: display, reason: .leavesRoot) }
        let opath = retryingEINTR { openat(dirfd, rawName, MW_O_PATH | O_NOFOLLOW | O_CLOEXEC) }
        if opath < 0 { throw PathRefusal(path: display, reason: reason(errno)) }
        defer { close(opath) }
        return try reopenRegular(opath, display: display)
    }

    /// Opens the entry `name` of the open folder `dirfd` as a folder, never through a link.
    /// Returns the fd (the caller closes it).
    public static func openDirectory(in dirfd: Int32, name: String, display: String) throws(PathRefusal) -> Int32 {
        try openDirectory(in: dirfd, rawName: Array(name.utf8CString), display: display)
    }

    public static func openDirectory(in dirfd: Int32, rawName: [CChar], display: String) throws(PathRefusal) -> Int32 {
        guard isSingleComponent(rawName) else { throw PathRefusal(path: display, reason: .leavesRoot) }
        let fd = retryingEINTR { openat(dirfd, rawName, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
        if fd < 0 {
            let e = errno
            throw PathRefusal(path: display, reason: e == ELOOP || e == ENOTDIR ? .wrongKind(kindAt(dirfd, rawName)) : reason(e))
        }
        return fd
    }

    /// One name: NUL-terminated, not empty, not `.` or `..`, no `/`.
    static func isSingleComponent(_ raw: [CChar]) -> Bool {
        guard let end = raw.firstIndex(of: 0), end > 0 else { return false }
        let name = raw[..<end]
        if name.contains(CChar(UInt8(ascii: "/"))) { return false }
        return !(name.count == 1 && name[0] == CChar(UInt8(ascii: "."))) && !(name.count == 2 && name.allSatisfy { $0 == CChar(UInt8(ascii: ".")) })
    }

    // MARK: resolution

    /// The path's components; `..` refused where links are, clamped at the root otherwise (the
    /// component-wise resolver; the kernel's resolves `..` itself, see `resolve`).
    func components(_ rel: String, keepDotDot: Bool = false) throws(PathRefusal) -> [String] {
        // Checked here, where every path enters: a component's Swift string is what is compared
        // with "..", its C string (cut at the first NUL) what the kernel opens.
        if rel.utf8.contains(0) { throw PathRefusal(path: display(rel.replacingOccurrences(of: "\0", with: "\\0")), reason: .nulByte) }
        var out: [String] = []
        for p in rel.split(separator: "/", omittingEmptySubsequences: true) where p != "." {
            if p == ".." && keepDotDot {
                out.append("..")
                continue
            }
            if p == ".." {
                // Inside a container `..` at its root stays at its root, as for its own programs.
                if links == .refused { throw PathRefusal(path: display(rel), reason: .leavesRoot) }
                _ = out.popLast()
                continue
            }
            out.append(String(p))
        }
        if out.isEmpty { throw PathRefusal(path: display(rel), reason: .empty) }
        return out
    }

    /// An `MW_O_PATH` descriptor of `rel` (a folder's when `directory`), resolved inside the root.
    func resolve(_ rel: String, directory: Bool = false) throws(PathRefusal) -> Int32 {
        let kernel = resolver == .automatic && Self.kernelResolves
        // Inside a container the kernel resolves `..` after the links before it, as the
        // container's own programs see it (`d/../x` with `d` a link); RESOLVE_IN_ROOT keeps it in.
        let parts = try components(rel, keepDotDot: kernel && links == .inRoot)
        if kernel {
            var how = UInt64(RESOLVE_NO_MAGICLINKS)
            how |= links == .refused ? UInt64(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS) : UInt64(RESOLVE_IN_ROOT)
            if sameMount { how |= UInt64(RESOLVE_NO_XDEV) }
            let flags = UInt64(MW_O_PATH | O_CLOEXEC | (directory ? O_DIRECTORY : 0))
            let joined = parts.joined(separator: "/")
            for _ in 0..<16 {
                let r = mw_openat2(fd, joined, flags, 0, how)
                if r >= 0 { return r }
                // EAGAIN: a rename or mount raced with the lookup; the kernel asks to try again.
                if r == -EAGAIN || r == -EINTR { continue }
                throw PathRefusal(path: display(rel), reason: kernelReason(-r))
            }
            throw PathRefusal(path: display(rel), reason: .system(EAGAIN))
        }
        return try resolveComponentWise(parts, rel: rel, directory: directory)
    }

    func kernelReason(_ e: Int32) -> PathRefusal.Reason {
        switch e {
        case ELOOP: return links == .refused ? .symlink : .magicLink
        case EXDEV: return sameMount ? .crossesMount : .leavesRoot
        default: return Self.reason(e)
        }
    }

    /// The fallback: one component at a time with `O_NOFOLLOW`, links refused in either mode.
    func resolveComponentWise(_ parts: [String], rel: String, directory: Bool) throws(PathRefusal) -> Int32 {
        var dirfd = dup(fd)
        if dirfd < 0 { throw PathRefusal(path: display(rel), reason: .system(errno)) }
        for (i, p) in parts.enumerated() {
            let last = i == parts.count - 1
            let next = retryingEINTR { openat(dirfd, p, MW_O_PATH | O_NOFOLLOW | O_CLOEXEC | (last && !directory ? 0 : O_DIRECTORY)) }
            if next < 0 {
                let e = errno
                let kind = Self.kindAt(dirfd, p)
                close(dirfd)
                if kind == .symlink { throw PathRefusal(path: display(rel), reason: .symlink) }
                throw PathRefusal(path: display(rel), reason: e == ENOTDIR ? .notDirectory : Self.reason(e))
            }
            close(dirfd)
            dirfd = next
            var st = stat()
            if fstat(dirfd, &st) != 0 {
                let e = errno
                close(dirfd)
                throw PathRefusal(path: display(rel), reason: .system(e))
            }
            if (st.st_mode & S_IFMT) == S_IFLNK {
                close(dirfd)
                throw PathRefusal(path: display(rel), reason: .symlink)
            }
            if sameMount && UInt64(st.st_dev) != device {
                close(dirfd)
                throw PathRefusal(path: display(rel), reason: .crossesMount)
            }
        }
        return dirfd
    }

    /// An `MW_O_PATH` descriptor checked to be a regular file, reopened for reading through
    /// `/proc/self/fd` (the same file, whatever happens to its name meanwhile).
    static func reopenRegular(_ opath: Int32, display: String) throws(PathRefusal) -> FileHandleFD {
        var st = stat()
        if fstat(opath, &st) != 0 { throw PathRefusal(path: display, reason: .system(errno)) }
        let kind = FileKind(mode: st.st_mode)
        if kind == .symlink { throw PathRefusal(path: display, reason: .symlink) }
        if kind != .regular { throw PathRefusal(path: display, reason: .wrongKind(kind)) }
        if isPseudoFilesystem(opath) { throw PathRefusal(path: display, reason: .pseudoFile) }
        let fd = retryingEINTR { open("/proc/self/fd/\(opath)", O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK) }
        if fd < 0 { throw PathRefusal(path: display, reason: reason(errno)) }
        return FileHandleFD(fd: fd, path: display)
    }

    /// Kernel pseudo-filesystems whose "regular" files are interfaces, not content: procfs, sysfs,
    /// debugfs, tracefs, securityfs, cgroup v1 and v2, bpf, pstore, efivarfs, configfs.
    static let pseudoFilesystems: Set<Int> = [0x9fa0, 0x6265_6572, 0x6462_6720, 0x7472_6163, 0x7363_6673, 0x27e0eb, 0x6367_7270,
                                              0xcafe_4a11, 0x6165_676c, 0xde5e_81e4, 0x6265_6570]

    static func isPseudoFilesystem(_ fd: Int32) -> Bool {
        let type = mw_fs_type(fd)
        return type >= 0 && pseudoFilesystems.contains(Int(type))
    }

    public static func readAll(_ h: FileHandleFD, limit: Int, display: String) throws(PathRefusal) -> [UInt8] {
        precondition(limit >= 0 && limit < Int.max / 2, "a read limit is a size")
        var st = stat()
        if fstat(h.fd, &st) != 0 { throw PathRefusal(path: display, reason: .system(errno)) }
        if Int64(st.st_size) > Int64(limit) { throw PathRefusal(path: display, reason: .tooLarge(size: Int64(st.st_size), limit: Int64(limit))) }
        // Files in /proc and growing files report sizes that are not their length: read to the end.
        var out = [UInt8](repeating: 0, count: min(limit, max(Int(st.st_size), 4096)) + 1)
        var used = 0
        while used < out.count {
            let n = out.withUnsafeMutableBytes { b in retryingEINTR { read(h.fd, b.baseAddress.map { $0 + used }, b.count - used) } }
            if n < 0 { throw PathRefusal(path: display, reason: .system(errno)) }
            if n == 0 { break }
            used += n
            if used == out.count && out.count <= limit { out += [UInt8](repeating: 0, count: min(limit + 1, out.count * 2) - out.count) }
        }
        if used > limit { throw PathRefusal(path: display, reason: .tooLarge(size: Int64(used), limit: Int64(limit))) }
        out.removeSubrange(used...)
        return out
    }

    /// What the entry `name` of `dirfd` is, without following a link (a String or a
    /// NUL-terminated name as the folder holds it).
    static func kindAt(_ dirfd: Int32, _ name: UnsafePointer<CChar>) -> FileKind {
        var st = stat()
        return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 ? FileKind(mode: st.st_mode) : .unknown
    }

    static func reason(_ e: Int32) -> PathRefusal.Reason {
        switch e {
        case ENOENT: return .missing
        case ENOTDIR: return .notDirectory
        case ELOOP: return .symlink
        case EXDEV: return .leavesRoot
        default: return .system(e)
        }
    }
}
