import Testing
@testable import MinewatchSignatures
import MinewatchCore

@Suite struct WalletTests {
    // Published addresses: XMRig's donation wallet, the Bitcoin genesis output, BIP-173 examples.
    static let xmr = "44AFFq5kSiGBoZ4NMDwYtN18obc8AemS33DBLWs3H7otXft3XjrpDtQGv7SqSsaBYBb98uNbr2VBBEt7f2wfn3RVGQBEP3A"
    static let btc1 = "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa"
    static let btc3 = "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy"
    static let bc1 = "bc1qw508d6qejxtdg4c3kv5gc6t95w5sbmz6zlj5gj"

    @Test func hashVectors() {
        #expect(SHA256Digest.hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        let k = Hashes.keccak256([])
        #expect(k.map { String(format: "%02x", $0) }.joined() == "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470")
    }

    @Test func knownAddressesValidate() {
        #expect(WalletValidator.classify(Array(Self.xmr.utf8)) == .monero)
        #expect(WalletValidator.classify(Array(Self.btc1.utf8)) == .bitcoinBase58)
        #expect(WalletValidator.classify(Array(Self.btc3.utf8)) == .bitcoinBase58)
        #expect(WalletValidator.classify(Array("bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq".utf8)) == .bitcoinBech32)
    }

    @Test func encodersRoundTrip() {
        var r = XorShift(s: 99)
        for _ in 0..<20 {
            let keys = (0..<64).map { _ in UInt8.random(in: 0...255, using: &r) }
            let a = WalletEncoder.monero(keys: keys)
            #expect(a.count == 95)
            #expect(WalletValidator.classify(Array(a.utf8)) == .monero)
            let prog = (0..<20).map { _ in UInt8.random(in: 0...255, using: &r) }
            let p = WalletEncoder.bech32(hrp: "pkt", program: prog)
            #expect(p.count == 43 && p.hasPrefix("pkt1q"))
            #expect(WalletValidator.classify(Array(p.utf8)) == .pktBech32)
            #expect(WalletValidator.classify(Array(WalletEncoder.bech32(hrp: "bc", program: prog).utf8)) == .bitcoinBech32)
            #expect(WalletValidator.classify(Array(WalletEncoder.base58check(version: 0, hash: prog).utf8)) == .bitcoinBase58)
        }
    }

    @Test func singleCharacterChangesAreRejected() {
        for addr in [Self.xmr, Self.btc1, Self.bc1, WalletEncoder.bech32(hrp: "pkt", program: Array(repeating: 7, count: 20))] {
            var bytes = Array(addr.utf8)
            let i = bytes.count / 2
            bytes[i] = bytes[i] == UInt8(ascii: "q") ? UInt8(ascii: "p") : (bytes[i] == UInt8(ascii: "2") ? UInt8(ascii: "3") : UInt8(ascii: "2"))
            #expect(WalletValidator.classify(bytes) == nil, "mutated \(addr) still validates")
        }
        // Random base58 strings of wallet length do not pass checksums.
        var r = XorShift(s: 5)
        let alphabet = WalletValidator.base58Alphabet
        for _ in 0..<200 {
            let s = [UInt8(ascii: "4")] + (0..<94).map { _ in alphabet.randomElement(using: &r) ?? 49 }
            #expect(WalletValidator.classify(s) == nil)
        }
    }

    @Test(arguments: [1, 3, 17, 50, 4096])
    func scannerFindsAddressesAcrossChunks(chunk: Int) {
        let pkt = WalletEncoder.bech32(hrp: "pkt", program: Array(repeating: 9, count: 20))
        let text = Array("pool=x wallet \(Self.xmr).worker1\n--paymentaddr \(pkt) and \(Self.btc1)\u{0}\(String(repeating: "A", count: 300)) end".utf8)
        var s = WalletScanner()
        var i = 0
        while i < text.count {
            let e = min(i + chunk, text.count)
            text[i..<e].withUnsafeBytes { s.feed($0) }
            i = e
        }
        s.finish()
        #expect(Set(s.found.map(\.address)) == [Self.xmr, pkt, Self.btc1])
        let off = s.found.first { $0.kind == .monero }?.offset
        #expect(off == Int64(text.firstIndex(of: UInt8(ascii: "4")) ?? -1))
    }
}
