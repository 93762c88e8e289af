import Foundation
import MinewatchCore
import MinewatchPackets
import Testing
import TestSupport

/// The packet readers alone: decoding, capture files, the flow table.
@Suite struct PacketDecoderTests {
    @Test func linkTypesAndIPv6ExtensionHeaders() throws {
        // IPv6 with hop-by-hop and destination-options headers, then TCP, on a Linux cooked v1 header.
        var v6: [UInt8] = [0x60, 0, 0, 0, 0, 0, 0 /* hop-by-hop */, 64]
        v6 += [UInt8](repeating: 0, count: 15) + [1]  // ::1
        v6 += [UInt8](repeating: 0, count: 15) + [2]  // ::2
        let tcp: [UInt8] = [0x9C, 0x40, 0x0D, 0x05, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xFF, 0xFF, 0, 0, 0, 0] + Array("hi".utf8)
        let hbh: [UInt8] = [60, 0, 1, 4, 0, 0, 0, 0]  // next: dest options
        let dst: [UInt8] = [6, 0, 1, 4, 0, 0, 0, 0]   // next: TCP
        let payloadLen = hbh.count + dst.count + tcp.count
        v6[4] = UInt8(payloadLen >> 8); v6[5] = UInt8(payloadLen & 0xFF)
        let ip = v6 + hbh + dst + tcp
        let sll: [UInt8] = [0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0x86, 0xDD]
        let p = try #require((sll + ip).withUnsafeBytes { PacketDecoder.decode(linkType: PacketDecoder.linuxSLL, $0) })
        #expect(p.src.description == "::1" && p.dstPort == 3333 && p.srcPort == 40000 && p.payloadLength == 2)
        // The same IPv6 packet on raw IP and on BSD loopback (family 24/28/30 in host order).
        #expect(ip.withUnsafeBytes { PacketDecoder.decode(linkType: PacketDecoder.raw, $0) }?.dstPort == 3333)
        #expect(([30, 0, 0, 0] + ip).withUnsafeBytes { PacketDecoder.decode(linkType: PacketDecoder.null, $0) }?.dstPort == 3333)
        // Truncated headers decode to nil, not a crash.
        for n in 0..<(sll.count + 48) {
            _ = (sll + ip).prefix(n).withUnsafeBytes { PacketDecoder.decode(linkType: PacketDecoder.linuxSLL, UnsafeRawBufferPointer($0)) }
        }
        // A later IPv4 fragment is not parsed as TCP.
        var frag = PacketBytes.tcp(seq: 1, payload: [1, 2, 3])
        frag[14 + 6] = 0x00; frag[14 + 7] = 0x10
        #expect(frag.withUnsafeBytes { PacketDecoder.decode(linkType: PacketDecoder.ethernet, $0) } == nil)
    }
}

@Suite struct CaptureFileTests {
    @Test func readsRecordsWithTheirTimesAndOffsets() throws {
        let dir = try TempDir("pkts")
        defer { dir.cleanup() }
        let a = PacketBytes.tcp(seq: 1, payload: Array("one".utf8)), b = PacketBytes.tcp(seq: 4, payload: Array("two".utf8))
        let path = try dir.file("two.pcap", PacketBytes.pcapHeader() + PacketBytes.record(a, time: 1_700_000_000) + PacketBytes.record(b, time: 1_700_000_002))
        var src = CaptureFile(path: path)
        var seen: [PacketInfo] = []
        try src.read { info, bytes in
            seen.append(info)
            #expect(PacketDecoder.decode(linkType: info.linkType, bytes)?.dstPort == 3333)
        }
        #expect(seen.map(\.time) == [1_700_000_000, 1_700_000_002])
        #expect(seen.map(\.fileOffset) == [24, Int64(24 + 16 + a.count)])
        #expect(seen.allSatisfy { $0.linkType == 1 })
    }

    @Test func aTruncatedRecordIsAnErrorNamingItsOffset() throws {
        let dir = try TempDir("pkts")
        defer { dir.cleanup() }
        let a = PacketBytes.tcp(seq: 1, payload: Array("payload".utf8))
        let path = try dir.file("cut.pcap", PacketBytes.pcapHeader() + PacketBytes.record(a).dropLast(5))
        var src = CaptureFile(path: path)
        var count = 0
        do throws(MinewatchError) {
            try src.read { _, _ in count += 1 }
            Issue.record("a truncated record read without an error")
        } catch {
            #expect(error.subject == path && error.offset == 24, "\(error)")
        }
        #expect(count == 0)
    }

    /// A mapped file and a read one give the same packets, records that cross the 4 MiB read
    /// window included, and both stop at the same truncated record with the same error.
    @Test func mappedAndReadFilesAgree() throws {
        let dir = try TempDir("pkts")
        defer { dir.cleanup() }
        var file = PacketBytes.pcapHeader()
        var rand = Samples.Rand(seed: 4)
        for i in 0..<8000 { file += PacketBytes.record(PacketBytes.tcp(seq: UInt32(i * 1500), payload: rand.bytes(i % 1000 + 400)), time: UInt32(1_700_000_000 + i)) }
        let cut = Array(file.dropLast(7))
        for (name, bytes) in [("whole.pcap", file), ("cut.pcap", cut)] {
            let path = try dir.file(name, bytes)
            func read(map: Bool) -> ([Int64], [UInt8], MinewatchError?) {
                var src = CaptureFile(path: path)
                src.mapFiles = map
                var offsets: [Int64] = []
                var digest = FNV1a()
                do throws(MinewatchError) {
                    try src.read { info, b in
                        offsets.append(info.fileOffset)
                        digest.add(b)
                    }
                } catch { return (offsets, Array(String(digest.value).utf8), error) }
                return (offsets, Array(String(digest.value).utf8), nil)
            }
            let mapped = read(map: true), plain = read(map: false)
            #expect(file.count > 5 << 20 && mapped.0.count == (name == "cut.pcap" ? 7999 : 8000))
            #expect(mapped.0 == plain.0 && mapped.1 == plain.1)
            #expect(mapped.2?.description == plain.2?.description)
        }
    }
}

@Suite struct FlowTableTests {
    /// Out-of-order and retransmitted TCP segments come out of the table in order, once.
    final class Collect: FlowConsumer {
        var client: [UInt8] = []
        func stream(_ bytes: UnsafeRawBufferPointer, fromClient: Bool, time: Double) -> Bool {
            if fromClient { client += bytes }
            return true
        }
        func missing(_ count: Int, fromClient: Bool) {}
        func datagram(_ bytes: UnsafeRawBufferPointer, fromClient: Bool, time: Double) {}
    }

    @Test func reassemblesOutOfOrderAndRetransmittedSegments() throws {
        let text = Array("the quick brown fox jumps over the lazy dog".utf8)
        let table = FlowTable()
        let sink = Collect()
        table.onNew = { $0.consumer = sink }
        let segments: [(UInt32, ArraySlice<UInt8>, UInt8)] = [(999, [], 0x02), (1020, text[20...], 0x18), (1000, text[0..<10], 0x18),
                                                             (1000, text[0..<10], 0x18), (1010, text[10..<20], 0x18)]
        for (seq, payload, flags) in segments {
            let pkt = PacketBytes.tcp(seq: seq, flags: flags, payload: Array(payload), vlan: 7)
            try pkt.withUnsafeBytes { b in
                let p = try #require(PacketDecoder.decode(linkType: PacketDecoder.ethernet, b))
                table.add(p, bytes: b, time: 1)
            }
        }
        #expect(sink.client == text)
    }

    @Test func isBoundedAndCountsEvictions() throws {
        let table = FlowTable(maxFlows: 100)
        var evicted = 0
        table.onEvict = { _ in evicted += 1 }
        for i in 0..<300 {
            let pkt = PacketBytes.tcp(sport: UInt16(20000 + i), dport: 80, seq: 1, flags: 0x02, payload: [])
            try pkt.withUnsafeBytes { b in table.add(try #require(PacketDecoder.decode(linkType: PacketDecoder.ethernet, b)), bytes: b, time: Double(i)) }
        }
        #expect(table.flows.count == 100 && table.evicted == 200 && evicted == 200)
    }
}
