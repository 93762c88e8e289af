import Foundation
import Testing
import TestSupport

/// The repository's test workloads speak the real protocols to each other over loopback:
/// the Stratum miner gets real shares accepted by the pool (both dialects), and the PacketCrypt
/// miner polls config.json and posts 1024-byte announcements to every pool's handler.
@Suite(.serialized) struct WorkloadTests {
    func json(_ bytes: [UInt8]) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any]) ?? [:]
    }

    @Test(arguments: ["monero", "bitcoin"])
    func stratumMinerGetsSharesAccepted(dialect: String) throws {
        let port = freeLoopbackPort()
        let pool = try BackgroundProcess([workloadBinary(), "stratum-pool", "--listen", "127.0.0.1:\(port)", "--dialect", dialect,
                                          "--target", "00400000", "--duration", "30"], label: "pool")
        defer { pool.stop() }
        #expect(pool.wait { loopbackPortOpen(port) })
        let r = try run([workloadBinary(), "stratum-miner", "--pool", "127.0.0.1:\(port)", "--dialect", dialect,
                         "--wallet", "44AFFq5kSiGBoZ4NMDwYtN18obc8AemS33DBLWs3H7otXft3XjrpDtQGv7SqSsaBYBb98uNbr2VBBEt7f2wfn3RVGQBEP3A",
                         "--duration", "4"])
        #expect(r.status == 0, "\(r.err)")
        let out = json(r.out)
        #expect((out["accepted"] as? Int ?? 0) >= 1, "\(out) \(r.err)")
        #expect(out["accepted"] as? Int == out["shares"] as? Int, "the pool verifies every share")
    }

    @Test func announcementMinerPostsToEveryPool() throws {
        let p1 = freeLoopbackPort(), p2 = freeLoopbackPort()
        let h1 = try BackgroundProcess([workloadBinary(), "ann-handler", "--listen", "127.0.0.1:\(p1)", "--duration", "40"], label: "ann1")
        let h2 = try BackgroundProcess([workloadBinary(), "ann-handler", "--listen", "127.0.0.1:\(p2)", "--duration", "40"], label: "ann2")
        defer { h1.stop(); h2.stop() }
        #expect(h1.wait { loopbackPortOpen(p1) } && h2.wait { loopbackPortOpen(p2) })
        let r = try run([workloadBinary(), "ann-miner", "--pool", "http://127.0.0.1:\(p1)", "--pool", "http://127.0.0.1:\(p2)",
                         "--paymentaddr", "pkt1qg3px2vfzvgjzmu4dvyqpfsvn6d4sk97s3gqmgp", "--rate", "200", "--duration", "11"])
        #expect(r.status == 0, "\(r.err)")
        let out = json(r.out)
        #expect(out["handlers"] as? Int == 2)
        let sent = out["announcements"] as? Int ?? 0
        #expect(sent >= 1000, "\(out)")
        #expect(out["accepted"] as? Int == sent * 2, "every announcement goes to every pool: \(out)")
    }
}
