import SkiffQueue
import Testing

/// Invalid policies, each rejected with an error naming where.
@Suite("policy rejections")
struct TopicFilterRejectionTests {
    struct Rejection: Sendable, CustomTestStringConvertible {
        let name: String
        let policy: JSONValue
        let path: String

        init(_ name: String, _ policy: String, _ path: String) {
            self.name = name
            // A malformed test policy shows up as a mismatch on "unparsable".
            self.policy = (try? json(policy)) ?? .string("unparsable")
            self.path = path
        }

        init(_ name: String, value: JSONValue, _ path: String) {
            self.name = name
            self.policy = value
            self.path = path
        }

        var testDescription: String { name }
    }

    /// `{"k1": {"k2": … {"kN": ["x"]}}}`: N policy objects deep.
    static func nested(depth: Int) -> JSONValue {
        var value: JSONValue = ["x"]
        for level in stride(from: depth, through: 1, by: -1) {
            value = .object(["k\(level)": value])
        }
        return value
    }

    static func values(_ count: Int) -> JSONValue {
        .array((0..<count).map { .string("v\($0)") })
    }

    static let rejections: [Rejection] = [
        Rejection("string policy", #""store""#, "$"),
        Rejection("array policy", #"[{"a": ["x"]}]"#, "$"),
        Rejection("null policy", "null", "$"),
        Rejection("empty policy", "{}", "$"),
        Rejection("key maps to a string", #"{"a": "x"}"#, "$.a"),
        Rejection("key maps to a number", #"{"a": {"b": 1}}"#, "$.a.b"),
        Rejection("empty condition array", #"{"a": []}"#, "$.a"),
        Rejection("empty nested object", #"{"a": {}}"#, "$.a"),
        Rejection("unknown operator", #"{"ip": [{"cidr": "10.0.0.0/24"}]}"#, "$.ip[0].cidr"),
        Rejection("unknown operator under an odd key", #"{"source ip": ["x", {"wildcard": "*"}]}"#, #"$["source ip"][1].wildcard"#),
        Rejection("empty operator object", #"{"a": [{}]}"#, "$.a[0]"),
        Rejection("two operators in one object", #"{"a": [{"prefix": "x", "suffix": "y"}]}"#, "$.a[0]"),
        Rejection("condition is an array", #"{"a": [["x"]]}"#, "$.a[0]"),
        Rejection("empty prefix", #"{"a": [{"prefix": ""}]}"#, "$.a[0].prefix"),
        Rejection("numeric prefix", #"{"a": [{"prefix": 1}]}"#, "$.a[0].prefix"),
        Rejection("suffix of null", #"{"a": [{"suffix": null}]}"#, "$.a[0].suffix"),
        Rejection("equals-ignore-case of a number", #"{"a": [{"equals-ignore-case": 1}]}"#, #"$.a[0]["equals-ignore-case"]"#),
        Rejection("exists of a string", #"{"a": [{"exists": "true"}]}"#, "$.a[0].exists"),
        Rejection("numeric with a bad operator", #"{"p": [{"numeric": ["!=", 1]}]}"#, "$.p[0].numeric[0]"),
        Rejection("numeric of a string", #"{"p": [{"numeric": [">", "1"]}]}"#, "$.p[0].numeric[1]"),
        Rejection("numeric with 3 items", #"{"p": [{"numeric": [">", 1, "<"]}]}"#, "$.p[0].numeric"),
        Rejection("numeric not an array", #"{"p": [{"numeric": 5}]}"#, "$.p[0].numeric"),
        Rejection("numeric range upper first", #"{"p": [{"numeric": ["<", 10, ">", 5]}]}"#, "$.p[0].numeric[0]"),
        Rejection("numeric range with = ", #"{"p": [{"numeric": ["=", 1, "<", 5]}]}"#, "$.p[0].numeric[0]"),
        Rejection("numeric range with two lower bounds", #"{"p": [{"numeric": [">", 1, ">=", 5]}]}"#, "$.p[0].numeric[2]"),
        Rejection("numeric range lower above upper", #"{"p": [{"numeric": [">", 10, "<", 5]}]}"#, "$.p[0].numeric"),
        Rejection("numeric range empty", #"{"p": [{"numeric": [">=", 5, "<=", 5]}]}"#, "$.p[0].numeric"),
        Rejection("anything-but empty array", #"{"a": [{"anything-but": []}]}"#, #"$.a[0]["anything-but"]"#),
        Rejection("anything-but mixed array", #"{"a": [{"anything-but": ["x", 1]}]}"#, #"$.a[0]["anything-but"][1]"#),
        Rejection("anything-but array of booleans", #"{"a": [{"anything-but": [true]}]}"#, #"$.a[0]["anything-but"][0]"#),
        Rejection("anything-but null", #"{"a": [{"anything-but": null}]}"#, #"$.a[0]["anything-but"]"#),
        Rejection("anything-but numeric", #"{"a": [{"anything-but": {"numeric": [">", 1]}}]}"#, #"$.a[0]["anything-but"].numeric"#),
        Rejection("anything-but empty prefix", #"{"a": [{"anything-but": {"prefix": ""}}]}"#, #"$.a[0]["anything-but"].prefix"#),
        Rejection("$or with one branch", #"{"$or": [{"a": ["x"]}]}"#, "$.$or"),
        Rejection("$or not an array", #"{"$or": {"a": ["x"]}}"#, "$.$or"),
        Rejection("$or with a non-object branch", #"{"$or": [{"a": ["x"]}, "b"]}"#, "$.$or[1]"),
        Rejection("$or with an empty branch", #"{"$or": [{"a": ["x"]}, {}]}"#, "$.$or[1]"),
        Rejection("error deep inside $or", #"{"$or": [{"a": ["x"]}, {"b": {"c": [{"numeric": [">"]}]}}]}"#, "$.$or[1].b.c[0].numeric"),
        Rejection("too deep", value: nested(depth: 9), "$.k1.k2.k3.k4.k5.k6.k7.k8"),
        Rejection(
            "too deep through $or", #"{"a": {"b": {"c": {"d": {"e": {"f": {"g": {"$or": [{"x": ["y"]}, {"z": ["y"]}]}}}}}}}}"#,
            "$.a.b.c.d.e.f.g.$or[0]"),
        Rejection(
            "too many keys",
            value: .object(
                Dictionary(
                    uniqueKeysWithValues: (0...64).map {
                        (($0 < 10 ? "k0" : "k") + String($0), JSONValue.array(["x"]))
                    })), "$.k64"),
        Rejection("too many conditions for one key", value: ["a": values(101)], "$.a"),
        Rejection("too many anything-but values", value: ["a": [["anything-but": values(101)]]], #"$.a[0]["anything-but"]"#),
        Rejection("too many combinations", value: ["a": values(11), "b": values(10), "c": values(10)], "$"),
        Rejection("too many combinations in a nested object", value: ["n": ["a": values(11), "b": values(10), "c": values(10)]], "$.n"),
        Rejection(
            "too many combinations across $or branches",
            value: [
                "a": values(10),
                "$or": [["b": values(50)], ["c": values(51)]],
            ], "$"),
        Rejection("string condition too long", value: ["a": [.string(String(repeating: "x", count: 1025))]], "$.a[0]"),
        Rejection("prefix too long", value: ["a": [["prefix": .string(String(repeating: "é", count: 513))]]], "$.a[0].prefix"),
        Rejection(
            "key too long", value: .object([String(repeating: "k", count: 1025): ["x"]]),
            "$[\"" + String(repeating: "k", count: 64) + "…\"]"),
    ]

    @Test("rejected with the offending path", arguments: rejections)
    func rejected(_ expected: Rejection) throws {
        #expect(expected.policy != .string("unparsable"))
        let error = try #require(rejection(expected.policy))
        #expect(error.path == expected.path, "\(error)")
        #expect(error.description == "filter \(error.path): \(error.message)")
        #expect(!error.message.isEmpty)
    }

    @Test("the table holds at least 15 cases")
    func tableSize() {
        #expect(Self.rejections.count >= 15)
    }

    @Test("policies exactly at the limits are accepted")
    func atTheLimits() throws {
        let limits = TopicFilter.limits
        #expect(limits.maxDepth == 8 && limits.maxKeys == 64 && limits.maxConditionsPerKey == 100)
        #expect(limits.maxCombinations == 1000 && limits.maxStringBytes == 1024)
        _ = try TopicFilter(policy: Self.nested(depth: limits.maxDepth))
        _ = try TopicFilter(policy: .object(Dictionary(uniqueKeysWithValues: (0..<64).map { ("k\($0)", JSONValue.array(["x"])) })))
        _ = try TopicFilter(policy: ["a": Self.values(100)])
        let combinations = try TopicFilter(policy: ["a": Self.values(10), "b": Self.values(10), "c": Self.values(10)])
        #expect(combinations.combinations == 1000)
        _ = try TopicFilter(policy: ["a": [.string(String(repeating: "x", count: 1024))]])
    }

    @Test("error description and path rendering")
    func description() {
        let error = rejection(["a b": ["ok": [["cidr": "x"]]]])
        #expect(
            error?.description == #"filter $["a b"].ok[0].cidr: unknown operator "cidr" (known: prefix, suffix, "#
                + "equals-ignore-case, anything-but, numeric, exists)")
        #expect(rejection(["quote\"\\\n": [["cidr": 1]]])?.path == #"$["quote\"\\\n"][0].cidr"#)
        #expect(rejection(["9lives": [["cidr": 1]]])?.path == #"$["9lives"][0].cidr"#)
        #expect(rejection(["_x$9": [["cidr": 1]]])?.path == "$._x$9[0].cidr")
    }
}
