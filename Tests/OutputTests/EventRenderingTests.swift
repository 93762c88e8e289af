import Foundation
import MinewatchModel
import MinewatchOutput
import Testing
import TestSupport

/// The shapes other tools ingest: Falco events for Falcosidekick, OCSF Detection Findings.
@Suite struct EventShapeTests {
    static func alert() -> Alert { SampleAlerts.xmrig() }

    @Test func falcoEventHasFalcosidekicksFields() throws {
        let body = EventRenderer.falcoEvent(Self.alert(), hostname: "node-1")
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any])
        #expect(Set(obj.keys) == ["output", "priority", "rule", "time", "output_fields", "source", "tags", "hostname"])
        #expect(obj["priority"] as? String == "Error")
        #expect(obj["source"] as? String == "minewatch")
        #expect(obj["rule"] as? String == "Mining protocol from container")
        #expect(obj["hostname"] as? String == "node-1")
        let time = try #require(obj["time"] as? String)
        #expect(time.wholeMatch(of: /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z/) != nil, "\(time)")
        #expect(time.hasPrefix("2026-12-01T"))
        let tags = try #require(obj["tags"] as? [String])
        #expect(tags.contains("T1496") && tags.contains("T1496.001") && tags.contains("mitre_impact"))
        let f = try #require(obj["output_fields"] as? [String: Any])
        #expect(f["container.id"] as? String == "0123456789ab")
        #expect(f["container.name"] as? String == "web")
        #expect(f["container.image.repository"] as? String == "docker.io/library/nginx")
        #expect(f["container.image.tag"] as? String == "1.25")
        #expect(f["k8s.ns.name"] as? String == "shop")
        #expect(f["k8s.pod.name"] as? String == "web-7d9f")
        #expect(f["proc.name"] as? String == "kworkerds")
        #expect(f["proc.exepath"] as? String == "/usr/local/bin/kworkerds")
        #expect(f["proc.pid"] as? Int == 4242)
        #expect(f["fd.rip"] as? String == "198.51.100.7")
        #expect(f["fd.rport"] as? Int == 3333)
        // Flat: every value a string or a number.
        #expect(f.values.allSatisfy { $0 is String || $0 is NSNumber })
        #expect((obj["output"] as? String)?.contains("k8s.ns.name=shop") == true)
    }

    @Test func ocsfDetectionFinding() throws {
        let line = EventRenderer.ocsfLine(.alert(Self.alert()), hostname: "node-1", version: "1.0")
        #expect(line.hasSuffix("\n") && line.filter { $0 == "\n" }.count == 1)
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(obj["class_uid"] as? Int == 2004 && obj["category_uid"] as? Int == 2)
        #expect(obj["activity_id"] as? Int == 1 && obj["type_uid"] as? Int == 200401)
        #expect(obj["severity_id"] as? Int == 4)
        #expect(obj["time"] as? Int == 1_796_119_200_123)
        let info = try #require(obj["finding_info"] as? [String: Any])
        #expect((info["uid"] as? String)?.isEmpty == false && info["title"] as? String == "Mining protocol from container")
        let meta = try #require(obj["metadata"] as? [String: Any])
        #expect((meta["product"] as? [String: Any])?["name"] as? String == "minewatch")
        #expect(meta["version"] as? String != nil)
        let attacks = try #require(obj["attacks"] as? [[String: Any]])
        #expect((attacks.first?["technique"] as? [String: Any])?["uid"] as? String == "T1496")
        #expect((attacks.first?["sub_technique"] as? [String: Any])?["uid"] as? String == "T1496.001")
        #expect((attacks.first?["tactic"] as? [String: Any])?["uid"] as? String == "TA0040")
        // Telemetry and responses are not findings.
        #expect(EventRenderer.ocsfLine(.telemetry([], time: Date()), hostname: "n", version: "1") == "")
    }

    @Test func imageReferences() {
        #expect(EventRenderer.splitImage("registry:5000/team/app:2.1") == ("registry:5000/team/app", "2.1"))
        #expect(EventRenderer.splitImage("registry:5000/team/app") == ("registry:5000/team/app", nil))
        #expect(EventRenderer.splitImage("app@sha256:abcd") == ("app", "sha256:abcd"))
    }
}
