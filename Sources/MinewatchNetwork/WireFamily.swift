import Foundation
import MinewatchModel
import MinewatchSignatures

/// The miner family a Stratum session reveals by what the protocol itself carries, for miners
/// that hide or rebrand their agent string: the algorithm the pool's jobs name (XMRig's `algo`
/// extension: `rx/0` and its siblings are RandomX, the Monero family), the login's wallet
/// format (a checksum-valid Monero address), and the job's hashing blob (a RandomX `seed_hash`
/// with a Monero block header of major version 12 or later, the versions since RandomX).
/// Algorithm names follow XMRig's (`src/base/crypto/Algorithm.cpp`) and xmr-stak's.
public enum WireFamily {
    public struct Identity: Sendable, Hashable {
        public var family: String
        /// The algorithm family in words ("RandomX").
        public var algorithm: String
        /// Which protocol fact said so.
        public var because: String
    }

    /// Algorithm name prefixes (lowercased) with the family and the algorithm in words.
    static let algorithms: [(prefix: String, family: String, algorithm: String)] = [
        ("rx/", "monero", "RandomX"), ("randomx", "monero", "RandomX"), ("random-x", "monero", "RandomX"),
        ("cn/", "cryptonote", "CryptoNight"), ("cn-lite/", "cryptonote", "CryptoNight-Lite"), ("cn-heavy/", "cryptonote", "CryptoNight-Heavy"),
        ("cn-pico", "cryptonote", "CryptoNight-Pico"), ("cn-femto", "cryptonote", "CryptoNight-Femto"), ("cryptonight", "cryptonote", "CryptoNight"),
        ("argon2/", "cryptonote", "Argon2 (Chukwa)"), ("astrobwt", "dero", "AstroBWT"), ("kawpow", "ravencoin", "KawPow"),
        ("ghostrider", "raptoreum", "GhostRider"), ("ethash", "ethereum", "Ethash"), ("etchash", "ethereum", "Etchash"),
    ]

    /// The family and why, or nil when the session says nothing about it.
    public static func identify(_ f: SessionFacts) -> Identity? {
        if let a = f.algorithm?.lowercased(), let known = algorithms.first(where: { a.hasPrefix($0.prefix) }) {
            return Identity(family: known.family, algorithm: known.algorithm, because: "algorithm \(a) (\(known.algorithm))")
        }
        if let login = f.login, let wallet = login.split(separator: ".").first,
           WalletValidator.classify(Array(wallet.utf8)) == .monero {
            return Identity(family: "monero", algorithm: "RandomX", because: "the login is a Monero address")
        }
        if f.seedHash == true, let major = f.blobMajorVersion, major >= 12 {
            return Identity(family: "monero", algorithm: "RandomX",
                            because: "jobs carry a RandomX seed_hash and a Monero block header of major version \(major)")
        }
        return nil
    }
}
