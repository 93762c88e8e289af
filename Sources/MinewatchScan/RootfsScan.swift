import Foundation
import MinewatchCore
import MinewatchImage
import MinewatchModel
import MinewatchAnalysis

/// A root filesystem's files, analysed on several threads: the walk (open through the confined
/// root, stat) stays on the caller's thread and hands each opened file to the next free worker,
/// a few files ahead; each worker matches with its own buffer. Results are put back in walk
/// order, so the report is the same whatever the number of threads.
struct ParallelFileScan {
    let analyzer: FileAnalyzer
    let workers: Int

    /// Everything the walker and the workers share. Every field is read and written with `cond`
    /// locked.
    final class Shared: @unchecked Sendable {
        let cond = NSCondition()
        var jobs: [(seq: Int, path: String, handle: FileHandleFD)] = []
        var done: [(seq: Int, path: String, findings: [Finding], bytes: Int64, error: MinewatchError?)] = []
        var closed = false
        var running = 0
    }

    struct Outcome {
        var files = 0
        var bytes: Int64 = 0
        var findings: [Finding] = []
        var errors: [ScanIssue] = []
    }

    func run(_ walker: RootfsWalker, progress: ((Int) -> Void)?, issue: (ScanIssue) -> Void) throws(MinewatchError) -> Outcome {
        let shared = Shared()
        let capacity = workers * 2
        shared.running = workers
        for _ in 0..<workers {
            let analyzer = self.analyzer
            Thread.detachNewThread { Self.work(shared, analyzer: analyzer) }
        }
        var finished: [(seq: Int, path: String, findings: [Finding], bytes: Int64, error: MinewatchError?)] = []
        var seq = 0
        func collect() {
            let batch = shared.done
            shared.done.removeAll(keepingCapacity: true)
            if let progress { for r in batch { progress(Int(r.bytes)) } }
            finished += batch
        }
        var walkError: MinewatchError?
        do {
            try walker.walk(visit: { path, handle, _ in
                shared.cond.lock()
                while shared.jobs.count >= capacity { shared.cond.wait() }
                shared.jobs.append((seq, path, handle))
                seq += 1
                shared.cond.broadcast()
                collect()
                shared.cond.unlock()
            }, issue: issue)
        } catch {
            walkError = error
        }
        shared.cond.lock()
        shared.closed = true
        shared.cond.broadcast()
        while shared.running > 0 { shared.cond.wait() }
        collect()
        shared.cond.unlock()
        if let walkError { throw walkError }
        finished.sort { $0.seq < $1.seq }
        var out = Outcome()
        for r in finished {
            out.files += 1
            out.bytes += r.bytes
            out.findings += r.findings
            if let e = r.error { out.errors.append(ScanIssue(path: r.path, message: e.description)) }
        }
        return out
    }

    static func work(_ shared: Shared, analyzer: FileAnalyzer) {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: FileAnalyzer.chunkSize, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            shared.cond.lock()
            while shared.jobs.isEmpty && !shared.closed { shared.cond.wait() }
            if shared.jobs.isEmpty {
                shared.running -= 1
                shared.cond.broadcast()
                shared.cond.unlock()
                return
            }
            let job = shared.jobs.removeFirst()
            shared.cond.broadcast()
            shared.cond.unlock()
            var offset: Int64 = 0
            var result: (findings: [Finding], bytes: Int64) = ([], 0)
            var failure: MinewatchError?
            do {
                result = try analyzer.analyze(path: job.path, layer: nil, read: { (b) throws(MinewatchError) -> Int in
                    let n = try job.handle.pread(into: b, at: offset)
                    offset += Int64(n)
                    return n
                }, buffer: buffer)
            } catch {
                failure = error
                result.bytes = offset
            }
            shared.cond.lock()
            shared.done.append((job.seq, job.path, result.findings, failure == nil ? result.bytes : 0, failure))
            shared.cond.broadcast()
            shared.cond.unlock()
        }
    }
}
