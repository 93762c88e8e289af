import Foundation
import Testing
import TestSupport
@testable import MinewatchNetwork

/// The top-level reader of Stratum lines against Foundation's JSON parser: on real lines of the
/// three dialects and on thousands of mutations of them, whatever it accepts Foundation accepts,
/// with the same method, id, kinds of params and result, and error.
@Suite struct StratumLineTests {
    static let lines = [
        #"{"id":1,"jsonrpc":"2.0","method":"login","params":{"login":"48edfHu7V9Z84YzzMa6fUueoELZ9ZRXq9VetWzYGzKt52XU5xvqgzYnDK9URnRoJMk1j8nLwEVsaSWJ4fhdUyZijBGUicoD","pass":"x","agent":"XMRig/6.21.0 (Linux x86_64) libuv/1.44.2 gcc/12.2.0","algo":["rx/0","cn/r"]}}"#,
        #"{"id":1,"jsonrpc":"2.0","error":null,"result":{"id":"abc","job":{"blob":"0606","job_id":"j1","target":"b88d0600","algo":"rx/0","seed_hash":"00"},"status":"OK"}}"#,
        #"{"id":4,"jsonrpc":"2.0","method":"submit","params":{"id":"abc","job_id":"j1","nonce":"3a000000","result":"ff00"}}"#,
        #"{"id":4,"jsonrpc":"2.0","error":null,"result":{"status":"OK"}}"#,
        #"{"id":5,"jsonrpc":"2.0","error":{"code":-1,"message":"Low difficulty share"}}"#,
        #"{"jsonrpc":"2.0","method":"job","params":{"blob":"0606","job_id":"j2","target":"b88d0600","algo":"rx/0"}}"#,
        #"{"id": 2, "method": "mining.subscribe", "params": ["cpuminer/2.5.1"]}"#,
        #"{"id":"x7","method":"mining.submit","params":["wallet.rig","6a","00000000","5f6c","0b2c"]}"#,
        #"{"id":"x7","result":true,"error":null}"#,
        #"{"id":"x8","result":false,"error":[23,"Low difficulty share",null]}"#,
        #"{"id":null,"method":"mining.notify","params":["6a","4d16","01000000",["a","b"],"20000000","1d00ffff","5f6c",true]}"#,
        #"{"id":null,"method":"mining.set_difficulty","params":[0.5]}"#,
        #"{"id":3,"method":"eth_submitWork","params":["0x1","0x2","0x3"],"worker":"rig"}"#,
        #"{"id":0,"jsonrpc":"2.0","result":["0xaa","0xbb","0xcc"]}"#,
        #"{"method":"keepalived","id":9,"params":{"id":"abc"}}"#,
        #"{"id":10,"method":"mining.submit\u0020","params":[]}"#,
        #"{"id":1e3,"method":"submit"}"#,
        #"{"id":-0,"method":"submit"}"#,
        #"  {"id":1,"method":"submit"}  "#,
        #"{"id":1,"method":"submit"} x"#,
        #"{"a":[[[[[[1]]]]]],"b":"\n","c":"\u00e9\ud83d\ude00","d":-12.5e+3}"#,
        #"{}"#, #"[]"#, #"{"a":}"#, #"{"a":01}"#, #"{"a":1,}"#, #"{"a" 1}"#, #"{"a":tru}"#, #"{"a":"\x"}"#,
    ]

    func foundation(_ b: [UInt8]) -> [String: Any]? { (try? JSONSerialization.jsonObject(with: Data(b))) as? [String: Any] }

    static func kind(_ v: Any?) -> StratumLine.Kind? {
        switch v {
        case nil: return nil
        case is NSNull: return .null
        case is [String: Any]: return .object
        case is [Any]: return .array
        case is String: return .string
        case let n as NSNumber:
            if String(cString: n.objCType) == "c" { return .bool(n.boolValue) }  // JSON true and false
            return .number
        default: return nil
        }
    }

    func check(_ b: [UInt8]) {
        guard let s = StratumLine.scan(b) else {
            // Refused: either not JSON, or written in a way only Foundation reads (escapes, fractions).
            if let obj = foundation(b), let m = obj["method"] as? String, !b.contains(0x5c), obj["id"] == nil || obj["id"] is NSNull {
                Issue.record("refused a line Foundation reads, with plain method \(m): \(String(decoding: b, as: UTF8.self))")
            }
            return
        }
        guard let obj = foundation(b) else {
            Issue.record("accepted a line Foundation refuses: \(String(decoding: b, as: UTF8.self))")
            return
        }
        #expect(s.method == obj["method"] as? String)
        #expect(s.id == FlowInspector.str(obj["id"]), "\(String(decoding: b, as: UTF8.self))")
        #expect(s.params == Self.kind(obj["params"]))
        #expect(s.result == Self.kind(obj["result"]))
        #expect(s.errorSet == (obj["error"] != nil && !(obj["error"] is NSNull)))
        #expect(s.resultHasJob == ((obj["result"] as? [String: Any])?["job"] != nil))
    }

    @Test func agreesWithFoundationOnRealLines() {
        for l in Self.lines { check(Array(l.utf8)) }
        #expect(StratumLine.scan(Array(Self.lines[2].utf8))?.method == "submit")
        #expect(StratumLine.scan(Array(#"{"id":1,"method":"submit"} x"#.utf8)) == nil)
    }

    @Test func agreesWithFoundationOnMutations() {
        var rand = Samples.Rand(seed: 0x57a7)
        let alphabet = Array(#"{}[]":,\ 0123456789.eE+-truefalsnu"#.utf8)
        for _ in 0..<20_000 {
            var b = Array(Self.lines[Int(rand.next() % UInt64(Self.lines.count))].utf8)
            for _ in 0..<(1 + Int(rand.next() % 3)) where !b.isEmpty {
                let at = Int(rand.next() % UInt64(b.count))
                switch rand.next() % 3 {
                case 0: b[at] = alphabet[Int(rand.next() % UInt64(alphabet.count))]
                case 1: b.remove(at: at)
                default: b.insert(alphabet[Int(rand.next() % UInt64(alphabet.count))], at: at)
                }
            }
            check(b)
        }
    }
}
