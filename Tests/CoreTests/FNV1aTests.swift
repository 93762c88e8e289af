import MinewatchCore
import Testing

@Suite struct FNV1aTests {
    /// The published FNV-1a 64-bit test vectors (the empty string is the offset basis).
    @Test func knownVectors() {
        #expect(FNV1a.hash([UInt8]()) == 0xcbf2_9ce4_8422_2325)
        #expect(FNV1a.hash("a".utf8) == 0xaf63_dc4c_8601_ec8c)
        #expect(FNV1a.hash("foobar".utf8) == 0x8594_4171_f739_67e8)
        var h = FNV1a()
        h.add("foo".utf8)
        h.add("bar".utf8)
        #expect(h.value == FNV1a.hash("foobar".utf8), "adding in pieces is the same as at once")
    }
}

@Suite struct ByteSearchTests {
    @Test func findsBytesLikeStringContains() {
        for (h, n) in [("application/x-zip-compressed", "zip"), ("chunked", "chunked"), ("gzip, chunked", "chunked"), ("abc", "abcd"),
                       ("", "a"), ("a", ""), ("/v1/blkinfo_123.json", "/blkinfo_"), ("{\"method\": \"getwork\"}", "\"getwork\""), ("été", "té")] {
            #expect(h.containsBytes(n) == (n.isEmpty || h.contains(n)), "\(h) / \(n)")
            #expect(ByteSearch.contains(Array(h.utf8), n) == h.containsBytes(n))
            #expect(ByteSearch.contains(Array(h.utf8)[...], n) == h.containsBytes(n))
        }
    }
}
