/// host:port text, written and read the same way everywhere: IPv6 addresses in brackets
/// (`[2001:db8::1]:443`), names and IPv4 addresses bare.
public enum Endpoint {
    public static func text(_ address: String, _ port: UInt16) -> String {
        // utf8.contains: a byte search (String.contains(String) goes through Foundation).
        address.utf8.contains(UInt8(ascii: ":")) ? "[\(address)]:\(port)" : "\(address):\(port)"
    }

    /// The host of `host`, `host:port`, `[v6]` or `[v6]:port` (an HTTP Host header, a URL
    /// authority, an endpoint); a bare IPv6 address is returned as it is.
    public static func host(_ authority: String) -> String {
        // Over the UTF-8 bytes (asked for every session's server, every pass): '[', ']' and ':'
        // are ASCII, so their indices are scalar boundaries (a combining mark after one is cut
        // from it, where matching characters kept such a string whole).
        let u = authority.utf8
        if u.first == UInt8(ascii: "[") {
            guard let close = u.firstIndex(of: UInt8(ascii: "]")) else { return authority }
            return String(authority[u.index(after: u.startIndex)..<close])
        }
        // More than one colon is a bare IPv6 address, not host:port.
        guard let colon = u.firstIndex(of: UInt8(ascii: ":")) else { return authority }
        if u[u.index(after: colon)...].contains(UInt8(ascii: ":")) { return authority }
        return String(authority[..<colon])
    }
}
