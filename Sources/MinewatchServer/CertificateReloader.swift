import Foundation
import MinewatchCore
import NIOCore
import NIOSSL
import Synchronization

/// A TLS certificate chain and key read from PEM files and read again when either file changes
/// (cert-manager and kubelet replace mounted secrets in place): each handshake gets the newest
/// pair that loaded. A pair that fails to load (a half-written file) keeps the previous one
/// serving, and the failure is kept for the caller to report.
public final class CertificateReloader: Sendable {
    public let certFile: String
    public let keyFile: String

    struct Loaded: Sendable {
        var chain: [NIOSSLCertificate]
        var key: NIOSSLPrivateKey
        var stamp: [Int64]
        var checked: Date
    }

    let current: Mutex<Loaded>
    let lastError = Mutex<String?>(nil)
    /// Times a changed pair was loaded after the first.
    /// (A Mutex, not an Atomic: the release compiler rejects an Atomic in a class whose init throws.)
    let reloadCount = Mutex<Int>(0)
    public var reloads: Int { reloadCount.withLock { $0 } }
    /// How often the files are looked at, at most.
    let every: TimeInterval

    public init(certFile: String, keyFile: String, checkEvery: TimeInterval = 1) throws(MinewatchError) {
        self.certFile = certFile
        self.keyFile = keyFile
        every = checkEvery
        current = Mutex(try Self.load(certFile, keyFile))
    }

    /// The files' modification times, sizes and inodes: a change of any is a new pair.
    static func stamp(_ paths: [String]) -> [Int64] {
        paths.flatMap { p -> [Int64] in
            var st = stat()
            guard stat(p, &st) == 0 else { return [-1, -1, -1, -1] }
            return [Int64(st.st_mtim.tv_sec), Int64(st.st_mtim.tv_nsec), Int64(st.st_size), Int64(st.st_ino)]
        }
    }

    static func load(_ certFile: String, _ keyFile: String) throws(MinewatchError) -> Loaded {
        let stamp = stamp([certFile, keyFile])
        guard let certBytes = FileManager.default.contents(atPath: certFile) else {
            throw MinewatchError(.io, operation: "read certificate", subject: certFile, message: "cannot read the file")
        }
        guard let keyBytes = FileManager.default.contents(atPath: keyFile) else {
            throw MinewatchError(.io, operation: "read private key", subject: keyFile, message: "cannot read the file")
        }
        let chain: [NIOSSLCertificate]
        do { chain = try NIOSSLCertificate.fromPEMBytes(Array(certBytes)) } catch {
            throw MinewatchError(.format, operation: "read certificate", subject: certFile, message: "not a PEM certificate chain (\(error))")
        }
        guard !chain.isEmpty else { throw MinewatchError(.format, operation: "read certificate", subject: certFile, message: "no certificate in the file") }
        let key: NIOSSLPrivateKey
        do { key = try NIOSSLPrivateKey(bytes: Array(keyBytes), format: .pem) } catch {
            throw MinewatchError(.format, operation: "read private key", subject: keyFile, message: "not a PEM private key (\(error))")
        }
        return Loaded(chain: chain, key: key, stamp: stamp, checked: Date())
    }

    /// The pair to serve: reloaded first when the files changed since the last look.
    func pair() -> ([NIOSSLCertificate], NIOSSLPrivateKey) {
        let now = Date()
        let (due, old) = current.withLock { c -> (Bool, [Int64]) in
            guard now.timeIntervalSince(c.checked) >= every else { return (false, c.stamp) }
            c.checked = now
            return (true, c.stamp)
        }
        if due, Self.stamp([certFile, keyFile]) != old {
            do {
                let fresh = try Self.load(certFile, keyFile)
                current.withLock { $0 = fresh }
                reloadCount.withLock { $0 += 1 }
                lastError.withLock { $0 = nil }
            } catch {
                lastError.withLock { $0 = error.description }
            }
        }
        return current.withLock { ($0.chain, $0.key) }
    }

    /// Why the newest files did not load, if they did not.
    public var failure: String? { lastError.withLock { $0 } }

    /// A server configuration (TLS 1.2 and up) whose handshakes take the newest pair.
    public func configuration() -> TLSConfiguration {
        let (chain, key) = pair()
        var c = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        c.minimumTLSVersion = .tlsv12
        c.sslContextCallback = { [self] _, promise in
            let (chain, key) = pair()
            var o = NIOSSLContextConfigurationOverride()
            o.certificateChain = chain.map { .certificate($0) }
            o.privateKey = .privateKey(key)
            promise.succeed(o)
        }
        return c
    }
}
