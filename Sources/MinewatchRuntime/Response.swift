import Foundation
import MinewatchCore
import MinewatchModel
import MinewatchEngine
import MinewatchHost
#if canImport(Glibc)
import Glibc
#endif

/// Carries out responses on the host. The test double records calls instead.
public protocol ResponseActuator: Sendable {
    /// Freezes the cgroup; returns the control file written.
    func freeze(cgroupPaths: [String: String]) throws(MinewatchError) -> String
    /// Kills pid if it is still the process that started at `startTicks`.
    func kill(pid: Int32, startTicks: UInt64) throws(MinewatchError)
    func stop(containerID: String) throws(MinewatchError)
}

/// The real actuator: cgroup files, kill(2), the engine API.
public struct HostActuator: ResponseActuator {
    public let cgroupRoot: String
    public let procRoot: String
    public let engine: EngineClient?

    public init(cgroupRoot: String = "/sys/fs/cgroup", procRoot: String = "/proc", engine: EngineClient?) {
        self.cgroupRoot = cgroupRoot
        self.procRoot = procRoot
        self.engine = engine
    }

    func write(_ path: String, _ value: String) throws(MinewatchError) {
        let fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOFOLLOW)
        if fd < 0 { throw .posix("open", subject: path, errno: errno) }
        defer { close(fd) }
        let bytes = Array(value.utf8)
        let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        if n != bytes.count { throw .posix("write \(value)", subject: path, errno: errno) }
    }

    func read(_ path: String) -> String {
        (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
    }

    public func freeze(cgroupPaths: [String: String]) throws(MinewatchError) -> String {
        if let p = cgroupPaths["freezer"] {
            let file = "\(cgroupRoot)/freezer\(p)/freezer.state"
            try write(file, "FROZEN")
            // FREEZING until every task stopped.
            for _ in 0..<50 where read(file) != "FROZEN" { usleep(20_000) }
            guard read(file) == "FROZEN" else {
                throw MinewatchError(.io, operation: "freeze", subject: file, message: "still \(read(file)) after 1 s")
            }
            return file
        }
        if let p = cgroupPaths[""] {
            let base = FileManager.default.fileExists(atPath: "\(cgroupRoot)/cgroup.controllers") ? cgroupRoot : "\(cgroupRoot)/unified"
            let file = "\(base)\(p)/cgroup.freeze"
            try write(file, "1")
            let events = "\(base)\(p)/cgroup.events"
            for _ in 0..<50 where !read(events).contains("frozen 1") { usleep(20_000) }
            guard read(events).contains("frozen 1") else {
                throw MinewatchError(.io, operation: "freeze", subject: file, message: "cgroup.events does not say frozen after 1 s")
            }
            return file
        }
        throw MinewatchError(.notFound, operation: "freeze", subject: nil, message: "no freezer cgroup (v1) or unified cgroup (v2) for the container")
    }

    public func kill(pid: Int32, startTicks: UInt64) throws(MinewatchError) {
        // Guard against pid reuse: the process must still be the one that was inspected.
        let stat = read("\(procRoot)/\(pid)/stat")
        guard let s = ProcParsers.stat(stat), s.start == startTicks else {
            throw MinewatchError(.notFound, operation: "kill", subject: "pid \(pid)", message: "process has exited (or the pid was reused)")
        }
        if Glibc.kill(pid, SIGKILL) != 0 { throw .posix("kill", subject: "pid \(pid)", errno: errno) }
    }

    public func stop(containerID: String) throws(MinewatchError) {
        guard let engine else {
            throw MinewatchError(.invalidArgument, operation: "stop", subject: String(containerID.prefix(12)), message: "no engine socket (--engine-socket)")
        }
        try engine.stopContainer(containerID)
    }
}

/// Decides whether and how to respond to an alert, and never touches the host group or the
/// container minewatch itself runs in. One response per container and action.
public final class Responder {
    public let action: ResponseAction
    public let actOn: Severity
    public let dryRun: Bool
    let actuator: ResponseActuator
    /// The container minewatch runs in, if any (from /proc/self/cgroup).
    let ownContainer: String?
    let ownPid: Int32
    var done: Set<String> = []

    public init(action: ResponseAction, actOn: Severity, dryRun: Bool, actuator: ResponseActuator,
                ownContainer: String? = Responder.currentContainer(), ownPid: Int32 = getpid()) {
        self.action = action
        self.actOn = actOn
        self.dryRun = dryRun
        self.actuator = actuator
        self.ownContainer = ownContainer
        self.ownPid = ownPid
    }

    /// Forgets what was done in a container that is gone.
    public func forget(_ container: String) { done = done.filter { !$0.hasPrefix(container + "/") } }

    public static func currentContainer(procRoot: String = "/proc") -> String? {
        guard let text = try? String(contentsOfFile: "\(procRoot)/self/cgroup", encoding: .utf8) else { return nil }
        return CgroupPaths.parse(procCgroup: text).container?.id
    }

    /// `processes`: the container's processes in the last pass.
    public func respond(to alert: Alert, processes: [ProcessSample]) -> ResponseOutcome? {
        guard action != .alert, alert.severity >= actOn else { return nil }
        let id = alert.container.id
        let short = String(id.prefix(12))
        func outcome(_ target: String, _ ok: Bool, _ result: String) -> ResponseOutcome {
            ResponseOutcome(action: action.rawValue, dryRun: dryRun, target: target, ok: ok, result: result)
        }
        if id == "host" || processes.contains(where: { $0.container == nil }) {
            return outcome("host", false, "refused: never acts on processes outside containers")
        }
        if id == ownContainer || processes.contains(where: { $0.pid == ownPid }) {
            return outcome("container \(short)", false, "refused: minewatch runs in this container")
        }
        switch action {
        case .alert:
            return nil
        case .freeze, .stop:
            let key = "\(id)/\(action.rawValue)"
            if done.contains(key) { return nil }
            done.insert(key)
            if action == .stop {
                if dryRun { return outcome("container \(short)", true, "would stop container \(short) through the engine API") }
                do {
                    try actuator.stop(containerID: id)
                    return outcome("container \(short)", true, "stopped")
                } catch {
                    return outcome("container \(short)", false, "failed: \(error.description)")
                }
            }
            guard let paths = processes.first?.cgroupPaths else {
                return outcome("container \(short)", false, "failed: no processes left to find its cgroup")
            }
            let target = "cgroup \(paths["freezer"] ?? paths[""] ?? "?")"
            if dryRun { return outcome(target, true, "would freeze container \(short)") }
            do {
                let file = try actuator.freeze(cgroupPaths: paths)
                return outcome("cgroup \(file)", true, "frozen")
            } catch {
                return outcome(target, false, "failed: \(error.description)")
            }
        case .kill:
            guard let pid = alert.pid else { return outcome("container \(short)", false, "failed: the alert names no process") }
            guard let p = processes.first(where: { $0.pid == pid }) else {
                return outcome("pid \(pid)", false, "failed: pid \(pid) is not a process of container \(short) any more")
            }
            let key = "\(id)/kill/\(pid):\(p.startTicks)"
            if done.contains(key) { return nil }
            done.insert(key)
            let target = "pid \(pid) (\(p.comm))"
            if dryRun { return outcome(target, true, "would kill pid \(pid) with SIGKILL") }
            do {
                try actuator.kill(pid: pid, startTicks: p.startTicks)
                return outcome(target, true, "killed")
            } catch {
                return outcome(target, false, "failed: \(error.description)")
            }
        }
    }
}
