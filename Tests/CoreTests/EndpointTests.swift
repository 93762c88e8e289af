import MinewatchCore
import Testing

@Suite struct EndpointTests {
    @Test func writesIPv6InBrackets() {
        #expect(Endpoint.text("198.18.1.5", 3333) == "198.18.1.5:3333")
        #expect(Endpoint.text("2001:db8::1", 443) == "[2001:db8::1]:443")
        #expect(Endpoint.text("pool.example", 80) == "pool.example:80")
    }

    @Test func readsTheHostOfAnyForm() {
        for (authority, host) in [("pool.example", "pool.example"), ("pool.example:3333", "pool.example"), ("198.18.1.5:80", "198.18.1.5"),
                                  ("[2001:db8::1]:443", "2001:db8::1"), ("[2001:db8::1]", "2001:db8::1"), ("2001:db8::1", "2001:db8::1"),
                                  ("[broken", "[broken"), ("", "")] {
            #expect(Endpoint.host(authority) == host, "\(authority)")
        }
        // What is written is read back.
        for (a, p) in [("2001:db8::1", UInt16(1)), ("10.0.0.1", 65535)] { #expect(Endpoint.host(Endpoint.text(a, p)) == a) }
    }
}

/// One IPAddress for packets, sockets and exceptions.
@Suite struct IPAddressTests {
    @Test func parsesAndWritesCanonically() throws {
        #expect(IPAddress("198.18.1.5")?.description == "198.18.1.5")
        #expect(IPAddress("2001:0db8:0000:0000:0000:0000:0000:0001")?.description == "2001:db8::1")
        #expect(IPAddress("::ffff:198.18.1.5")?.description == "198.18.1.5", "v4-mapped is IPv4")
        for bad in ["", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4x", "2001:db8:::1", "pool.example"] { #expect(IPAddress(bad) == nil, "\(bad)") }
        #expect(IPAddress(bytes: [127, 0, 0, 9])?.isLoopback == true)
        #expect(IPAddress(bytes: [UInt8](repeating: 0, count: 15) + [1])?.description == "::1")
        #expect(IPAddress(bytes: [UInt8](repeating: 0, count: 15) + [1])?.isLoopback == true)
        #expect(IPAddress(bytes: [1, 2, 3]) == nil)
        #expect(try #require(IPAddress("10.0.0.1")) < #require(IPAddress("::2")))
    }
}
