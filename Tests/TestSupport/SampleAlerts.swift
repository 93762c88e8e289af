import Foundation
import MinewatchModel

/// Alerts the output, sink and server tests render, send and count.
public enum SampleAlerts {
    /// A mining-protocol alert for a Kubernetes pod, with every block filled in.
    public static func xmrig() -> Alert {
        let t = Date(timeIntervalSince1970: 1_796_119_200.123456)
        return Alert(time: t, container: .init(id: String(repeating: "0123456789abcdef", count: 4), name: "web", image: "docker.io/library/nginx:1.25",
                                               runtime: "kubernetes", k8s: KubernetesMetadata(namespace: "shop", pod: "web-7d9f", container: "nginx"),
                                               labels: ["app": "web"]),
                     detector: .miningProtocol, severity: .high, family: "xmrig", summary: "Stratum login to pool.example.org:3333",
                     evidence: [Evidence(kind: .pool, name: "pool", value: "198.51.100.7:3333"), Evidence(kind: .attribute, name: "agent", value: "XMRig/6.21.0")],
                     metrics: ["logins": 1], pid: 4242, exe: "/usr/local/bin/kworkerds", startedAt: t.addingTimeInterval(-3), detectedAt: t,
                     timeToDetect: 3, technique: "T1496.001")
    }

}
