import CShims
import Foundation
import MinewatchFuzz

// libFuzzer entry points. Built with `swift build -c release --product mw-fuzz
// -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING` (scripts/fuzz): libFuzzer supplies
// main() and calls these; the harness is chosen with MW_FUZZ_TARGET.
nonisolated(unsafe) var selected: FuzzTargets.Harness?

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutablePointer<Int32>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> Int32 {
    let name = ProcessInfo.processInfo.environment["MW_FUZZ_TARGET"] ?? ""
    guard let h = FuzzTargets.harness(name) else {
        FileHandle.standardError.write(Data("mw-fuzz: set MW_FUZZ_TARGET to one of \(FuzzTargets.all.map(\.name).joined(separator: ", "))\n".utf8))
        exit(2)
    }
    selected = h
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    selected?(UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : size))
    return 0
}

#if FUZZING
/// SwiftPM links an executable's entry point as `<module>_main`: hand control to libFuzzer's driver.
@_cdecl("mw_fuzz_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> Int32 {
    var c = argc
    var v: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = argv
    return LLVMFuzzerRunDriver(&c, &v) { data, size in fuzzOne(data, size) }
}
#else
/// Without libFuzzer: `mw-fuzz TARGET FILE...` replays inputs through a harness (to reproduce a
/// crash, or to check a corpus).
@main struct Replay {
    static func main() {
        let args = CommandLine.arguments
        guard args.count >= 2, let h = FuzzTargets.harness(args[1]) else {
            FileHandle.standardError.write(Data("usage: mw-fuzz TARGET FILE...  (targets: \(FuzzTargets.all.map(\.name).joined(separator: ", ")))\n".utf8))
            exit(64)
        }
        for path in args.dropFirst(2) {
            guard let data = FileManager.default.contents(atPath: path) else {
                FileHandle.standardError.write(Data("mw-fuzz: cannot read \(path)\n".utf8))
                exit(66)
            }
            data.withUnsafeBytes { h($0) }
        }
    }
}
#endif
