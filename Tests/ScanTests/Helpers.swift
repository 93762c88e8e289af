import Foundation
import MinewatchCore
import MinewatchModel
import MinewatchScan
import MinewatchSignatures
import TestSupport

let compiledRules: CompiledRules = {
    let (set, _) = BundledRules.load()
    return CompiledRules(set)
}()

/// Scans a folder made of `files` (path -> content) and returns its report.
func scanFolder(_ files: [(String, [UInt8])]) throws -> TargetReport {
    let dir = try TempDir("det")
    defer { dir.cleanup() }
    for (p, d) in files { _ = try dir.file("root" + p, d) }
    let r = ImageScanner(rules: compiledRules).scan(path: dir.path + "/root")
    return r[0]
}

func scanFile(_ bytes: [UInt8], name: String = "x") throws -> TargetReport {
    let dir = try TempDir("det")
    defer { dir.cleanup() }
    let p = try dir.file(name, bytes)
    return ImageScanner(rules: compiledRules).scan(path: p)[0]
}

func scanArchive(_ bytes: [UInt8], scanner: ImageScanner = ImageScanner(rules: compiledRules)) throws -> [TargetReport] {
    let dir = try TempDir("det")
    defer { dir.cleanup() }
    let p = try dir.file("image.tar", bytes)
    return scanner.scan(path: p)
}

extension TargetReport {
    func finding(_ rule: String, at path: String? = nil) -> Finding? {
        findings.first { $0.ruleId == rule && (path == nil || $0.path == path) }
    }
    /// The highest severity found; nil when nothing was found (so "at most info" means something was).
    var maxSeverity: Severity? { findings.map(\.severity).max() }
}

let xmrWallet = "44AFFq5kSiGBoZ4NMDwYtN18obc8AemS33DBLWs3H7otXft3XjrpDtQGv7SqSsaBYBb98uNbr2VBBEt7f2wfn3RVGQBEP3A"
let pktWallet = WalletEncoder.bech32(hrp: "pkt", program: Array(repeating: 0x42, count: 20))
