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
        _ = try dir.file("proc/4242/exe", Samples.elf(["node.js runtime", "v8::Isolate"], seed: 40))
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
