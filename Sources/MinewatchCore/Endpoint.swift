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
        var s = Substring(authority)
        if s.hasPrefix("[") {
            guard let close = s.firstIndex(of: "]") else { return String(s) }
            return String(s[s.index(after: s.startIndex)..<close])
        }
        // More than one colon is a bare IPv6 address, not host:port.
        if s.filter({ $0 == ":" }).count == 1, let colon = s.firstIndex(of: ":") { s = s[..<colon] }
        return String(s)
    }
}
