import SkiffQueue
import Testing

/// SNS's documented filter-policy examples (message-body scope), and the edge cases around them.
@Suite("SNS filter policy examples")
struct TopicFilterSNSExampleTests {
    struct Example: Sendable, CustomTestStringConvertible {
        let name: String
        let policy: String
        let body: String
        let matches: Bool

        var testDescription: String { name }
    }

    /// The body of SNS's examples.
    static let order = """
        {"store": "example_corp", "event": "order_placed", "customer_interests": ["soccer", "rugby", "hockey"],
         "price_usd": 210.75, "encrypted": false}
        """

    static let cloudwatch = """
        {"source": ["aws.cloudwatch"], "$or": [{"metricName": ["CPUUtilization", "ReadLatency"]},
         {"metricType": ["MetricType"], "$or": [{"metricId": [1234, 4321]}, {"spaceId": [1000, 2000, 3000]}]}]}
        """

    static let notRugbyOrTennis = #"{"customer_interests": [{"anything-but": ["rugby", "tennis"]}]}"#

    static let metricOrNamespace = #"{"source": ["aws.cloudwatch"], "$or": [{"metricName": ["CPUUtilization"]}, {"namespace": ["AWS/EC2"]}]}"#

    static let examples: [Example] = [
        // The overview's policy, which accepts the example message.
        Example(
            name: "overview policy",
            policy: """
                {"store": ["example_corp"], "event": [{"anything-but": "order_cancelled"}],
                 "customer_interests": ["rugby", "football", "baseball"], "price_usd": [{"numeric": [">=", 100]}]}
                """, body: order, matches: true),
        Example(
            name: "overview policy, cancelled order",
            policy: """
                {"store": ["example_corp"], "event": [{"anything-but": "order_cancelled"}],
                 "customer_interests": ["rugby", "football", "baseball"], "price_usd": [{"numeric": [">=", 100]}]}
                """, body: #"{"store": "example_corp", "event": "order_cancelled", "customer_interests": ["rugby"], "price_usd": 300}"#,
            matches: false),

        // String value matching.
        Example(name: "exact string", policy: #"{"store": ["example_corp"]}"#, body: order, matches: true),
        Example(name: "exact string, other value", policy: #"{"store": ["example_inc"]}"#, body: order, matches: false),
        Example(name: "exact string is case-sensitive", policy: #"{"store": ["Example_Corp"]}"#, body: order, matches: false),
        Example(name: "OR within a key", policy: #"{"store": ["example_inc", "example_corp"]}"#, body: order, matches: true),
        Example(
            name: "string against array body: any element", policy: #"{"customer_interests": ["rugby", "football", "baseball"]}"#,
            body: order, matches: true),
        Example(
            name: "string against array body: no element", policy: #"{"customer_interests": ["baseball"]}"#,
            body: order, matches: false),
        Example(name: "absent key never matches a value", policy: #"{"coupon": ["none"]}"#, body: order, matches: false),

        // Numeric value matching.
        Example(name: "numeric exact", policy: #"{"price_usd": [210.75]}"#, body: order, matches: true),
        Example(name: "numeric equals operator", policy: #"{"price_usd": [{"numeric": ["=", 210.75]}]}"#, body: order, matches: true),
        Example(name: "300 matches 300.0", policy: #"{"price": [300]}"#, body: #"{"price": 300.0}"#, matches: true),
        Example(name: "= 300 matches 3e2", policy: #"{"price": [{"numeric": ["=", 300]}]}"#, body: #"{"price": 3e2}"#, matches: true),
        Example(
            name: "numeric never matches a string", policy: #"{"price": [{"numeric": ["=", 300]}]}"#,
            body: #"{"price": "300"}"#, matches: false),
        Example(name: "exact number never matches a string", policy: #"{"price": [300]}"#, body: #"{"price": "300"}"#, matches: false),
        Example(name: "exact string never matches a number", policy: #"{"price": ["300"]}"#, body: #"{"price": 300}"#, matches: false),
        Example(name: "numeric less than", policy: #"{"price_usd": [{"numeric": ["<", 0]}]}"#, body: order, matches: false),
        Example(name: "numeric range", policy: #"{"price_usd": [{"numeric": [">", 0, "<=", 210.75]}]}"#, body: order, matches: true),
        Example(
            name: "numeric range, upper bound excluded", policy: #"{"price_usd": [{"numeric": [">=", 100, "<", 210.75]}]}"#,
            body: order, matches: false),
        Example(
            name: "numeric greater than, bound excluded", policy: #"{"price_usd": [{"numeric": [">", 210.75]}]}"#,
            body: order, matches: false),
        Example(
            name: "numeric against array body", policy: #"{"prices": [{"numeric": [">", 100]}]}"#,
            body: #"{"prices": [5, "500", 150]}"#, matches: true),

        // Booleans and null.
        Example(name: "boolean exact", policy: #"{"encrypted": [false]}"#, body: order, matches: true),
        Example(name: "string \"false\" is not false", policy: #"{"encrypted": ["false"]}"#, body: order, matches: false),
        Example(name: "true is not string \"true\"", policy: #"{"encrypted": [true]}"#, body: #"{"encrypted": "true"}"#, matches: false),
        Example(name: "boolean is not a number", policy: #"{"flag": [1]}"#, body: #"{"flag": true}"#, matches: false),
        Example(name: "null matches null", policy: #"{"coupon": [null]}"#, body: #"{"coupon": null}"#, matches: true),
        Example(name: "null does not match absent", policy: #"{"coupon": [null]}"#, body: order, matches: false),

        // Key matching (exists).
        Example(name: "exists true, present", policy: #"{"store": [{"exists": true}]}"#, body: order, matches: true),
        Example(name: "exists true, absent", policy: #"{"coupon": [{"exists": true}]}"#, body: order, matches: false),
        Example(name: "exists false, absent", policy: #"{"coupon": [{"exists": false}]}"#, body: order, matches: true),
        Example(name: "exists false, present", policy: #"{"store": [{"exists": false}]}"#, body: order, matches: false),
        Example(name: "exists true, null value", policy: #"{"coupon": [{"exists": true}]}"#, body: #"{"coupon": null}"#, matches: true),
        Example(name: "exists true, empty array", policy: #"{"tags": [{"exists": true}]}"#, body: #"{"tags": []}"#, matches: true),
        Example(
            name: "exists true, object is not a leaf", policy: #"{"store": [{"exists": true}]}"#,
            body: #"{"store": {"name": "x"}}"#, matches: false),
        Example(
            name: "exists false, object is not a leaf", policy: #"{"store": [{"exists": false}]}"#,
            body: #"{"store": {"name": "x"}}"#, matches: true),
        Example(
            name: "string condition against an object value", policy: #"{"store": ["example_corp"]}"#,
            body: #"{"store": {"name": "example_corp"}}"#, matches: false),

        // Anything-but.
        Example(
            name: "anything-but strings, array body with other value", policy: notRugbyOrTennis,
            body: order, matches: true),
        Example(
            name: "anything-but strings, array body of excluded values", policy: notRugbyOrTennis,
            body: #"{"customer_interests": ["rugby", "tennis"]}"#, matches: false),
        Example(
            name: "anything-but string, scalar excluded", policy: #"{"event": [{"anything-but": "order_placed"}]}"#,
            body: order, matches: false),
        Example(name: "anything-but numbers", policy: #"{"price_usd": [{"anything-but": [100, 500]}]}"#, body: order, matches: true),
        Example(
            name: "anything-but numbers, excluded 500.0", policy: #"{"price_usd": [{"anything-but": [100, 500]}]}"#,
            body: #"{"price_usd": 500.0}"#, matches: false),
        Example(
            name: "anything-but never matches an absent key", policy: #"{"coupon": [{"anything-but": "x"}]}"#,
            body: order, matches: false),
        Example(
            name: "anything-but on an empty array", policy: #"{"tags": [{"anything-but": "x"}]}"#, body: #"{"tags": []}"#,
            matches: false),
        Example(
            name: "anything-but prefix, excluded", policy: #"{"event": [{"anything-but": {"prefix": "order-"}}]}"#,
            body: #"{"event": "order-cancelled"}"#, matches: false),
        Example(
            name: "anything-but prefix, not excluded", policy: #"{"event": [{"anything-but": {"prefix": "order-"}}]}"#,
            body: order, matches: true),
        Example(name: "anything-but suffix", policy: #"{"event": [{"anything-but": {"suffix": "_placed"}}]}"#, body: order, matches: false),
        Example(
            name: "anything-but equals-ignore-case", policy: #"{"event": [{"anything-but": {"equals-ignore-case": "ORDER_PLACED"}}]}"#,
            body: order, matches: false),
        Example(name: "anything-but boolean", policy: #"{"encrypted": [{"anything-but": true}]}"#, body: order, matches: true),

        // Prefix, suffix, equals-ignore-case.
        Example(name: "prefix", policy: #"{"customer_interests": [{"prefix": "hock"}]}"#, body: order, matches: true),
        Example(name: "prefix, no match", policy: #"{"store": [{"prefix": "corp"}]}"#, body: order, matches: false),
        Example(name: "prefix never matches a number", policy: #"{"price_usd": [{"prefix": "210"}]}"#, body: order, matches: false),
        Example(
            name: "suffix", policy: #"{"customer_interests": [{"suffix": "ball"}]}"#, body: #"{"customer_interests": ["baseball"]}"#,
            matches: true),
        Example(name: "suffix, no match", policy: #"{"customer_interests": [{"suffix": "ball"}]}"#, body: order, matches: false),
        Example(name: "equals-ignore-case", policy: #"{"store": [{"equals-ignore-case": "EXAMPLE_CORP"}]}"#, body: order, matches: true),
        Example(
            name: "equals-ignore-case, non-ASCII", policy: #"{"city": [{"equals-ignore-case": "ZÜRICH"}]}"#,
            body: #"{"city": "zürich"}"#, matches: true),

        // AND / OR logic.
        Example(
            name: "AND across keys", policy: #"{"customer_interests": ["rugby"], "price_usd": [{"numeric": [">", 100]}]}"#,
            body: order, matches: true),
        Example(
            name: "AND across keys, one fails", policy: #"{"customer_interests": ["rugby"], "price_usd": [{"numeric": [">", 300]}]}"#,
            body: order, matches: false),
        Example(
            name: "OR of conditions of different kinds", policy: #"{"store": [{"prefix": "zzz"}, {"numeric": [">", 1]}, "example_corp"]}"#,
            body: order, matches: true),
        Example(
            name: "$or, second branch", policy: metricOrNamespace,
            body: #"{"source": "aws.cloudwatch", "namespace": "AWS/EC2"}"#, matches: true),
        Example(
            name: "$or, no branch", policy: metricOrNamespace,
            body: #"{"source": "aws.cloudwatch", "metricName": "ReadLatency"}"#, matches: false),
        Example(
            name: "$or AND-ed with its sibling", policy: metricOrNamespace,
            body: #"{"source": "aws.other", "namespace": "AWS/EC2"}"#, matches: false),
        Example(
            name: "nested $or", policy: cloudwatch,
            body: #"{"source": "aws.cloudwatch", "metricType": "MetricType", "spaceId": 2000}"#, matches: true),
        Example(
            name: "nested $or, inner branches fail", policy: cloudwatch,
            body: #"{"source": "aws.cloudwatch", "metricType": "MetricType", "spaceId": 4000}"#, matches: false),

        // Nested keys (message-body filtering).
        Example(
            name: "nested key", policy: #"{"store": {"price": [{"numeric": [">", 10]}]}}"#, body: #"{"store": {"price": 12}}"#,
            matches: true),
        Example(
            name: "nested key, value fails", policy: #"{"store": {"price": [{"numeric": [">", 10]}]}}"#,
            body: #"{"store": {"price": 5}}"#, matches: false),
        Example(
            name: "nested key, parent is a string", policy: #"{"store": {"price": [{"numeric": [">", 10]}]}}"#,
            body: #"{"store": "x"}"#, matches: false),
        Example(
            name: "nested key, array of objects", policy: #"{"store": {"price": [{"numeric": [">", 10]}]}}"#,
            body: #"{"store": [{"price": 5}, {"price": 12}]}"#, matches: true),
        Example(
            name: "nested keys must match within one element", policy: #"{"store": {"name": ["a"], "price": [{"numeric": [">", 10]}]}}"#,
            body: #"{"store": [{"name": "a", "price": 5}, {"name": "b", "price": 12}]}"#, matches: false),
        Example(
            name: "nested keys within one element", policy: #"{"store": {"name": ["a"], "price": [{"numeric": [">", 10]}]}}"#,
            body: #"{"store": [{"name": "b", "price": 5}, {"name": "a", "price": 12}]}"#, matches: true),
        Example(name: "three levels", policy: #"{"a": {"b": {"c": ["x"]}}}"#, body: #"{"a": {"b": {"c": ["y", "x"]}}}"#, matches: true),
        Example(
            name: "nested exists false, parent absent", policy: #"{"store": {"price": [{"exists": false}]}}"#, body: "{}",
            matches: true),
        Example(
            name: "nested anything-but, parent absent", policy: #"{"store": {"price": [{"anything-but": 1}]}}"#, body: "{}",
            matches: false),
        Example(
            name: "$or inside a nested object", policy: #"{"store": {"$or": [{"name": ["a"]}, {"price": [1]}]}}"#,
            body: #"{"store": {"price": 1}}"#, matches: true),
        Example(
            name: "body with customer_interests nested", policy: #"{"customer": {"interests": [{"prefix": "rug"}]}}"#,
            body: #"{"customer": {"interests": ["soccer", "rugby"]}}"#, matches: true),

        // Bodies that are not objects.
        Example(name: "string body: every key absent", policy: #"{"store": [{"exists": false}]}"#, body: #""hello""#, matches: true),
        Example(name: "string body: no value matches", policy: #"{"store": ["hello"]}"#, body: #""hello""#, matches: false),
        Example(name: "array body: keys absent", policy: #"{"store": ["x"]}"#, body: #"[{"store": "x"}]"#, matches: false),
    ]

    @Test("SNS example", arguments: examples)
    func example(_ example: Example) throws {
        let filter = try filter(example.policy)
        #expect(filter.matches(try json(example.body)) == example.matches)
    }

    @Test("the table holds at least 40 cases")
    func tableSize() {
        #expect(Self.examples.count >= 40)
    }

    @Test("SNS's documented combination counts")
    func combinations() throws {
        // 3 × 1 × 2 = 6
        let and = try filter(#"{"key_a": ["value_one", "value_two", "value_three"], "key_b": ["value_one"], "key_c": ["value_one", "value_two"]}"#)
        #expect(and.combinations == 6)
        // (1 × 2) + (1 × 2) = 4
        let or = try filter(
            """
            {"source": ["aws.cloudwatch"], "$or": [{"metricName": ["CPUUtilization", "ReadLatency"]}, {"namespace": ["AWS/EC2", "AWS/ES"]}]}
            """)
        #expect(or.combinations == 4)
        // 1 × (2 + 1 × (2 + 3)) = 7
        #expect(try filter(Self.cloudwatch).combinations == 7)
    }

    @Test("the compiled filter keeps its policy, and equal policies compile equal")
    func equality() throws {
        let first = try filter(#"{"a": ["x"], "b": [1]}"#)
        let second = try filter(#"{"b": [1], "a": ["x"]}"#)
        #expect(first == second)
        #expect(first.policy == (try json(#"{"a": ["x"], "b": [1]}"#)))
        #expect(first != (try filter(#"{"a": ["y"], "b": [1]}"#)))
    }
}
