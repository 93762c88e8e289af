import Foundation
import Synchronization
import MinewatchCore
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A fake container root with every way out an image or a container can try, and a file outside
/// it that must never be read through it.
final class EscapeTree {
    let dir: TempDir
    var root: String { dir.path + "/root" }
    var outside: String { dir.path + "/outside/secret" }
    static let hostBytes = Array("HOST-SECRET".utf8)
    var procMounted = false

    init() throws {
        dir = try TempDir("confined")
        _ = try dir.file("outside/secret", Self.hostBytes)
        _ = try dir.file("root/etc/hosts", Array("inside".utf8))
        _ = try dir.file("root/app/real.js", Array("inside-js".utf8))
        let fm = FileManager.default
        try fm.createSymbolicLink(atPath: root + "/app/abs.js", withDestinationPath: outside)            // absolute escape
        try fm.createSymbolicLink(atPath: root + "/app/hosts", withDestinationPath: "/etc/hosts")         // absolute, exists in both
        try fm.createSymbolicLink(atPath: root + "/app/rel.js", withDestinationPath: "../../outside/secret")  // relative escape
        try fm.createSymbolicLink(atPath: root + "/app/inside.js", withDestinationPath: "real.js")         // harmless, inside
        try fm.createSymbolicLink(atPath: root + "/up", withDestinationPath: "..")                       // folder link upwards
        try fm.createSymbolicLink(atPath: root + "/magic", withDestinationPath: "/proc/self/root")       // a magic link's path
        #expect(mkfifo(root + "/fifo", 0o644) == 0)
        if getuid() == 0 {
            try fm.createDirectory(atPath: root + "/dev", withIntermediateDirectories: true)
            #expect(mknod(root + "/dev/null", S_IFCHR | 0o666, makedev(1, 3)) == 0)
            try fm.createDirectory(atPath: root + "/proc", withIntermediateDirectories: true)
            procMounted = mount("proc", root + "/proc", "proc", 0, nil) == 0
        }
    }

    deinit {
        if procMounted { umount2(root + "/proc", Int32(MNT_DETACH)) }
        dir.cleanup()
    }
}

private func makedev(_ major: UInt32, _ minor: UInt32) -> dev_t {
    dev_t((UInt64(major) << 8) | UInt64(minor & 0xff) | (UInt64(minor & ~0xff) << 12))
}

/// What a path gave: its bytes or the refusal's reason.
private func outcome(_ root: ConfinedRoot, _ rel: String) -> Result<[UInt8], PathRefusal> {
    Result { () throws(PathRefusal) in try root.readFile(rel, limit: 1 << 20) }
}

@Suite struct ConfinedRootTests {
    static let resolvers: [ConfinedRoot.Resolver] = [.automatic, .componentWise]

    @Test func kernelResolvesOnThisMachine() throws {
        // Kernel 5.6 and later have openat2; the fallback is still tested below.
        try prerequisite(ConfinedRoot.kernelResolves, "openat2 is expected on kernels since 5.6")
    }

    @Test(arguments: resolvers) func linksRefusedNothingLeaves(resolver: ConfinedRoot.Resolver) throws {
        let t = try EscapeTree()
        let root = try ConfinedRoot(path: t.root, links: .refused, resolver: resolver)
        #expect(try root.readFile("etc/hosts", limit: 64) == Array("inside".utf8))
        #expect(try root.readFile("/etc/./hosts", limit: 64) == Array("inside".utf8))
        for rel in ["app/abs.js", "app/rel.js", "app/hosts", "app/inside.js", "up/outside/secret", "magic/etc/hostname"] {
            #expect(throws: PathRefusal.self, "\(rel)") { try root.readFile(rel, limit: 64) }
            if case .failure(let e) = outcome(root, rel) { #expect(e.reason == .symlink, "\(rel): \(e)") }
        }
        if case .failure(let e) = outcome(root, "../outside/secret") { #expect(e.reason == .leavesRoot) } else { Issue.record("'..' was opened") }
        if case .failure(let e) = outcome(root, "app/../../outside/secret") { #expect(e.reason == .leavesRoot) } else { Issue.record("'..' was opened") }
        if case .failure(let e) = outcome(root, "") { #expect(e.reason == .empty) } else { Issue.record("empty path opened") }
        if case .failure(let e) = outcome(root, "etc") { #expect(e.reason == .wrongKind(.directory)) } else { Issue.record("folder opened") }
        if case .failure(let e) = outcome(root, "etc/hosts/x") { #expect(e.reason == .notDirectory) } else { Issue.record("file as folder") }
        if case .failure(let e) = outcome(root, "nothing") { #expect(e.reason == .missing) } else { Issue.record("missing file opened") }
        if case .failure(let e) = outcome(root, "etc/hosts") { Issue.record("\(e)") }
        if case .failure(let e) = Result(catching: { () throws(PathRefusal) in try root.readFile("etc/hosts", limit: 3) }) {
            #expect(e.reason == .tooLarge(size: 6, limit: 3))
        } else { Issue.record("limit ignored") }
        #expect(try root.kind(of: "app/abs.js") == .symlink)
        #expect(try root.kind(of: "app/missing") == nil)
        #expect(try root.kind(of: "etc/hosts") == .regular)
        #expect(throws: PathRefusal.self) { try root.kind(of: "up/outside/secret") }
    }

    /// Found by scripts/fuzz: `..\0x` is not `..` to a string comparison but is `..` to openat,
    /// which cuts the name at the NUL; the component-wise resolver walked out of the root with it.
    @Test(arguments: resolvers) func pathsWithNulBytesAreRefused(resolver: ConfinedRoot.Resolver) throws {
        let t = try EscapeTree()
        for links in [ConfinedRoot.Links.refused, .inRoot] {
            let root = try ConfinedRoot(path: t.root, links: links, resolver: resolver)
            for rel in ["etc/..\0x/../outside/secret", "..\0\0/outside/secret", "app/..\0/../outside/secret", "etc/hosts\0"] {
                if case .failure(let e) = outcome(root, rel) {
                    #expect(e.reason == .nulByte && e.description.contains("\\0"), "\(e)")
                } else { Issue.record("\(rel) opened (\(links), \(resolver))") }
                #expect(throws: PathRefusal.self) { try root.kind(of: rel) }
            }
        }
    }

    @Test(arguments: resolvers) func linksInRootResolveInsideTheContainer(resolver: ConfinedRoot.Resolver) throws {
        let t = try EscapeTree()
        let root = try ConfinedRoot(path: t.root, links: .inRoot, resolver: resolver)
        #expect(try root.readFile("etc/hosts", limit: 64) == Array("inside".utf8))
        // `..` at the root stays at the root, as for the container's own programs.
        #expect(try root.readFile("../../etc/hosts", limit: 64) == Array("inside".utf8))
        for rel in ["app/abs.js", "app/rel.js", "up/outside/secret", "../outside/secret", "magic/etc/hosts", "app/hosts", "app/inside.js"] {
            if case .success(let bytes) = outcome(root, rel) {
                #expect(bytes != EscapeTree.hostBytes, "\(rel) read a file outside the root")
                // Links that exist inside the container resolve there (kernel resolution only).
                #expect(resolver == .automatic && ["app/hosts", "app/inside.js"].contains(rel), "\(rel) opened")
            }
        }
        if resolver == .automatic {
            #expect(try root.readFile("app/hosts", limit: 64) == Array("inside".utf8))  // the container's /etc/hosts, not the host's
            #expect(try root.readFile("app/inside.js", limit: 64) == Array("inside-js".utf8))
            // `..` after a link goes up from where the link led, as the container's own programs
            // see it (python3 d/../m.py), not from the link's name.
            try FileManager.default.createDirectory(atPath: t.root + "/opt/x", withIntermediateDirectories: true)
            _ = try t.dir.file("root/opt/m.py", Array("real".utf8))
            _ = try t.dir.file("root/app/m.py", Array("decoy".utf8))
            try FileManager.default.createSymbolicLink(atPath: t.root + "/app/d", withDestinationPath: "/opt/x")
            #expect(try root.readFile("app/d/../m.py", limit: 64) == Array("real".utf8))
        }
    }

    @Test(arguments: resolvers) func fifoAndDeviceAreNeverOpened(resolver: ConfinedRoot.Resolver) throws {
        let t = try EscapeTree()
        for links in [ConfinedRoot.Links.refused, .inRoot] {
            let root = try ConfinedRoot(path: t.root, links: links, resolver: resolver)
            // A FIFO opened for reading would wait for a writer: the open must come back at once.
            let done = DispatchSemaphore(value: 0)
            let result = Mutex<Result<[UInt8], PathRefusal>?>(nil)
            Thread.detachNewThread {
                let r = outcome(root, "fifo")
                result.withLock { $0 = r }
                done.signal()
            }
            if done.wait(timeout: .now() + 20) == .timedOut {
                // Unblock the reader before failing, so the suite goes on.
                let w = open(t.root + "/fifo", O_WRONLY | O_NONBLOCK)
                if w >= 0 { close(w) }
                Issue.record("opening a FIFO blocked")
                continue
            }
            if case .failure(let e)? = result.withLock({ $0 }) { #expect(e.reason == .wrongKind(.fifo)) } else { Issue.record("FIFO opened") }
            if getuid() == 0 {
                if case .failure(let e) = outcome(root, "dev/null") { #expect(e.reason == .wrongKind(.characterDevice)) } else { Issue.record("device opened") }
            }
        }
        try prerequisite(getuid() == 0, "root is required under CI=true to make a device node")
    }

    @Test(arguments: resolvers) func magicLinksAndMountsAreRefused(resolver: ConfinedRoot.Resolver) throws {
        let t = try EscapeTree()
        try prerequisite(t.procMounted, "root is required under CI=true to mount procfs in the fake root")
        for links in [ConfinedRoot.Links.refused, .inRoot] {
            let root = try ConfinedRoot(path: t.root, links: links, resolver: resolver)
            // /proc/self/root is the agent's own root: a magic link is never followed.
            for rel in ["proc/self/root/etc/hostname", "proc/1/root/etc/hostname", "proc/self/cwd/x", "magic/etc/hostname"] {
                #expect(throws: PathRefusal.self, "\(rel)") { try root.readFile(rel, limit: 1 << 20) }
            }
            // Files of a kernel pseudo-filesystem are interfaces, not content: never read (reading
            // /proc/kmsg would take lines from the host's kernel log).
            if case .failure(let e) = outcome(root, "proc/version") { #expect(e.reason == .pseudoFile) } else { Issue.record("procfs file read") }
            if case .failure(let e) = outcome(root, "proc/kmsg") { #expect(e.reason == .pseudoFile) } else { Issue.record("/proc/kmsg read") }
            let same = try ConfinedRoot(path: t.root, links: links, sameMount: true, resolver: resolver)
            if case .failure(let e) = outcome(same, "proc/version") { #expect(e.reason == .crossesMount) } else { Issue.record("crossed a mount") }
        }
    }

    @Test func walkingEntriesNeverFollowsLinks() throws {
        let t = try EscapeTree()
        let dirfd = open(t.root + "/app", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        defer { close(dirfd) }
        #expect(try ConfinedRoot.openRegular(in: dirfd, name: "real.js", display: "real.js").fd >= 0)
        for name in ["abs.js", "rel.js", "inside.js", "..", "../app/real.js", ""] {
            #expect(throws: PathRefusal.self, "\(name)") { try ConfinedRoot.openRegular(in: dirfd, name: name, display: name) }
        }
        let top = open(t.root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        defer { close(top) }
        #expect(throws: PathRefusal.self) { try ConfinedRoot.openDirectory(in: top, name: "up", display: "up") }
        #expect(throws: PathRefusal.self) { try ConfinedRoot.openRegular(in: top, name: "fifo", display: "fifo") }
    }
}
