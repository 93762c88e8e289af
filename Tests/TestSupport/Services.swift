import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A program started for a test (a registry, podman's API service), stopped on `stop()` or deinit.
public final class BackgroundProcess: @unchecked Sendable {
    public let process = Process()
    let log: URL

    public init(_ args: [String], label: String) throws {
        log = FileManager.default.temporaryDirectory.appendingPathComponent("mw-\(label)-\(UUID().uuidString.prefix(6)).log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let h = try FileHandle(forWritingTo: log)
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = args
        process.standardOutput = h
        process.standardError = h
        try process.run()
    }

    public var output: String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }

    /// SIGTERM, then SIGKILL after 3 s: children can inherit a blocked SIGTERM from the test
    /// runner's threads, and a test must never hang on a service it started.
    public func stop() {
        if process.isRunning {
            let pid = process.processIdentifier
            kill(pid, SIGTERM)
            let deadline = Date().addingTimeInterval(3)
            while process.isRunning && Date() < deadline { usleep(50_000) }
            if process.isRunning { kill(pid, SIGKILL) }
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: log)
    }

    deinit { stop() }

    /// Waits (bounded) until `ready()` holds.
    public func wait(seconds: Double = 15, until ready: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if ready() { return true }
            if !process.isRunning { return false }
            usleep(100_000)
        }
        return ready()
    }
}

/// A free TCP port on 127.0.0.1 (bound, read, closed).
public func freeLoopbackPort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = 0
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return Int(UInt16(bigEndian: addr.sin_port))
}

/// True when something accepts connections on 127.0.0.1:port.
public func loopbackPortOpen(_ port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    return withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    } == 0
}

/// Debian's docker-registry on 127.0.0.1:`port`, storing into `data`, with optional YAML `extra`
/// (an `auth:` section) under `http:` siblings. Stopped with `stop()`.
public func startRegistry(port: Int, data: String, dir: TempDir, extra: String = "") throws -> BackgroundProcess {
    let config = try dir.file("reg-\(port).yml", Array("""
    version: 0.1
    log:
      level: warn
    storage:
      filesystem:
        rootdirectory: \(data)
    http:
      addr: 127.0.0.1:\(port)
    \(extra)
    """.utf8))
    return try BackgroundProcess(["docker-registry", "serve", config], label: "registry")
}

/// Debian's docker-registry on a free loopback port with its data in `dir`, once it answers:
/// the process (stop it when done) and its `127.0.0.1:PORT`.
public func startLoopbackRegistry(in dir: TempDir, sourceLocation: SourceLocation = #_sourceLocation) throws -> (process: BackgroundProcess, host: String) {
    let port = freeLoopbackPort()
    let registry = try startRegistry(port: port, data: dir.path + "/data", dir: dir)
    guard registry.wait(until: { loopbackPortOpen(port) }) else {
        registry.stop()
        throw MissingPrerequisite(description: "registry did not start: \(registry.output)")
    }
    return (registry, "127.0.0.1:\(port)")
}

/// Returns when every tool is on PATH; otherwise the test is skipped, or fails under CI=true.
public func requireTools(_ tools: [String], sourceLocation: SourceLocation = #_sourceLocation) throws {
    let missing = tools.filter { (try? run(["sh", "-c", "command -v \($0)"]).status) != 0 }
    try prerequisite(missing.isEmpty, "missing: \(missing) (scripts/install-deps installs them)", sourceLocation: sourceLocation)
}
