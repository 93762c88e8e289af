// minewatch-bench: measures the content matcher alone, on data already in memory, so the
// number is matching speed per core (no I/O, no decompression). Used by scripts/bench-scan.
//   minewatch-bench match FILE [--repeat N] [--no-wallets]
import Foundation
import MinewatchSignatures

let args = CommandLine.arguments
guard args.count >= 3, args[1] == "match" else {
    FileHandle.standardError.write(Data("usage: minewatch-bench match FILE [--repeat N]\n".utf8))
    exit(64)
}
let repeatCount = args.firstIndex(of: "--repeat").flatMap { Int(args[$0 + 1]) } ?? 3
guard let data = FileManager.default.contents(atPath: args[2]) else {
    FileHandle.standardError.write(Data("cannot read \(args[2])\n".utf8))
    exit(2)
}
let (set, diags) = BundledRules.load()
if !diags.isEmpty { FileHandle.standardError.write(Data("\(diags)\n".utf8)); exit(2) }
let rules = CompiledRules(set)
let bytes = [UInt8](data)

/// Best time of `repeatCount` runs of `body` over the data in 256 KiB chunks.
func measure(_ body: (UnsafeRawBufferPointer) -> Void) -> Double {
    var best = Double.infinity
    for _ in 0..<repeatCount {
        let start = DispatchTime.now().uptimeNanoseconds
        bytes.withUnsafeBytes { raw in
            var i = 0
            while i < raw.count {
                let e = min(i + 256 * 1024, raw.count)
                body(UnsafeRawBufferPointer(rebasing: raw[i..<e]))
                i = e
            }
        }
        best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }
    return best
}

let matcher = rules.matcherForBenchmark
var stream = PatternMatcher.Stream()
var hits = 0
var perPattern = [Int](repeating: 0, count: rules.patternCount)
let patterns = measure { matcher.feed(&stream, $0) { p, _ in hits += 1; perPattern[p] += 1 } }
if ProcessInfo.processInfo.environment["BENCH_TOP"] != nil {
    for (p, c) in perPattern.enumerated().sorted(by: { $0.1 > $1.1 }).prefix(8) {
        FileHandle.standardError.write(Data("\(c / repeatCount) \(String(decoding: matcher.patterns[p].bytes, as: UTF8.self))\n".utf8))
    }
}
var wallets = WalletScanner()
let walletTime = measure { wallets.feed($0) }
var m = FileMatcher(rules: rules, path: "/bench")
let total = measure { m.feed($0) }
let matched = m.finish().count
func gb(_ t: Double) -> String { String(format: "%.3f", Double(bytes.count) / t / 1e9) }
print("{\"bytes\": \(bytes.count), \"gbPerSecond\": {\"total\": \(gb(total)), \"patterns\": \(gb(patterns)), \"wallets\": \(gb(walletTime))}, \"rulesMatched\": \(matched), \"patternMatches\": \(hits / repeatCount), \"patternCount\": \(rules.patternCount)}")
