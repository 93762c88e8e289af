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
