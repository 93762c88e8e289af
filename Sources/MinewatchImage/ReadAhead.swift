import Foundation
import MinewatchCore

/// A layer's reading, hashing of the stored bytes and inflating, run on a thread of its own a few
/// buffers ahead of the tar reader and the matcher, so that a layer scan on two cores costs the
/// larger of the two halves rather than their sum. The consumer reads the uncompressed bytes as a
/// `ByteStream` and hashes them as they pass (the second digest, which balances the two threads);
/// `finish()` reads what the tar reader left and returns both digests. Errors on the producer's
/// side surface, unchanged, at the consumer's next read.
///
/// Memory: `depth` buffers of `bufferSize` bytes (4 MiB by default), whatever the layer's size.
final class ReadAheadLayer: ByteStream {
    /// Everything both threads touch. Every field is read and written with `cond` locked; the
    /// producer takes `producer` out under the lock and owns it from then on.
    final class Shared: @unchecked Sendable {
        let cond = NSCondition()
        var producer: HashedLayerStream?
        var full: [(bytes: [UInt8], count: Int)] = []
        var free: [[UInt8]] = []
        var ended = false
        var error: MinewatchError?
        var storedDigest: String?
        var abandoned = false
    }

    let shared = Shared()
    /// The uncompressed bytes' hash, when the layer is compressed (else it is the stored bytes').
    var contentHash: StreamingSHA256?
    var current: [UInt8] = []
    var currentCount = 0
    var position = 0
    var atEnd = false

    init(_ layer: HashedLayerStream, depth: Int = 4, bufferSize: Int = 1 << 20) {
        shared.producer = layer
        contentHash = layer.compressed ? StreamingSHA256() : nil
        shared.free = (0..<max(depth, 2)).map { _ in [UInt8](repeating: 0, count: bufferSize) }
        let shared = self.shared
        Thread.detachNewThread { ReadAheadLayer.produce(shared) }
    }

    deinit {
        shared.cond.lock()
        shared.abandoned = true
        shared.cond.broadcast()
        shared.cond.unlock()
    }

    /// The producer: fills free buffers with uncompressed bytes until the layer ends, then hashes
    /// what is left of the stored bytes and publishes the digests.
    static func produce(_ shared: Shared) {
        shared.cond.lock()
        let taken = shared.producer
        shared.producer = nil
        shared.cond.unlock()
        guard let layer = taken else { return }
        do throws(MinewatchError) {
            while true {
                shared.cond.lock()
                while shared.free.isEmpty && !shared.abandoned { shared.cond.wait() }
                if shared.abandoned {
                    shared.cond.unlock()
                    return
                }
                var buffer = shared.free.removeLast()
                shared.cond.unlock()
                let filled = try buffer.withMutableBytes { (b) throws(MinewatchError) -> Int in
                    try layer.unhashed.readFully(into: b)
                }
                if filled == 0 {
                    let stored = try layer.finishStored()
                    shared.cond.lock()
                    shared.storedDigest = stored
                    shared.ended = true
                    shared.cond.broadcast()
                    shared.cond.unlock()
                    return
                }
                shared.cond.lock()
                shared.full.append((buffer, filled))
                shared.cond.broadcast()
                shared.cond.unlock()
            }
        } catch {
            shared.cond.lock()
            shared.error = error
            shared.ended = true
            shared.cond.broadcast()
            shared.cond.unlock()
        }
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws(MinewatchError) -> Int {
        guard buffer.count > 0 else { return 0 }
        if position == currentCount {
            if atEnd { return 0 }
            try next()
            if atEnd { return 0 }
        }
        let n = min(buffer.count, currentCount - position)
        current.withUnsafeBytes { src in
            let part = UnsafeRawBufferPointer(rebasing: src[position..<(position + n)])
            buffer.copyMemory(from: part)
            contentHash?.update(part)
        }
        position += n
        return n
    }

    /// Hands the spent buffer back and waits for the next full one (or the end, or an error).
    func next() throws(MinewatchError) {
        shared.cond.lock()
        defer { shared.cond.unlock() }
        if !current.isEmpty {
            shared.free.append(current)
            current = []
            shared.cond.broadcast()
        }
        while shared.full.isEmpty && !shared.ended { shared.cond.wait() }
        if !shared.full.isEmpty {
            let chunk = shared.full.removeFirst()
            current = chunk.bytes
            currentCount = chunk.count
            position = 0
            return
        }
        if let error = shared.error { throw error }
        atEnd = true
        currentCount = 0
        position = 0
    }

    /// Reads to the end of the uncompressed stream and returns both digests.
    func finish() throws(MinewatchError) -> LayerDigests {
        var sink = [UInt8](repeating: 0, count: 64 * 1024)
        while try sink.withMutableBytes({ (b) throws(MinewatchError) -> Int in try read(into: b) }) > 0 {}
        shared.cond.lock()
        defer { shared.cond.unlock() }
        if let error = shared.error { throw error }
        guard let stored = shared.storedDigest else {
            throw MinewatchError(.io, operation: "hash layer", message: "the layer's reader ended without its digest")
        }
        return LayerDigests(blob: stored, content: contentHash?.digest() ?? stored)
    }
}
