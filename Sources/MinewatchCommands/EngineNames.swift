import Foundation
import MinewatchEngine
import MinewatchModel
import Synchronization

/// Container names and images from the engine. An alert for an unknown id refreshes the list at
/// once; telemetry refreshes it at most every 10 s. After a failure nothing is asked for 30 s, and
/// every request has a 5 s timeout, so a slow or wedged engine never stalls the watch loop for
/// long. An engine that stops answering is reported once on stderr; alerts then carry ids only,
/// and names return when it answers again.
final class EngineNames: Sendable {
    struct Cache {
        var names: [String: ContainerMetadata] = [:]
        var warned = false
        var lastRefresh = Date.distantPast
        var backoffUntil = Date.distantPast
    }
    let client: EngineClient
    let cache = Mutex(Cache())

    init(client: EngineClient) {
        var c = client
        c.http.timeoutSeconds = 5
        self.client = c
    }

    func refresh(_ c: inout Cache) {
        c.lastRefresh = Date()
        do {
            c.names = try client.containers()
            if c.warned { Terminal.error("engine: answering again") }
            c.warned = false
        } catch {
            if !c.warned { Terminal.error("engine: \(error.description); alerts carry container ids only") }
            c.warned = true
            c.backoffUntil = Date().addingTimeInterval(30)
        }
    }

    /// For alerts: an unknown id refreshes the list (unless the engine just failed).
    func lookup(_ id: String) -> ContainerMetadata? {
        cache.withLock { c in
            if let hit = c.names[id] { return hit }
            if Date() >= c.backoffUntil { refresh(&c) }
            return c.names[id]
        }
    }

    /// For telemetry: refreshes at most every 10 s.
    func cached(_ id: String) -> ContainerMetadata? {
        cache.withLock { c in
            if let hit = c.names[id] { return hit }
            if Date() >= c.backoffUntil && Date().timeIntervalSince(c.lastRefresh) >= 10 { refresh(&c) }
            return c.names[id]
        }
    }
}
