import ArgumentParser
import Foundation
import MinewatchCore
import MinewatchScan
#if canImport(Glibc)
import Glibc
#endif

/// stderr writing: logs always, progress only when stderr is a terminal.
enum Terminal {
    static func error(_ s: String) {
        FileHandle.standardError.write(Data(("minewatch: " + s + "\n").utf8))
    }
    static var stderrIsTTY: Bool { isatty(2) == 1 }
    static var stdoutIsTTY: Bool { isatty(1) == 1 }

    static func writeStdout(_ s: String) {
        FileHandle.standardOutput.write(Data(s.utf8))
    }

    /// What `body` returns; when it fails, its error (naming the operation and the file) goes to
    /// stderr and the command exits 2, as for any other bad input or set-up.
    static func orExit<T>(_ body: () throws(MinewatchError) -> T) throws -> T {
        do throws(MinewatchError) { return try body() } catch {
            Self.error(error.description)
            throw ExitCode(2)
        }
    }
}

/// Draws "scanning X: 1.2 GiB of 2.0 GiB" on one stderr line, at most 10 times a second.
final class TTYProgress: ScanProgress {
    var target = ""
    var place = ""
    var total: Int64?
    var done: Int64 = 0
    var last = Date.distantPast

    func begin(target: String, totalBytes: Int64?) {
        self.target = target
        total = totalBytes
        done = 0
        draw(force: true)
    }

    func advance(bytes: Int) {
        done += Int64(bytes)
        draw(force: false)
    }

    func end(target: String) {
        FileHandle.standardError.write(Data("\r\u{1b}[K".utf8))
    }

    func list(index: Int, count: Int) {
        place = count > 1 ? "[\(index + 1)/\(count)] " : ""
    }

    func draw(force: Bool) {
        let now = Date()
        guard force || now.timeIntervalSince(last) > 0.1 else { return }
        last = now
        var s = "\r\u{1b}[K\(place)scanning \(target): \(Self.mib(done))"
        if let total, total > 0 { s += " of \(Self.mib(total)) (\(min(100, done * 100 / total))%)" }
        FileHandle.standardError.write(Data(s.utf8))
    }

    static func mib(_ b: Int64) -> String { String(format: "%.1f MiB", Double(b) / 1_048_576) }
}
