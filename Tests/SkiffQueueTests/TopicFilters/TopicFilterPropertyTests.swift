import PropertyBased
import SkiffQueue
import Testing

/// Small pools, so that generated policies and bodies often agree and often differ.
enum Pool {
    static let scalars: [JSONValue] = ["a", "b", "ab", "ba", "A", "", "1", "true", 1, 2, 2.5, 1000, true, false, nil]
    static let strings: [String] = ["a", "b", "ab", "ba", "A", "", "1", "true"]

    /// Leaf condition arrays of every kind.
    static let leaves: [JSONValue] = [
        ["a"], ["a", "b"], [1], [2.5, "ab"], [true], [nil],
        [["prefix": "a"]], [["suffix": "a"]], [["equals-ignore-case": "A"]],
        [["anything-but": "a"]], [["anything-but": [1, 2]]], [["anything-but": ["prefix": "b"]]],
        [["numeric": [">", 1]]], [["numeric": [">=", 1, "<", 2.5]]], [["numeric": ["=", 1000]]],
        [["exists": true]], [["exists": false]], [["prefix": "b"], ["exists": false]],
    ]

    /// A value at a key: absent (nil), a scalar, an array of scalars, or an object.
    static let value = zip(
        Gen.int(in: 0...9), Gen.int(in: 0...(scalars.count - 1)), Gen.int(in: 0...(scalars.count - 1)).array(of: 0...4)
    ).map { choice -> JSONValue? in
        switch choice.0 {
        case 0, 1: nil
        case 2...5: scalars[choice.1]
        case 6...8: .array(choice.2.map { scalars[$0] })
        default: ["a": scalars[choice.1]]
        }
    }

    static let leaf = Gen.int(in: 0...(leaves.count - 1)).map { leaves[$0] }
    static let string = Gen.int(in: 0...(strings.count - 1)).map { strings[$0] }

    /// A body object with the keys `k` and `j` each present or not.
    static func body(_ k: JSONValue?, _ j: JSONValue? = nil) -> JSONValue {
        var object: [String: JSONValue] = [:]
        object["k"] = k
        object["j"] = j
        return .object(object)
    }

    /// The scalars a leaf key's value offers to conditions: none for an absent key or an object.
    static func leafValues(_ value: JSONValue?) -> [JSONValue] {
        switch value {
        case nil, .object: []
        case .array(let elements): elements.filter { if case .object = $0 { false } else { true } }
        case let scalar?: [scalar]
        }
    }
}

@Suite("filter properties")
struct TopicFilterPropertyTests {
    @Test("an exact string matches exactly the bodies with that string at the key, or in an array there")
    func exactString() async throws {
        await propertyCheck(count: 300, input: Pool.string, Pool.value) { string, value in
            let filter = try TopicFilter(policy: ["k": [.string(string)]])
            let expected = Pool.leafValues(value).contains(.string(string))
            #expect(filter.matches(Pool.body(value)) == expected)
        }
    }

    @Test("anything-but [x] matches iff the key has a leaf value other than x; for scalars, iff exact [x] does not")
    func anythingBut() async throws {
        let excluded = Gen.int(in: 0...13).map { Pool.scalars[$0] }  // no null: anything-but rejects it
        await propertyCheck(count: 300, input: excluded, Pool.value) { x, value in
            let but = try TopicFilter(policy: ["k": [["anything-but": [x]]]])
            let exact = try TopicFilter(policy: ["k": [x]])
            let body = Pool.body(value)
            // Numbers compare numerically (`.number(1) == .number(1.0)`), strings and booleans by value.
            #expect(but.matches(body) == Pool.leafValues(value).contains { $0 != x })
            switch value {
            case nil, .object?:
                #expect(!but.matches(body) && !exact.matches(body))
            case .array?:
                break  // `["a", "b"]` matches both `["a"]` and anything-but `["a"]`: covered by the line above.
            case _?:
                #expect(but.matches(body) == !exact.matches(body))
            }
        }
    }

    @Test("$or of two policies matches iff either matches")
    func or() async throws {
        await propertyCheck(count: 300, input: Pool.leaf, Pool.leaf, Pool.value, Pool.value) { first, second, k, j in
            let left: JSONValue = ["k": first]
            let right: JSONValue = ["j": second]
            let either = try TopicFilter(policy: ["$or": [left, right]])
            let body = Pool.body(k, j)
            let expected = try TopicFilter(policy: left).matches(body) || TopicFilter(policy: right).matches(body)
            #expect(either.matches(body) == expected)
        }
    }

    @Test("AND of two policies on different keys matches iff both match")
    func and() async throws {
        await propertyCheck(count: 300, input: Pool.leaf, Pool.leaf, Pool.value, Pool.value) { first, second, k, j in
            let both = try TopicFilter(policy: ["k": first, "j": second])
            let body = Pool.body(k, j)
            let expected = try TopicFilter(policy: ["k": first]).matches(body) && TopicFilter(policy: ["j": second]).matches(body)
            #expect(both.matches(body) == expected)
        }
    }

    @Test("numeric [>=, a, <, b] matches iff a <= v < b")
    func numericRange() async throws {
        let half = Gen.int(in: -8...8).map { Double($0) / 2 }
        await propertyCheck(count: 300, input: half, half, half) { a, b, v in
            let (low, high) = (min(a, b), max(a, b))
            guard low < high else { return }
            let filter = try TopicFilter(policy: ["k": [["numeric": [">=", .number(low), "<", .number(high)]]]])
            #expect(filter.matches(["k": .number(v)]) == (low <= v && v < high))
            #expect(!filter.matches(["k": .string(String(v))]))
        }
    }

    @Test("a nested policy matches an array of objects iff it matches one of them")
    func nestedArray() async throws {
        let objects = zip(Pool.value, Pool.value).map { Pool.body($0.0, $0.1) }.array(of: 1...4)
        await propertyCheck(count: 300, input: Pool.leaf, Pool.leaf, objects) { first, second, elements in
            let filter = try TopicFilter(policy: ["n": ["k": first, "j": second]])
            let expected = elements.contains { filter.matches(["n": $0]) }
            #expect(filter.matches(["n": .array(elements)]) == expected)
        }
    }

    @Test("exists true and exists false are complements on every value")
    func existsComplement() async throws {
        await propertyCheck(count: 200, input: Pool.value) { value in
            let present = try TopicFilter(policy: ["k": [["exists": true]]])
            let absent = try TopicFilter(policy: ["k": [["exists": false]]])
            let body = Pool.body(value)
            #expect(present.matches(body) != absent.matches(body))
        }
    }
}
