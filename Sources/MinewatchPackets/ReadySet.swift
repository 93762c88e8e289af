import CShims
import Glibc

/// Descriptors waited on for input with epoll: each is added once, and a wait returns only the
/// ready ones (poll() would look at every one of them at every wake-up). A descriptor that is
/// closed leaves the set by itself. Not thread-safe: one thread owns it.
public final class ReadySet {
    let fd: Int32
    var buffer = [Int32](repeating: -1, count: 64)

    /// Nil when the kernel gives no epoll instance (out of descriptors).
    public init?() {
        fd = mw_epoll_new()
        if fd < 0 { return nil }
    }

    deinit { close(fd) }

    /// Adds a descriptor; true when it is in the set (already there counts).
    @discardableResult
    public func add(_ descriptor: Int32) -> Bool {
        let r = mw_epoll_add(fd, descriptor)
        return r == 0 || r == -EEXIST
    }

    /// Waits up to `milliseconds` for input; the descriptors that have some (at most 64 a call:
    /// the rest are reported by the next one). Empty on a timeout or an interrupted wait.
    public func wait(milliseconds: Int32) -> ArraySlice<Int32> {
        let n = buffer.withUnsafeMutableBufferPointer { mw_epoll_wait(fd, $0.baseAddress, Int32($0.count), milliseconds) }
        return buffer[0..<max(0, Int(n))]
    }
}
