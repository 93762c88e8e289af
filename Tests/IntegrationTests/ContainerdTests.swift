import Foundation
import Testing
import TestSupport

/// containerd as a Kubernetes node runs it, without the API server: Debian's containerd (a
/// private daemon of the test's own, its state in the test's folder), containers started with
/// `ctr run` (runc) under a kubepods cgroup and with the annotations containerd's CRI plugin
/// sets. `watch` finds them from their cgroups, names them from their OCI bundles (pod,
/// namespace, container, image) and its detectors work on them as on podman's.
@Suite(.serialized) struct ContainerdTests {
    final class Containerd {
        let dir: String
        let socket: String
        let daemon: BackgroundProcess
        var ids: [String] = []

        init(_ dir: TempDir) throws {
            self.dir = dir.path + "/ctd"
            socket = self.dir + "/c.sock"
            try FileManager.default.createDirectory(atPath: self.dir, withIntermediateDirectories: true)
            let config = try dir.file("ctd/config.toml", Array("""
            version = 2
            root = "\(self.dir)/root"
            state = "\(self.dir)/state"
            disabled_plugins = ["io.containerd.grpc.v1.cri"]
            [grpc]
              address = "\(socket)"
            [ttrpc]
              address = "\(socket).ttrpc"
            """.utf8))
            daemon = try BackgroundProcess(["containerd", "--config", config], label: "containerd")
            let sock = socket
            guard daemon.wait(seconds: 20, until: { FileManager.default.fileExists(atPath: sock) }) else {
                throw PodmanError(message: "containerd did not start: \(daemon.output.suffix(1500))")
            }
        }

        var taskRoot: String { dir + "/state/io.containerd.runtime.v2.task" }

        func ctr(_ args: [String]) throws -> String {
            let r = try run(["ctr", "--address", socket, "-n", "k8s.io"] + args)
            if r.status != 0 { throw PodmanError(message: "ctr \(args.prefix(3).joined(separator: " ")): \(r.err)") }
            return String(decoding: r.out, as: UTF8.self)
        }

        /// Starts `cmd` in a new container with the CRI annotations of a pod's container; returns its id.
        func runPodContainer(rootfs: String, namespace: String, pod: String, container: String, image: String, _ cmd: [String]) throws -> String {
            let id = (UUID().uuidString + UUID().uuidString).replacingOccurrences(of: "-", with: "").lowercased().prefix(64)
            let podUID = UUID().uuidString.lowercased()
            var args = ["run", "-d", "--rootfs", "--cgroup", "kubepods/besteffort/pod\(podUID)/\(id)",
                        "--annotation", "io.kubernetes.cri.container-type=container",
                        "--annotation", "io.kubernetes.cri.container-name=\(container)",
                        "--annotation", "io.kubernetes.cri.sandbox-name=\(pod)",
                        "--annotation", "io.kubernetes.cri.sandbox-namespace=\(namespace)",
                        "--annotation", "io.kubernetes.cri.sandbox-id=\(String(repeating: "5", count: 64))",
                        "--annotation", "io.kubernetes.cri.image-name=\(image)"]
            for d in ["/bin", "/lib", "/lib64", "/usr/lib", "/usr/bin", "/opt/swift"] {
                args += ["--mount", "type=bind,src=\(d),dst=\(d),options=rbind:ro"]
            }
            _ = try ctr(args + [rootfs, String(id)] + cmd)
            ids.append(String(id))
            return String(id)
        }

        func stop() {
            for id in ids {
                _ = try? ctr(["task", "kill", "-s", "KILL", id])
                usleep(200_000)
                _ = try? ctr(["task", "rm", "-f", id])
                _ = try? ctr(["container", "rm", id])
            }
            daemon.stop()
        }
    }

    @Test func podContainersAreNamedFromTheirBundlesAndDetected() throws {
        try requireTools(["containerd", "ctr", "runc"])
        try prerequisite(getuid() == 0, "root is required under CI=true for containerd")
        let dir = try TempDir("ctd")
        defer { dir.cleanup() }
        let ctd = try Containerd(dir)
        defer { ctd.stop() }
        // The repository's Stratum miner with XMRig's strings appended, under an innocent name.
        var exe = Array(try Data(contentsOf: URL(fileURLWithPath: workloadBinary())))
        exe += Array("\0XMRig/%s libuv/%s%s\0donate.v2.xmrig.com\0--cpu-affinity\0".utf8)
        _ = try dir.file("miner-root/usr/local/sbin/kworker", exe, mode: 0o755)
        _ = try dir.file("miner-root/etc/hostname", Array("w\n".utf8))
        _ = try dir.file("benign-root/etc/hostname", Array("b\n".utf8))
        let alerts = dir.path + "/alerts.jsonl"
        let watch = try BackgroundProcess([minewatchBinary(), "watch", "--interval", "1s", "--duration", "22s", "--output", alerts, "--telemetry",
                                           "--runtime-state", ctd.taskRoot, "--engine-socket", dir.path + "/no-engine.sock"], label: "ctd-watch")
        defer { watch.stop() }
        usleep(1_000_000)
        let miner = try ctd.runPodContainer(rootfs: dir.path + "/miner-root", namespace: "shop", pod: "web-7d9f-x2", container: "nginx",
                                            image: "docker.io/library/nginx:1.25", ["/bin/sh", "-c",
            "/usr/local/sbin/kworker stratum-pool --listen 127.0.0.1:3333 --duration 40 & sleep 0.5; " +
            "exec /usr/local/sbin/kworker stratum-miner --pool 127.0.0.1:3333 --dialect monero --wallet x --duration 40"])
        let benign = try ctd.runPodContainer(rootfs: dir.path + "/benign-root", namespace: "shop", pod: "cache-0", container: "redis",
                                             image: "docker.io/library/redis:7", ["/bin/sleep", "40"])
        #expect(watch.wait(seconds: 45) { !watch.process.isRunning })
        let records = ((try? String(contentsOfFile: alerts, encoding: .utf8)) ?? "").split(separator: "\n")
            .compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        let all = records.filter { $0["type"] as? String != "telemetry" }
        let forMiner = all.filter { $0.containerID == miner }
        let detectors = Set(forMiner.compactMap { $0["detector"] as? String })
        #expect(detectors.isSuperset(of: ["miner-process", "pool-contact", "mining-protocol"]), "\(detectors) \(watch.output)")
        let a = try #require(forMiner.first { $0["detector"] as? String == "miner-process" })
        #expect(a["family"] as? String == "xmrig" && a["severity"] as? String == "critical")
        let c = a["container"] as? [String: Any]
        #expect(c?["runtime"] as? String == "kubernetes")
        #expect(c?["image"] as? String == "docker.io/library/nginx:1.25")
        let k8s = c?["k8s"] as? [String: Any]
        #expect(k8s?["namespace"] as? String == "shop" && k8s?["pod"] as? String == "web-7d9f-x2" && k8s?["container"] as? String == "nginx", "\(c ?? [:])")
        #expect(!all.contains { $0.containerID == benign }, "\(all.filter { $0.containerID == benign })")
        // Telemetry of the quiet one carries its pod too.
        let t = records.last { $0["type"] as? String == "telemetry" && $0.containerID == benign }
        #expect(((t?["container"] as? [String: Any])?["k8s"] as? [String: Any])?["pod"] as? String == "cache-0", "\(t ?? [:])")
    }
}
