import Foundation
@testable import MinewatchHost
import Testing
import TestSupport

@Suite struct CgroupPathTests {
    static let id = String(repeating: "ab12", count: 16)

    @Test(arguments: [
        ("/libpod_parent/libpod-\(id)", ContainerRuntime.podman),
        ("/machine.slice/libpod-\(id).scope", .podman),
        ("/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-\(id).scope/container", .podman),
        ("/docker/\(id)", .docker),
        ("/system.slice/docker-\(id).scope", .docker),
        ("/kubepods/burstable/pod0f0e0d0c-1111-2222-3333-444455556666/\(id)", .kubernetes),
        ("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0f0e0d0c_1111_2222_3333_444455556666.slice/cri-containerd-\(id).scope", .containerd),
        ("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0f0e0d0c_1111_2222_3333_444455556666.slice/crio-\(id).scope", .crio),
    ])
    func recognisesRuntimes(path: String, runtime: ContainerRuntime) {
        let c = CgroupPaths.container(fromPath: path)
        #expect(c?.id == Self.id)
        #expect(c?.runtime == runtime)
        if path.contains("kubepods") { #expect(c?.podUID == "0f0e0d0c-1111-2222-3333-444455556666") }
    }

    @Test func hostAndMonitorsAreNotContainers() {
        for p in ["/", "/user.slice/user-0.slice/session-1.scope", "/system.slice/sshd.service",
                  "/libpod_parent/conmon", "/machine.slice/libpod-conmon-\(Self.id).scope", "/docker/notanid"] {
            #expect(CgroupPaths.container(fromPath: p) == nil, "\(p)")
        }
    }

    @Test func parsesProcCgroupV1AndV2() {
        let v1 = "12:cpu,cpuacct:/docker/\(Self.id)\n11:memory:/docker/\(Self.id)\n0::/system.slice/containerd.service\n"
        let (c, paths) = CgroupPaths.parse(procCgroup: v1)
        #expect(c?.runtime == .docker)
        #expect(paths["cpuacct"] == "/docker/\(Self.id)" && paths["cpu"] == "/docker/\(Self.id)" && paths["memory"] != nil)
        let v2 = "0::/system.slice/docker-\(Self.id).scope\n"
        let (c2, p2) = CgroupPaths.parse(procCgroup: v2)
        #expect(c2?.cgroupPath == "/system.slice/docker-\(Self.id).scope")
        #expect(p2[""] == "/system.slice/docker-\(Self.id).scope")
    }
}

@Suite struct ProcParserTests {
    @Test func statWithSpacesAndParensInName() {
        let s = "4242 (my (evil) proc) S 1 4242 4242 0 -1 4194560 1082 0 2 0 30 12 0 0 20 0 1 0 528734 2560000 347 18446744073709551615"
        let p = ProcParsers.stat(s)
        #expect(p?.comm == "my (evil) proc")
        #expect(p?.ppid == 1 && p?.utime == 30 && p?.stime == 12 && p?.start == 528734)
        #expect(ProcParsers.stat("garbage") == nil)
        // Found by the procfs fuzz target: a ppid past Int64 trapped; it is no pid.
        #expect(ProcParsers.stat("1 (a) S 99999999999999999999 1 1 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0 5 0 0 0") == nil)
    }

    @Test func hostsFileNamesAddresses() {
        let text = "127.0.0.1 localhost\n::1 localhost ip6-localhost\n# pinned\n198.18.1.160\tproxy.wynd.network Grass # DePIN\n198.18.1.160 api.getgrass.io\nnot-an-address x\n"
        let h = ProcParsers.hosts(Array(text.utf8))
        #expect(h == ["198.18.1.160": ["proxy.wynd.network", "grass", "api.getgrass.io"]])
    }

    @Test func cmdlineAndEnviron() {
        let argv = Array("./sugoi\0ann\0-p\0pkt1qxyz\0".utf8)
        #expect(ProcParsers.cmdline(argv) == ["./sugoi", "ann", "-p", "pkt1qxyz"])
        let env = Array("PATH=/bin\0POOL_URL=stratum+tcp://p:3333\0X=1\0".utf8)
        #expect(ProcParsers.environ(env, keep: ["POOL_URL"]) == ["POOL_URL": "stratum+tcp://p:3333"])
    }

    @Test func netDevAndSockets() {
        let dev = """
        Inter-|   Receive                                                |  Transmit
         face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
            lo:     100       2    0    0    0     0          0         0      100       2    0    0    0     0       0          0
          eth0: 5000000    4000    0    0    0     0          0         0 90000000   70000    0    0    0     0       0          0
        """
        let c = NetParsers.dev(dev)
        #expect(c.rxBytes == 5_000_000 && c.txBytes == 90_000_000 && c.txPackets == 70_000)
        let tcp = """
          sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
           0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0
           1: 0201A8C0:C350 0101A8C0:0050 01 00000000:00000000 00:00000000 00000000     0        0 12346 1 0000000000000000 20 4 30 10 -1
        """
        let s = NetParsers.sockets(tcp, proto: .tcp)
        #expect(s.count == 2)
        #expect(s[0].isListening && s[0].localPort == 8080)
        #expect(s[1].isEstablished && s[1].localAddress == "192.168.1.2" && s[1].remoteAddress == "192.168.1.1" && s[1].remotePort == 80)
        let tcp6 = """
          sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
           0: 0000000000000000FFFF00000100007F:0050 0000000000000000FFFF00000100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 777 1
        """
        let s6 = NetParsers.sockets(tcp6, proto: .tcp)
        #expect(s6.first?.localAddress == "127.0.0.1" && s6.first?.remotePort == 0xD431)
    }
}

@Suite struct LiveHostTests {
    @Test func readsOwnProcess() throws {
        let r = ProcfsReader()
        let me = try #require(r.process(getpid()))
        #expect(me.pid == getpid())
        #expect(me.exe?.isEmpty == false)
        #expect(me.netns != nil)
        #expect(r.pids().contains(getpid()))
        #expect(r.process(Int32.max - 1) == nil, "a missing process is nil, not an error")
    }

    /// Only the entries whose names are pids are listed, ascending, and a missing root lists none.
    @Test func listsOnlyNumberedEntries() throws {
        let dir = try TempDir("procroot")
        defer { dir.cleanup() }
        for name in ["4194304", "1", "self", "42", "0x1", "7a", "123456789012", "net", "300"] {
            try FileManager.default.createDirectory(atPath: dir.path + "/" + name, withIntermediateDirectories: true)
        }
        #expect(ProcfsReader(root: dir.path).pids() == [1, 42, 300, 4_194_304])
        #expect(ProcfsReader(root: dir.path + "/missing").pids() == [])
        let live = ProcfsReader().pids()
        #expect(live == live.sorted() && live.contains(1) && live.contains(getpid()))
    }

    @Test func discoversAPodmanContainerAndItsCgroup() throws {
        try Podman.require()
        let dir = try TempDir("host")
        defer { dir.cleanup() }
        _ = try dir.file("root/etc/hostname", Array("x\n".utf8))
        let tag = "localhost/mw-host:\(UUID().uuidString.prefix(8).lowercased())"
        try Podman.importRootfs(dir.path + "/root", tag: tag)
        defer { Podman.removeImage(tag) }
        let name = "mw-host-\(UUID().uuidString.prefix(8).lowercased())"
        let id = try Podman.runDetached(["--network", "none", "--name", name,
                                         "-v", "/bin:/bin:ro", "-v", "/lib:/lib:ro", "-v", "/lib64:/lib64:ro", "-v", "/usr:/usr:ro",
                                         tag, "/bin/sh", "-c", "i=0; while [ $i -lt 3000000 ]; do i=$((i+1)); done; sleep 60"])
        defer { _ = try? run(["podman", "rm", "-f", "-t", "0", name]) }
        let pidText = try Podman.cmd(["inspect", "-f", "{{.State.Pid}}", name]).trimmingCharacters(in: .whitespacesAndNewlines)
        let pid = try #require(Int32(pidText))
        let p = try #require(ProcfsReader().process(pid))
        #expect(p.container?.id == id)
        #expect(p.container?.runtime == .podman)
        #expect(p.cmdline.first == "/bin/sh")
        let host = try #require(ProcfsReader().process(getpid()))
        #expect(p.netns != host.netns, "the container has its own network namespace")
        // CPU time accumulates in the container's cgroup.
        // (Polled, not slept for a fixed time: on a busy machine the loop may wait for a core.)
        let first = try #require(CgroupReader().stats(paths: p.cgroupPaths))
        var second = first
        for _ in 0..<100 where second.cpuNanos <= first.cpuNanos {
            usleep(100_000)
            second = try #require(CgroupReader().stats(paths: p.cgroupPaths))
        }
        #expect(second.cpuNanos > first.cpuNanos)
        #expect(ProcfsReader().netCounters(pid) != nil)
    }
}
