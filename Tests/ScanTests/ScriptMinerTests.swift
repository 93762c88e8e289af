import Foundation
import MinewatchCore
import MinewatchSignatures
import Testing
import TestSupport

/// Miners that are a script plus its runtime: named by family, not left at a wallet finding.
@Suite struct ScriptMinerTests {
    @Test func originalPacketCryptCheckoutInAnImage() throws {
        let files = PacketCryptCheckout.files()
        let tar = layer { t in
            t.file("usr/bin/node", Samples.elf(["node.js runtime", "v8::Isolate"], seed: 40))
            for (p, d) in files { t.file(String(p.dropFirst()), d) }
        }
        var img = ImageBuilder(layers: [tar])
        img.cmd = PacketCryptCheckout.cmd
        let r = try scanArchive(img.dockerArchive())[0]
        let expected: [(String, String)] = [
            ("MW-SCRIPT-PACKETCRYPT-ANNMINE", "/opt/PacketCrypt/annmine.js"), ("MW-SCRIPT-PACKETCRYPT-BLKMINE", "/opt/PacketCrypt/blkmine.js"),
            ("MW-BIN-PACKETCRYPT-PCANN", "/opt/PacketCrypt/bin/pcann"), ("MW-BIN-PACKETCRYPT-PCBLK", "/opt/PacketCrypt/bin/pcblk"),
        ]
        for (rule, path) in expected {
            let f = r.finding(rule, at: path)
            #expect(f?.severity == .critical, "\(rule) at \(path): \(r.findings.map { "\($0.ruleId) \($0.path)" })")
            #expect(f?.family == "packetcrypt")
        }
        #expect(r.finding("MW-SCRIPT-PACKETCRYPT-CLIENT", at: "/opt/PacketCrypt/js/PoolClient.js")?.severity == .high)
        #expect(r.finding("MW-PKG-PACKETCRYPT", at: "/opt/PacketCrypt/package.json")?.family == "packetcrypt")
        let cmd = r.finding("MW-CMD-PACKETCRYPT", at: "config:Entrypoint+Cmd")
        #expect(cmd?.severity == .high)
        #expect(cmd?.evidence.contains { $0.kind == .wallet && $0.value == PacketCryptCheckout.pkt } == true)
        // The documentation in the checkout is capped, never the scripts or binaries.
        #expect(r.findings.filter { $0.path.hasSuffix(".md") }.allSatisfy { $0.severity == .info })
        #expect(r.findings.filter { $0.path == "/usr/bin/node" }.isEmpty)
    }

    @Test func eachPacketCryptFileAloneNeedsTwoStrings() throws {
        for s in ["Usage: ./pcann OPTIONS", "pcann: Parent dead, shutting down", "PacketCrypt Block Miner: Protocol Version"] {
            let r = try scanFolder([("/usr/bin/tool", Samples.elf([s], seed: 3))])
            #expect(!r.findings.contains { $0.category == "miner-binary" }, "'\(s)' alone convicted")
        }
        let one = try scanFolder([("/srv/app/index.js", Array("console.log('pcann has died, restarting in 1 second');\n".utf8))])
        #expect(!one.findings.contains { $0.category == "miner-script" })
    }

    @Test func pythonStratumMiners() throws {
        let night = """
        #!/usr/bin/env python3
        import hashlib, json, socket
        USER_AGENT = "NightMiner"
        SCRYPT_LIBRARY_AUTO = 'auto'
        def parse():
            p.add_argument('-o', '--url', help='stratum mining server url')
            p.add_argument('-u', '--user', help='username for mining server')
        def subscribe(sock):
            sock.send(json.dumps({"id": 1, "method": "mining.subscribe", "params": []}))
        """
        let r = try scanFolder([("/app/worker.py", Array(night.utf8))])
        #expect(r.finding("MW-SCRIPT-NIGHTMINER")?.severity == .critical)
        #expect(r.finding("MW-SCRIPT-NIGHTMINER")?.family == "nightminer")

        let generic = """
        import socket, json, hashlib, binascii
        sock.sendall(b'{"id": 1, "method": "mining.subscribe", "params": []}\\n')
        sock.sendall(b'{"params": [addr, "x"], "id": 2, "method": "mining.authorize"}\\n')
        while b'mining.notify' not in response: response += sock.recv(1024)
        h = hashlib.sha256(hashlib.sha256(header).digest()).digest()
        sock.sendall(b'{"method": "mining.submit", "params": [addr, job_id, extranonce2, ntime, nonce]}\\n')
        """
        let g = try scanFolder([("/app/x.py", Array(generic.utf8))])
        #expect(g.finding("MW-SCRIPT-STRATUM-MINER")?.severity == .high, "\(g.findings.map(\.ruleId))")

        let monero = """
        const net = require('net'); const { randomx } = require('./rx');
        sock.write(JSON.stringify({"id":1,"jsonrpc":"2.0","method":"login","params":{"login":w,"pass":"x"}}) + "\\n");
        on('data', j => { if (j.job_id) { const r = randomx.hash(j.blob); sock.write(JSON.stringify({"id":2,"method":"submit","params":{"job_id":j.job_id,"nonce":n,"result":r}})); } });
        """
        let m = try scanFolder([("/srv/index.js", Array(monero.utf8))])
        #expect(m.finding("MW-SCRIPT-STRATUM-MINER")?.severity == .high, "\(m.findings.map(\.ruleId))")
    }

    @Test func protocolWordsWithoutHashingAreNotAMiner() throws {
        // A pool monitoring script names the methods but never hashes.
        let monitor = "methods = ['mining.subscribe', 'mining.authorize', 'mining.submit', 'mining.notify']\nprint(methods)\n"
        let r = try scanFolder([("/opt/mon/check.py", Array(monitor.utf8))])
        #expect(!r.findings.contains { $0.category == "miner-script" })
    }
}
