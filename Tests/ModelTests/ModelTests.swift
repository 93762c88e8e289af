import Foundation
import MinewatchModel
import Testing

/// The vocabulary's own logic: wire protocols, which session facts are evidence, where an alert's
/// evidence points, how a finding encodes.
@Suite struct ModelTests {
    @Test func wireProtocolsKeepTheirReportNames() throws {
        #expect(WireProtocol.allCases.map(\.rawValue) == ["unknown", "dns", "http", "tls", "stratum", "stratum-monero", "stratum-ethereum",
                                                          "packetcrypt", "getwork"])
        #expect(WireProtocol.allCases.filter(\.isStratum) == [.stratum, .stratumMonero, .stratumEthereum])
        #expect(WireProtocol.allCases.filter(\.isMining) == [.stratum, .stratumMonero, .stratumEthereum, .packetcrypt, .getwork])
        var f = SessionFacts()
        f.protocolName = .stratumMonero
        let json = String(decoding: try JSONEncoder().encode(f), as: UTF8.self)
        #expect(json.contains(#""protocolName":"stratum-monero""#))
        #expect(try JSONDecoder().decode(SessionFacts.self, from: Data(json.utf8)).protocolName == .stratumMonero)
    }

    @Test func whichFactsAreEvidence() {
        var f = SessionFacts()
        #expect(!f.carriesEvidence)
        f.protocolName = .tls
        #expect(!f.carriesEvidence, "TLS without a name says nothing")
        f.sni = "proxy.example"
        #expect(f.carriesEvidence)
        var g = SessionFacts()
        g.protocolName = .getwork
        #expect(g.carriesEvidence)
        var h = SessionFacts()
        h.exactBodies = 1
        #expect(h.carriesEvidence)
    }

    @Test func alertDestinationsFromEveryKindOfEvidence() {
        #expect(Alert.host(of: "stratum+tcp://user@pool.example.org:3333/x") == "pool.example.org")
        #expect(Alert.host(of: "[2001:db8::7]:4444") == "2001:db8::7")
        #expect(Alert.host(of: "198.18.1.130:443 (1 connection)") == "198.18.1.130")
        #expect(Alert.host(of: "") == nil)
    }

    /// A capped finding keeps its flag for minewatch's own cache, never in reports.
    @Test func cappedFromIsInternal() throws {
        var f = Finding(ruleId: "R", severity: .info, family: nil, category: "c", title: "t", path: "/p", evidence: [])
        f.cappedFrom = .critical
        let report = String(decoding: try JSONEncoder().encode(f), as: UTF8.self)
        #expect(!report.contains("cappedFrom"))
        let e = JSONEncoder()
        e.userInfo[Finding.internalFieldsKey] = true
        let cached = try e.encode(f)
        #expect(try JSONDecoder().decode(Finding.self, from: cached).cappedFrom == .critical)
    }
}
