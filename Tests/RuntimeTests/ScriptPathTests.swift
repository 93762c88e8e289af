import Foundation
import MinewatchCore
import MinewatchModel
import MinewatchHost
import MinewatchRuntime
import MinewatchSignatures
import Testing
import TestSupport

/// The script an interpreter runs is chosen by the container: it is opened inside the container's
/// root, where its links resolve, and never on the host the agent runs on.
@Suite struct ScriptPathTests {
    static let rules: CompiledRules = CompiledRules(BundledRules.load().0)

    /// A fake /proc with one process (pid 4242) running node; its root holds `files`, its links
    /// `links`, its working folder is `/app`.
    static func fakeProc(_ dir: TempDir, files: [(String, [UInt8])], links: [(String, String)]) throws -> String {
        let proc = dir.path + "/proc"
        // As in a real /proc, exe is a link to the program (here on the host, named as node).
        let node = try dir.file("bin/node", Samples.elf(["node.js runtime", "v8::Isolate"], seed: 40), mode: 0o755)
        try FileManager.default.createDirectory(atPath: proc + "/4242", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: proc + "/4242/exe", withDestinationPath: node)
        _ = try dir.file("proc/4242/stat", Array("4242 (node) S 1 4242 4242 0 -1 0 0 0 0 0 5 2 0 0 20 0 1 0 1 1000 100 0".utf8))
        _ = try dir.file("proc/4242/root/etc/hostname", Array("c\n".utf8))
        for (p, d) in files { _ = try dir.file("proc/4242/root" + p, d) }
        for (p, target) in links {
            try FileManager.default.createDirectory(atPath: proc + "/4242/root" + (p as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try FileManager.default.createSymbolicLink(atPath: proc + "/4242/root" + p, withDestinationPath: target)
        }
        // readlink of a real /proc/<pid>/cwd gives the folder as the container sees it.
        try FileManager.default.createSymbolicLink(atPath: proc + "/4242/cwd", withDestinationPath: "/app")
        return proc
    }

    static func sample(_ argv: [String]) -> ProcessSample {
        ProcessSample(pid: 4242, ppid: 1, comm: "node", exe: "/usr/bin/node", cmdline: argv, startTicks: 1, cpuTicks: 0,
                      container: nil, cgroupPaths: [:], netns: nil)
    }

    static func miner(_ findings: [Finding]?) -> Bool {
        (findings ?? []).contains { $0.family == "packetcrypt" && $0.severity >= .high }
    }

    @Test func scriptsResolveInsideTheContainerNeverOnTheHost() throws {
        let dir = try TempDir("script-path")
        defer { dir.cleanup() }
        let annmine = try #require(PacketCryptCheckout.files().first { $0.0.hasSuffix("/annmine.js") }?.1)
        // The miner sits on the host, outside the container's root: an absolute link, a relative
        // link and `..` that lead there if followed on the host.
        let host = try dir.file("host/annmine.js", annmine)
        let proc = try Self.fakeProc(dir, files: [("/app/real/annmine.js", annmine)], links: [
            ("/app/abs.js", host), ("/app/rel.js", "../../../../host/annmine.js"),
            ("/app/inside.js", "/app/real/annmine.js"), ("/app/up", "/"),
        ])
        let scanner = ExecutableScanner(rules: Self.rules, procRoot: proc)
        for argv in [["node", "/app/abs.js"], ["node", "rel.js"], ["node", "../../../../../host/annmine.js"],
                     ["node", "/app/up\(host)"], ["node", "up/../../\(host)"]] {
            let f = scanner.findings(for: Self.sample(argv))
            #expect(f != nil, "\(argv)")
            #expect(!Self.miner(f), "\(argv) read the host's file: \(f ?? [])")
        }
        // Inside the container, links and relative paths resolve as they do for node.
        for argv in [["node", "/app/real/annmine.js"], ["node", "real/annmine.js"], ["node", "--max-old-space-size=64", "inside.js"]] {
            let f = scanner.findings(for: Self.sample(argv))
            #expect(Self.miner(f), "\(argv): \(f ?? [])")
        }
        // The same pid, now another process (it started later): nothing is read through it.
        var reused = Self.sample(["node", "/app/real/annmine.js"])
        reused.startTicks = 2
        #expect(scanner.findings(for: reused) == [])
    }
}

/// A binary of an image layer runs in many containers, each on an overlay mount of its own (its
/// own device number): it is scanned once. A file a container changed (copied up) is scanned again.
@Suite struct ExecutableCacheTests {
    @Test func aLowerLayerFileIsScannedOnceAcrossOverlayMounts() throws {
        try prerequisite(getuid() == 0, "mounting overlays needs root")
        let dir = try TempDir("overlay-cache")
        defer { dir.cleanup() }
        _ = try dir.file("lower/bin/worker", Samples.elf(["plain worker"], seed: 77), mode: 0o755)
        var mounted: [String] = []
        defer { for m in mounted { _ = try? run(["umount", "-l", m]) } }
        for i in 1...2 {
            for sub in ["upper\(i)", "work\(i)", "merged\(i)"] {
                try FileManager.default.createDirectory(atPath: "\(dir.path)/\(sub)", withIntermediateDirectories: true)
            }
            let r = try run(["mount", "-t", "overlay", "overlay", "-o",
                             "lowerdir=\(dir.path)/lower,upperdir=\(dir.path)/upper\(i),workdir=\(dir.path)/work\(i)", "\(dir.path)/merged\(i)"])
            try prerequisite(r.status == 0, "overlay mount failed: \(r.err)")
            mounted.append("\(dir.path)/merged\(i)")
            // A fake /proc/<pid>/exe per container, linking to the binary through its own mount.
            try FileManager.default.createDirectory(atPath: "\(dir.path)/proc/\(500 + i)", withIntermediateDirectories: true)
            _ = try dir.file("proc/\(500 + i)/stat", Array("\(500 + i) (worker) S 1 1 1 0 -1 0 0 0 0 0 5 2 0 0 20 0 1 0 1 1000 100 0".utf8))
            try FileManager.default.createSymbolicLink(atPath: "\(dir.path)/proc/\(500 + i)/exe", withDestinationPath: "\(dir.path)/merged\(i)/bin/worker")
        }
        var a = stat(), b = stat()
        #expect(stat("\(dir.path)/merged1/bin/worker", &a) == 0 && stat("\(dir.path)/merged2/bin/worker", &b) == 0)
        #expect(a.st_dev != b.st_dev, "each overlay mount has its own device")
        func sample(_ pid: Int32) -> ProcessSample {
            ProcessSample(pid: pid, ppid: 1, comm: "worker", exe: "/bin/worker", cmdline: ["/bin/worker"], startTicks: 1, cpuTicks: 0,
                          container: nil, cgroupPaths: [:], netns: nil)
        }
        let scanner = ExecutableScanner(rules: ScriptPathTests.rules, procRoot: dir.path + "/proc")
        #expect(scanner.findings(for: sample(501)) == [])
        #expect(scanner.findings(for: sample(502)) == [])
        #expect(scanner.filesScanned == 1, "the same lower file through two mounts")
        // Container 2 rewrites its copy with a miner's strings: copied up, a new file, scanned.
        let miner = Samples.elf(["stratum+tcp://", "randomx", "cryptonight", "donate-level", "xmrig"], seed: 78)
        #expect(FileManager.default.createFile(atPath: "\(dir.path)/merged2/bin/worker", contents: Data(miner)))
        _ = scanner.findings(for: sample(502))
        #expect(scanner.filesScanned == 2)
        _ = scanner.findings(for: sample(501))
        #expect(scanner.filesScanned == 2, "container 1 still runs the lower file")
    }
}

/// A process can start another program between the pass that sampled it and the read of its
/// executable (a shell's child that execs the miner): the alert names the file that was read, not
/// the sample's earlier path.
@Suite struct ExecutableReadPathTests {
    @Test func theFileReadIsTheOneReported() throws {
        // A fake /proc whose exe links to a miner; the sample still says /bin/sh.
        let proc = try FakeProc()
        defer { proc.dir.cleanup() }
        try proc.add(pid: 4343, comm: "kworker", cgroup: "/", cmdline: ["kworker"], exe: Samples.elf(Samples.xmrigStrings, seed: 90))
        let stale = ProcessSample(pid: 4343, ppid: 1, comm: "sh", exe: "/bin/sh", cmdline: ["/bin/sh", "-c", "exec kworker"], startTicks: 90000,
                                  cpuTicks: 0, container: nil, cgroupPaths: [:], netns: nil)
        let read = try #require(ExecutableScanner(rules: ScriptPathTests.rules, procRoot: proc.root).read(stale))
        #expect(read.exe == proc.dir.path + "/bins/4343-kworker", "\(read.exe ?? "nil")")
        #expect(read.findings.contains { $0.family == "xmrig" })

        // The real /proc: a running `sleep` sampled as if it were still the shell that started it.
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/bin/sleep")
        child.arguments = ["30"]
        try child.run()
        defer { kill(child.processIdentifier, SIGKILL); child.waitUntilExit() }
        var sample = try #require(ProcfsReader(root: "/proc").process(child.processIdentifier))
        let real = sample.exe
        sample.exe = "/bin/sh"
        let live = try #require(ExecutableScanner(rules: ScriptPathTests.rules).read(sample))
        #expect(live.exe != nil && live.exe == real, "\(live.exe ?? "nil") against \(real ?? "nil")")
    }
}
