import Foundation
import MinewatchCore
import MinewatchModel
#if canImport(Glibc)
import Glibc
#endif

/// What a scan target turned out to be, decided from content (never from the file name).
public enum OpenedTarget {
    case images(kind: String, [ImageSource])
    /// A tar (or tar.gz / tar.zst) of a filesystem, e.g. `podman export`: scanned as one layer.
    case layerTarball(ByteSource)
    case rootfs(String)
    case file(String)

    public var kind: String {
        switch self {
        case .images(let k, _): k
        case .layerTarball: "rootfs-archive"
        case .rootfs: "rootfs"
        case .file: "file"
        }
    }
}

public enum TargetOpener {
    public static func open(_ path: String, platform: Platform? = nil) throws(MinewatchError) -> OpenedTarget {
        var st = stat()
        if stat(path, &st) != 0 { throw MinewatchError.posix("open target", subject: path, errno: errno) }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            let store = try DirectoryBlobStore(path: path)
            if store.contains("oci-layout") && store.contains("index.json") {
                return .images(kind: "oci-layout", try OCIImage.load(store: store, kind: "oci-layout", platform: platform))
            }
            if store.contains("manifest.json"), (try? DockerArchiveImage.load(store: store)) != nil {
                return .images(kind: "docker-archive", try DockerArchiveImage.load(store: store))
            }
            return .rootfs(path)
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw MinewatchError(.unsupported, operation: "open target", subject: path, message: "not a regular file or folder")
        }
        let source = try FileByteSource(path: path)
        var head = [UInt8](repeating: 0, count: 512)
        let n = try head.withMutableBytes { (b) throws(MinewatchError) -> Int in try source.read(into: b, at: 0) }
        head = Array(head[0..<n])
        if n == 512 && TarReader.checksumOK(head) {
            let index: TarIndex
            do { index = try TarIndex(source: source) } catch {
                // A damaged tar: still scan what can be read, as a filesystem archive.
                return .layerTarball(source)
            }
            if index.contains("manifest.json"), let imgs = try? DockerArchiveImage.load(store: index) {
                return .images(kind: "docker-archive", imgs)
            }
            if index.contains("oci-layout") && index.contains("index.json") {
                return .images(kind: "oci-archive", try OCIImage.load(store: index, kind: "oci-archive", platform: platform))
            }
            if index.contains("manifest.json") {
                _ = try DockerArchiveImage.load(store: index)  // rethrow the precise error
            }
            return .layerTarball(source)
        }
        let comp = Compression.detect(head)
        if comp != .none {
            // Compressed: a filesystem tarball if it holds a tar, otherwise a compressed single file.
            if let inner = try? autoDecompress(SectionStream(source: source, offset: 0, length: source.size),
                                               limits: DecompressionLimits(), name: path).0 {
                var h = [UInt8](repeating: 0, count: 512)
                let got = (try? h.withMutableBytes { (b) throws(MinewatchError) -> Int in try inner.readFully(into: b) }) ?? 0
                if got == 512 && TarReader.checksumOK(h) {
                    let name = TarReader.cString(h[0..<100][...])
                    let norm = TarReader.normalize(name)
                    if ["/manifest.json", "/oci-layout", "/index.json"].contains(norm) || norm.hasPrefix("/blobs/sha256/") {
                        throw MinewatchError(.unsupported, operation: "open target", subject: path,
                                             message: "compressed image archive: decompress it first (zcat or zstdcat to a .tar)")
                    }
                    return .layerTarball(source)
                }
            }
        }
        return .file(path)
    }
}

/// Walks a folder as an untrusted root filesystem: never follows symlinks, never leaves the
/// root's filesystem (so `/proc` and other mounts are skipped), reads only regular files.
public struct RootfsWalker {
    public let root: String
    public var oneFileSystem = true
    public var maxDepth = 64

    public init(root: String) { self.root = root }

    /// `visit(path, handle, size)` for each regular file; `issue` for what could not be read.
    public func walk(visit: (String, FileHandleFD, Int64) -> Void, issue: (ScanIssue) -> Void) throws(MinewatchError) {
        let top: ConfinedRoot
        do { top = try ConfinedRoot(path: root, links: .refused, sameMount: oneFileSystem) } catch { throw error.error }
        var st = stat()
        if fstat(top.fd, &st) != 0 { throw MinewatchError.posix("stat", subject: root, errno: errno) }
        withExtendedLifetime(top) { walkDir(fd: top.fd, rel: "", dev: st.st_dev, depth: 0, visit: visit, issue: issue) }
    }

    func walkDir(fd: Int32, rel: String, dev: UInt, depth: Int,
                 visit: (String, FileHandleFD, Int64) -> Void, issue: (ScanIssue) -> Void) {
        if depth > maxDepth {
            issue(ScanIssue(path: rel.isEmpty ? "/" : rel, message: "folder nesting deeper than \(maxDepth); not descended"))
            return
        }
        let dupfd = dup(fd)
        guard dupfd >= 0, let dirp = fdopendir(dupfd) else {
            if dupfd >= 0 { close(dupfd) }
            issue(ScanIssue(path: rel.isEmpty ? "/" : rel, message: "read folder: \(String(cString: strerror(errno)).lowercased())"))
            return
        }
        defer { closedir(dirp) }
        // Names as the folder holds them (any bytes but NUL and '/'), opened by those bytes; the
        // decoded text is for reports only, so a name that is not UTF-8 is still read.
        var names: [(raw: [CChar], text: String)] = []
        while let ent = readdir(dirp) {
            let raw = withUnsafeBytes(of: ent.pointee.d_name) { b in Array(b.prefix { $0 != 0 }).map { CChar(bitPattern: $0) } + [0] }
            if raw == [46, 0] || raw == [46, 46, 0] { continue }
            names.append((raw, String(decoding: raw.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)))
        }
        names.sort { $0.raw.lexicographicallyPrecedes($1.raw) }
        for (raw, name) in names {
            let path = rel + "/" + name
            var st = stat()
            if fstatat(fd, raw, &st, AT_SYMLINK_NOFOLLOW) != 0 {
                issue(ScanIssue(path: path, message: "stat: \(String(cString: strerror(errno)).lowercased())"))
                continue
            }
            let type = st.st_mode & S_IFMT
            if type == S_IFDIR {
                if oneFileSystem && st.st_dev != dev { continue }
                do {
                    let sub = try ConfinedRoot.openDirectory(in: fd, rawName: raw, display: root + path)
                    defer { close(sub) }
                    // The folder opened is the one checked (nothing was mounted over it meanwhile).
                    var opened = stat()
                    if oneFileSystem && (fstat(sub, &opened) != 0 || opened.st_dev != dev) { continue }
                    walkDir(fd: sub, rel: path, dev: dev, depth: depth + 1, visit: visit, issue: issue)
                } catch {
                    issue(ScanIssue(path: path, message: "open folder: \(error.message)"))
                }
            } else if type == S_IFREG {
                do {
                    let h = try ConfinedRoot.openRegular(in: fd, rawName: raw, display: root + path)
                    var opened = stat()
                    // A file bind-mounted from another filesystem is not part of this tree.
                    if oneFileSystem && (fstat(h.fd, &opened) != 0 || opened.st_dev != dev) { continue }
                    visit(path, h, Int64(opened.st_size))
                } catch {
                    issue(ScanIssue(path: path, message: "open: \(error.message)"))
                }
            }
            // Symlinks, devices, sockets and fifos carry no content of their own: not read.
        }
    }
}
