/// Wallet address recognition with real checksums, so random strings do not match.
public enum WalletKind: String, Sendable, Hashable, CaseIterable {
    /// Monero standard (4...), subaddress (8...) and integrated (106 chars) addresses.
    case monero
    /// PKT bech32 (`pkt1...`).
    case pktBech32
    /// Bitcoin bech32/bech32m (`bc1...`).
    case bitcoinBech32
    /// Bitcoin base58check P2PKH/P2SH (`1...`, `3...`).
    case bitcoinBase58

    public var currency: String {
        switch self {
        case .monero: "XMR"
        case .pktBech32: "PKT"
        case .bitcoinBech32, .bitcoinBase58: "BTC"
        }
    }

    public static let currencies: Set<String> = Set(allCases.map(\.currency))
}

public struct Wallet: Sendable, Hashable {
    public var kind: WalletKind
    public var address: String
    public var offset: Int64
}

public enum WalletValidator {
    static let base58Alphabet = Array("123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz".utf8)
    static let base58Index: [Int8] = {
        var t = [Int8](repeating: -1, count: 256)
        for (i, c) in base58Alphabet.enumerated() { t[Int(c)] = Int8(i) }
        return t
    }()
    static let bech32Charset = Array("qpzry9x8gf2tvdw0s3jn54khce6mua7l".utf8)
    static let bech32Index: [Int8] = {
        var t = [Int8](repeating: -1, count: 256)
        for (i, c) in bech32Charset.enumerated() { t[Int(c)] = Int8(i) }
        return t
    }()

    /// Classifies an alphanumeric run; returns the wallet kind when its checksum holds.
    public static func classify(_ s: [UInt8]) -> WalletKind? {
        switch s.count {
        case 95, 106:
            if (s[0] == UInt8(ascii: "4") || s[0] == UInt8(ascii: "8")) && isMonero(s) { return .monero }
        case 42, 62:
            if s.starts(with: Array("bc1".utf8)) && isBech32(s, hrpLength: 2) { return .bitcoinBech32 }
        case 43, 63:
            if s.starts(with: Array("pkt1".utf8)) && isBech32(s, hrpLength: 3) { return .pktBech32 }
        default:
            break
        }
        if (26...35).contains(s.count), s[0] == UInt8(ascii: "1") || s[0] == UInt8(ascii: "3"), isBase58Check(s) {
            return .bitcoinBase58
        }
        return nil
    }

    /// Monero's base58: 8-byte blocks encoded as 11 characters, the last block shorter.
    static func moneroDecode(_ s: [UInt8]) -> [UInt8]? {
        let encodedSizes = [0, 2, 3, 5, 6, 7, 9, 10, 11]
        var out: [UInt8] = []
        var i = 0
        while i < s.count {
            let blockLen = min(11, s.count - i)
            guard let byteLen = encodedSizes.firstIndex(of: blockLen) else { return nil }
            var value: UInt64 = 0
            for c in s[i..<(i + blockLen)] {
                let d = base58Index[Int(c)]
                if d < 0 { return nil }
                let (m, o1) = value.multipliedReportingOverflow(by: 58)
                let (a, o2) = m.addingReportingOverflow(UInt64(d))
                if o1 || o2 { return nil }
                value = a
            }
            if byteLen < 8 && value >> (UInt64(byteLen) * 8) != 0 { return nil }
            for j in (0..<byteLen).reversed() { out.append(UInt8(truncatingIfNeeded: value >> (UInt64(j) * 8))) }
            i += blockLen
        }
        return out
    }

    public static func isMonero(_ s: [UInt8]) -> Bool {
        guard let data = moneroDecode(s), data.count >= 5 else { return false }
        // Network prefixes (varints): 18 standard, 42 subaddress, 19 integrated (mainnet).
        guard [0x12, 0x2a, 0x13].contains(data[0]) else { return false }
        let body = Array(data[..<(data.count - 4)])
        let check = Hashes.keccak256(body).prefix(4)
        return Array(check) == Array(data[(data.count - 4)...])
    }

    static func polymod(_ values: [UInt8]) -> UInt32 {
        let gen: [UInt32] = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3]
        var chk: UInt32 = 1
        for v in values {
            let top = chk >> 25
            chk = (chk & 0x1ffffff) << 5 ^ UInt32(v)
            for i in 0..<5 where (top >> UInt32(i)) & 1 == 1 { chk ^= gen[i] }
        }
        return chk
    }

    /// BIP-173/350 checksum over a lower-case address whose human-readable part has `hrpLength` chars.
    public static func isBech32(_ s: [UInt8], hrpLength: Int) -> Bool {
        guard s.count > hrpLength + 7, s[hrpLength] == UInt8(ascii: "1") else { return false }
        let hrp = s[..<hrpLength]
        var values: [UInt8] = hrp.map { $0 >> 5 } + [0] + hrp.map { $0 & 31 }
        for c in s[(hrpLength + 1)...] {
            let d = bech32Index[Int(c)]
            if d < 0 { return false }
            values.append(UInt8(d))
        }
        let pm = polymod(values)
        return pm == 1 || pm == 0x2bc830a3
    }

    public static func isBase58Check(_ s: [UInt8]) -> Bool {
        var bytes: [UInt8] = []  // big-endian base-256 number
        for c in s {
            let d = base58Index[Int(c)]
            if d < 0 { return false }
            var carry = Int(d)
            for j in (0..<bytes.count).reversed() {
                let v = Int(bytes[j]) * 58 + carry
                bytes[j] = UInt8(v & 0xff)
                carry = v >> 8
            }
            while carry > 0 {
                bytes.insert(UInt8(carry & 0xff), at: 0)
                carry >>= 8
            }
        }
        let leadingZeros = s.prefix { $0 == UInt8(ascii: "1") }.count
        let decoded = [UInt8](repeating: 0, count: leadingZeros) + bytes
        guard decoded.count == 25, decoded[0] == 0x00 || decoded[0] == 0x05 else { return false }
        let payload = Array(decoded[..<21])
        let check = Hashes.sha256(Hashes.sha256(payload)).prefix(4)
        return Array(check) == Array(decoded[21...])
    }
}

/// Finds wallet addresses in a stream of chunks. Looks only at maximal alphanumeric runs of
/// 26 to 106 characters; a run of that length can only include a position if the byte
/// `minRun - 1` ahead is alphanumeric, so most positions of binary data are skipped.
public struct WalletScanner: Sendable {
    /// Shortest run any wallet kind can have (Bitcoin base58check).
    public static let minRun = 26
    /// Shortest run of the kinds searched in executables and other binaries (bech32: 42).
    public static let minBinaryRun = 42
    /// The shortest run this scanner looks for.
    public let minimum: Int
    public static let maxRun = 106
    static let alnum: [Bool] = (0..<256).map { (b: Int) -> Bool in
        let isDigit = b >= 48 && b <= 57
        let isUpper = b >= 65 && b <= 90
        let isLower = b >= 97 && b <= 122
        return isDigit || isUpper || isLower
    }

    public private(set) var found: [Wallet] = []
    public var limit = 32
    var position: Int64 = 0
    var carry: [UInt8] = []          // an unfinished run at the end of the previous chunk
    var carryStart: Int64 = 0
    var skippingLongRun = false      // inside a run already longer than maxRun
    var seen: Set<String> = []

    /// `binary`: the data is an executable or other binary file, where only bech32 and Monero
    /// addresses are searched (base58check Bitcoin addresses are reported for text only, so
    /// runs shorter than 42 characters need not be looked at).
    public init(binary: Bool = false) {
        minimum = binary ? Self.minBinaryRun : Self.minRun
    }

    mutating func consider(_ run: [UInt8], at offset: Int64) {
        guard run.count >= minimum, run.count <= Self.maxRun, found.count < limit else { return }
        if let kind = WalletValidator.classify(run) {
            let s = String(decoding: run, as: UTF8.self)
            if seen.insert(s).inserted { found.append(Wallet(kind: kind, address: s, offset: offset)) }
        }
    }

    public mutating func feed(_ chunk: UnsafeRawBufferPointer) {
        let n = chunk.count
        guard n > 0, let base = chunk.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return }
        let table = Self.alnum
        var i = 0
        // Finish a run carried over from the previous chunk (or one being skipped).
        if skippingLongRun || !carry.isEmpty {
            var e = 0
            while e < n && table[Int(base[e])] { e += 1 }
            if skippingLongRun {
                if e == n { position += Int64(n); return }
                skippingLongRun = false
            } else {
                let total = carry.count + e
                if total > Self.maxRun {
                    carry = []
                    if e == n { skippingLongRun = true; position += Int64(n); return }
                } else if e == n {
                    carry.append(contentsOf: UnsafeBufferPointer(start: base, count: n))
                    position += Int64(n)
                    return
                } else {
                    consider(carry + Array(UnsafeBufferPointer(start: base, count: e)), at: carryStart)
                    carry = []
                }
            }
            i = e + 1
        }
        let minRun = minimum
        table.withUnsafeBufferPointer { t in
            while i + minRun <= n {
                let probe = i + minRun - 1
                if !t[Int(base[probe])] { i = probe + 1; continue }
                var s = probe
                while s > i && t[Int(base[s - 1])] { s -= 1 }
                var e = probe + 1
                while e < n && t[Int(base[e])] { e += 1 }
                if e == n {
                    // The run reaches the end of the chunk: carry it.
                    if e - s > Self.maxRun { skippingLongRun = true } else {
                        carry = Array(UnsafeBufferPointer(start: base + s, count: e - s))
                        carryStart = position + Int64(s)
                    }
                    i = n
                    break
                }
                if e - s >= minRun && e - s <= Self.maxRun {
                    consider(Array(UnsafeBufferPointer(start: base + s, count: e - s)), at: position + Int64(s))
                }
                i = e + 1
            }
        }
        // A shorter run at the very end may grow in the next chunk.
        if i < n && carry.isEmpty && !skippingLongRun {
            var s = n
            while s > i && t(base[s - 1]) { s -= 1 }
            if s < n {
                carry = Array(UnsafeBufferPointer(start: base + s, count: n - s))
                carryStart = position + Int64(s)
            }
        }
        position += Int64(n)
    }

    @inline(__always) func t(_ b: UInt8) -> Bool { Self.alnum[Int(b)] }

    /// Call at the end of the stream: a run that ends the data is a candidate too.
    public mutating func finish() {
        if !carry.isEmpty && !skippingLongRun { consider(carry, at: carryStart) }
        carry = []
    }
}

/// Encoders for the address formats above: the inverse of `WalletValidator`, used to build
/// test data and to check round trips.
public enum WalletEncoder {
    /// A Monero address from 64 bytes of public keys (`prefix` 0x12 standard, 0x2a subaddress).
    public static func monero(keys: [UInt8], prefix: UInt8 = 0x12) -> String {
        precondition(keys.count == 64)
        let body = [prefix] + keys
        let data = body + Array(Hashes.keccak256(body).prefix(4))
        let sizes = [0, 2, 3, 5, 6, 7, 9, 10, 11]
        var out: [UInt8] = []
        var i = 0
        while i < data.count {
            let block = Array(data[i..<min(i + 8, data.count)])
            var v: UInt64 = 0
            for b in block { v = v << 8 | UInt64(b) }
            var chars = [UInt8](repeating: WalletValidator.base58Alphabet[0], count: sizes[block.count])
            var j = chars.count - 1
            while v > 0 && j >= 0 {
                chars[j] = WalletValidator.base58Alphabet[Int(v % 58)]
                v /= 58
                j -= 1
            }
            out += chars
            i += 8
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// A segwit bech32 address (`hrp` "pkt" or "bc", witness version 0, 20- or 32-byte program).
    public static func bech32(hrp: String, program: [UInt8]) -> String {
        var data: [UInt8] = [0]
        var acc = 0
        var bits = 0
        for b in program {
            acc = (acc << 8) | Int(b)
            bits += 8
            while bits >= 5 {
                bits -= 5
                data.append(UInt8((acc >> bits) & 31))
            }
        }
        if bits > 0 { data.append(UInt8((acc << (5 - bits)) & 31)) }
        let h = Array(hrp.utf8)
        let values = h.map { $0 >> 5 } + [0] + h.map { $0 & 31 } + data + [0, 0, 0, 0, 0, 0]
        let pm = WalletValidator.polymod(values) ^ 1
        let checksum = (0..<6).map { UInt8((pm >> (5 * (5 - UInt32($0)))) & 31) }
        return hrp + "1" + String(decoding: (data + checksum).map { WalletValidator.bech32Charset[Int($0)] }, as: UTF8.self)
    }

    /// A base58check address (`version` 0x00 P2PKH, 0x05 P2SH) over a 20-byte hash.
    public static func base58check(version: UInt8, hash: [UInt8]) -> String {
        let payload = [version] + hash
        let full = payload + Array(Hashes.sha256(Hashes.sha256(payload)).prefix(4))
        var digits: [Int] = []
        for byte in full {
            var carry = Int(byte)
            for j in digits.indices {
                carry += digits[j] << 8
                digits[j] = carry % 58
                carry /= 58
            }
            while carry > 0 {
                digits.append(carry % 58)
                carry /= 58
            }
        }
        let zeros = full.prefix { $0 == 0 }.count
        return String(repeating: "1", count: zeros) + String(decoding: digits.reversed().map { WalletValidator.base58Alphabet[$0] }, as: UTF8.self)
    }
}
