import Foundation
import Testing
import MinewatchModel
import MinewatchNetwork
import MinewatchPackets

/// The job-push shape over message logs written as a pool, a chat, a feed and HTTP would fill them.
@Suite struct JobPushTests {
    /// A log from (time, bytes, fromClient) messages, after a four-message handshake.
    func log(_ messages: [(Double, Int, Bool)]) -> ExchangeLog {
        var l = ExchangeLog()
        for (t, n, c) in [(0.0, 300, true), (0.01, 2800, false), (0.02, 80, true), (0.03, 250, false)] + messages { l.add(time: t, bytes: n, fromClient: c) }
        return l
    }

    func pool(seconds: Double = 40, submitEvery: Double = 2.3, jobEvery: Double = 3.1) -> [(Double, Int, Bool)] {
        var out: [(Double, Int, Bool)] = [(0.1, 520, true), (0.11, 480, false)]
        var t = 0.5, nextJob = jobEvery
        while t < seconds {
            if nextJob <= t { out.append((nextJob, 379 + Int.random(in: -6...6), false)); nextJob += jobEvery }
            out.append((t, 215, true))
            out.append((t + 0.002, 85, false))
            t += submitEvery * Double.random(in: 0.5...1.5)
        }
        return out.sorted { $0.0 < $1.0 }
    }

    @Test func stratumUnderTLSHasTheShape() throws {
        let s = try #require(JobPushJudge.judge(log(pool())))
        #expect(s.pushes >= 8 && abs(s.meanPushBytes - 379) < 10 && abs(s.pushPeriodSeconds - 3.1) < 0.5)
        #expect(JobPushJudge.describe(s).contains("server-initiated pushes of about"))
    }

    @Test func pushChannelsAndRequestResponseDoNot() {
        // Chat: pushes of every length, client messages acknowledged.
        var chat: [(Double, Int, Bool)] = []
        var t = 0.5
        while t < 40 {
            chat.append((t, Int.random(in: 60...900), false))
            if Bool.random() { chat.append((t + 0.7, Int.random(in: 40...500), true)); chat.append((t + 0.702, 60, false)) }
            t += Double.random(in: 0.4...5)
        }
        #expect(JobPushJudge.judge(log(chat)) == nil)
        // A feed: alike pushes at a cadence, each acknowledged by the client at once (flow control).
        var feed: [(Double, Int, Bool)] = []
        for k in 1...20 { feed += [(Double(k) * 2, 149, false), (Double(k) * 2 + 0.001, 65, true), (Double(k) * 2 + 0.002, 39, false)] }
        #expect(JobPushJudge.judge(log(feed)) == nil)
        // HTTP polling: every server message answers a request.
        var http: [(Double, Int, Bool)] = []
        for k in 1...30 { http += [(Double(k) * 1.3, 420, true), (Double(k) * 1.3 + 0.05, 380, false)] }
        #expect(JobPushJudge.judge(log(http)) == nil)
        // Too short, or too much volume.
        #expect(JobPushJudge.judge(log(pool(seconds: 6))) == nil)
        var bulk = pool()
        bulk.append((20, 400_000, false))
        #expect(JobPushJudge.judge(log(bulk)) == nil)
    }

    @Test func mergesPacketsOfOneMessage() {
        var l = ExchangeLog()
        l.add(time: 1, bytes: 1400, fromClient: false)
        l.add(time: 1.001, bytes: 600, fromClient: false)
        l.add(time: 1.002, bytes: 60, fromClient: true)
        #expect(l.recent.map(\.size) == [2000, 60] && l.recent.map(\.fromClient) == [false, true] && l.messages == 2)
    }
}
