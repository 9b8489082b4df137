import SkiffQueue
import Testing

@Suite("JSONValue parsing")
struct JSONValueTests {
    @Test("booleans stay booleans and numbers stay numbers")
    func booleansAreNotNumbers() throws {
        #expect(try json("true") == .bool(true))
        #expect(try json("false") == .bool(false))
        #expect(try json("1") == .number(1))
        #expect(try json("0") == .number(0))
        #expect(try json("[true, 1, 0, false, 1.5]") == [true, 1, 0, false, 1.5])
        #expect(try json("true") != .number(1))
    }

    @Test("every kind of value, nested")
    func nested() throws {
        let value = try json(#"{"a": [null, "s", -2.5e2, {"b": {}}], "c": []}"#)
        #expect(value == ["a": [nil, "s", -250, ["b": [:]]], "c": []])
        #expect(try json(#""top-level string""#) == "top-level string")
    }

    @Test("invalid JSON throws", arguments: ["", "{", "{'a': 1}", "tru", "{\"a\" 1}"])
    func invalid(_ text: String) {
        #expect(throws: (any Error).self) { try json(text) }
    }

    @Test("matching walks deep and wide bodies without recursion trouble")
    func bounded() throws {
        var deep: JSONValue = "x"
        for _ in 0..<5_000 {
            deep = [deep]
        }
        #expect(try filter(#"{"k": ["x"]}"#).matches(["k": deep]))
        #expect(try filter(#"{"k": {"j": [{"exists": false}]}}"#).matches(["k": deep]))

        let wide = JSONValue.array((0..<10_000).map { .string("v\($0)") })
        let conditions = JSONValue.array((0..<100).map { .string("w\($0)") })
        #expect(!(try TopicFilter(policy: ["k": conditions]).matches(["k": wide])))
    }
}
