import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import SkiffAPI
import SkiffTestSupport
import Testing

/// The topic routes over HTTP (docs/topics.md): subscriptions, publishing, answers and errors,
/// and the access rules for every name a request makes the server touch.
@Suite("Topic API", .timeLimit(.minutes(2)))
struct TopicAPITests {
    static var kinds: [BackendKind] { BackendKind.available }

    @Test(arguments: kinds) func subscribePublishAndReceiveThroughTheQueues(kind: BackendKind) async throws {
        let app = try makeApplication(kind)
        try await app.test(.router) { client in
            let topic = TestEnvironment.uniqueName("t")
            let (orders, all) = (TestEnvironment.uniqueName("orders"), TestEnvironment.uniqueName("all"))
            let filter = #"{"type":["order"],"total":[{"numeric":[">",100]}]}"#
            let created = try await client.execute(
                uri: "/api/topics/\(topic)/subscriptions/big-orders",
                method: .put,
                body: ByteBuffer(string: #"{"queue":"\#(orders)","filter":\#(filter)}"#)
            )
            #expect(created.status == .created)
            #expect(created.text.contains(#""queue":"\#(orders)""#) && created.text.contains(#""filter":{"total":[{"numeric":[">",100]}],"type":["order"]}"#))
            let replaced = try await client.execute(
                uri: "/api/topics/\(topic)/subscriptions/big-orders",
                method: .put,
                body: ByteBuffer(string: #"{"queue":"\#(orders)","filter":\#(filter)}"#)
            )
            #expect(replaced.status == .ok)
            let plain = try await client.execute(
                uri: "/api/topics/\(topic)/subscriptions/everything",
                method: .put,
                body: ByteBuffer(string: #"{"queue":"\#(all)"}"#)
            )
            #expect(plain.status == .created && plain.text.contains(#""filter":null"#))

            let big = #"{"type":"order","total":250}"#
            let published = try await client.execute(uri: "/api/topics/\(topic)?priority=3", method: .post, body: ByteBuffer(string: big))
            #expect(published.status == .created)
            #expect(published.text.contains(#""topic":"\#(topic)""#) && published.text.contains(#""deliveredTo":2"#))
            let batch = try await client.execute(
                uri: "/api/topics/\(topic)/batch",
                method: .post,
                body: ByteBuffer(string: #"[{"type":"order","total":5}, "hello"]"#)
            )
            #expect(batch.status == .created)
            #expect(batch.text.components(separatedBy: #""deliveredTo":1"#).count == 3)

            let first = try await client.execute(uri: "/api/\(orders)?timeout=0", method: .get)
            #expect(first.status == .ok && first.text == big)
            #expect(first.headers[HTTPField.Name("Skiff-Priority")!] == "3")
            #expect(try await client.execute(uri: "/api/\(orders)?timeout=0", method: .get).status == .noContent)
            for _ in 0..<3 { #expect(try await client.execute(uri: "/api/\(all)?timeout=0", method: .get).status == .ok) }

            let one = try await client.execute(uri: "/api/topics/\(topic)/subscriptions/big-orders", method: .get)
            #expect(one.status == .ok)
            #expect(one.text.contains(#""counters":{"matched":1,"filteredOut":2,"delivered":1,"dropped":0}"#))
            let list = try await client.execute(uri: "/api/topics/\(topic)/subscriptions", method: .get)
            #expect(list.status == .ok && list.text.contains(#""published":3"#) && list.text.contains(#""name":"everything""#))
            let topics = try await client.execute(uri: "/api/topics", method: .get)
            #expect(topics.status == .ok && topics.text.contains(#""\#(topic)""#))

            #expect(try await client.execute(uri: "/api/topics/\(topic)/subscriptions/big-orders", method: .delete).status == .noContent)
            #expect(try await client.execute(uri: "/api/topics/\(topic)/subscriptions/big-orders", method: .delete).status == .notFound)
            #expect(try await client.execute(uri: "/api/topics/\(topic)/subscriptions/big-orders", method: .get).status == .notFound)
            #expect(try await client.execute(uri: "/api/topics/\(topic)", method: .delete).status == .noContent)
            #expect(try await client.execute(uri: "/api/topics/\(topic)", method: .delete).status == .notFound)
        }
    }

    @Test func aRepeatedIdempotencyKeyAnswers200WithTheFirstIDs() async throws {
        let app = try makeApplication(.memory)
        try await app.test(.router) { client in
            let queue = TestEnvironment.uniqueName("q")
            _ = try await client.execute(uri: "/api/topics/t/subscriptions/s", method: .put, body: ByteBuffer(string: #"{"queue":"\#(queue)"}"#))
            let headers: HTTPFields = [HTTPField.Name("Idempotency-Key")!: "k1"]
            let first = try await client.execute(uri: "/api/topics/t", method: .post, headers: headers, body: ByteBuffer(string: "1"))
            let again = try await client.execute(uri: "/api/topics/t", method: .post, headers: headers, body: ByteBuffer(string: "1"))
            #expect(first.status == .created && again.status == .ok)
            #expect(again.headers[HTTPField.Name("Skiff-Duplicate")!] == "true")
            #expect(String(first.text.prefix(40)) == String(again.text.prefix(40)))
            #expect(try await client.execute(uri: "/api/\(queue)?timeout=0", method: .get).status == .ok)
            #expect(try await client.execute(uri: "/api/\(queue)?timeout=0", method: .get).status == .noContent)
        }
    }

    @Test func badRequestsAreClearAndStoreNothing() async throws {
        let app = try makeApplication(.memory) { $0.api.maximumMessageBytes = 1024 }
        try await app.test(.router) { client in
            func put(_ body: String) async throws -> TestResponse {
                try await client.execute(uri: "/api/topics/t/subscriptions/s", method: .put, body: ByteBuffer(string: body))
            }
            let badFilter = try await put(#"{"queue":"q","filter":{"price":[{"numeric":["<",1,">",5]}]}}"#)
            #expect(badFilter.status == .badRequest && badFilter.text.contains("$.price"))
            #expect(try await put(#"{"queue":"q","color":"red"}"#).status == .badRequest)
            #expect(try await put(#"{"filter":{}}"#).status == .badRequest)
            #expect(try await put(#"{"queue":"not a name"}"#).status == .badRequest)
            #expect(try await put(#"{"queue":"topics"}"#).status == .badRequest)
            #expect(try await put("[1]").status == .badRequest)
            let push = try await put(#"{"push":{"url":"https://93.184.216.34/hook"}}"#)
            #expect(push.status == .badRequest && push.text.contains("push.secret"))
            #expect(try await client.execute(uri: "/api/topics/t/subscriptions", method: .get).text.contains(#""subscriptions":[]"#))

            #expect(try await client.execute(uri: "/api/topics/t", method: .post, body: ByteBuffer(string: "{nope")).status == .badRequest)
            let large = try await client.execute(
                uri: "/api/topics/t", method: .post, body: ByteBuffer(string: "\"" + String(repeating: "x", count: 2000) + "\""))
            #expect(large.status == .contentTooLarge)
            #expect(try await client.execute(uri: "/api/topics/t?priority=12", method: .post, body: ByteBuffer(string: "1")).status == .badRequest)
            #expect(try await client.execute(uri: "/api/topics/bad%20name", method: .post, body: ByteBuffer(string: "1")).status == .badRequest)
            #expect(try await client.execute(uri: "/api/topics/t", method: .get).status == .methodNotAllowed)
            // `topics` is the topic API, never a queue.
            #expect(try await client.execute(uri: "/api/topics", method: .post, body: ByteBuffer(string: "1")).status != .created)
        }
    }

    @Test func theFilterTestAnswersWhetherAPolicyMatches() async throws {
        let app = try makeApplication(.memory)
        try await app.test(.router) { client in
            func test(_ filter: String, _ message: String) async throws -> TestResponse {
                try await client.execute(
                    uri: "/api/topics/t/filter-test",
                    method: .post,
                    body: ByteBuffer(string: #"{"filter":\#(filter),"message":\#(message)}"#)
                )
            }
            #expect(try await test(#"{"store":{"city":[{"prefix":"Lis"}]}}"#, #"{"store":{"city":"Lisbon"}}"#).text == #"{"matches":true}"#)
            #expect(try await test(#"{"a":[{"anything-but":["x"]}]}"#, #"{"b":1}"#).text == #"{"matches":false}"#)
            let wrong = try await test(#"{"a":[{"cidr":"10.0.0.0/8"}]}"#, "{}")
            #expect(wrong.status == .badRequest && wrong.text.contains("$.a[0]"))
        }
    }

    @Test func everyNameARequestTouchesPassesTheKeysAccessCheck() async throws {
        let app = try makeApplication(.memory) { $0.apiKeys = TestKeys.all }
        try await app.test(.router) { client in
            func put(_ topic: String, queue: String, key: String) async throws -> HTTPResponse.Status {
                try await client.execute(
                    uri: "/api/topics/\(topic)/subscriptions/s",
                    method: .put,
                    headers: TestKeys.bearer(key),
                    body: ByteBuffer(string: #"{"queue":"\#(queue)"}"#)
                ).status
            }
            // An admin key confined to orders-: its topics and the queues they write to.
            #expect(try await put("orders-events", queue: "orders-audit", key: TestKeys.ordersAdmin) == .created)
            #expect(try await put("orders-events2", queue: "billing-audit", key: TestKeys.ordersAdmin) == .forbidden)
            #expect(try await put("billing-events", queue: "orders-audit", key: TestKeys.ordersAdmin) == .forbidden)
            #expect(try await put("orders-events", queue: "orders-audit", key: TestKeys.send) == .forbidden)
            // Publishing needs send on the topic, within the prefix.
            func publish(_ topic: String, key: String) async throws -> HTTPResponse.Status {
                try await client.execute(uri: "/api/topics/\(topic)", method: .post, headers: TestKeys.bearer(key), body: ByteBuffer(string: "1")).status
            }
            #expect(try await publish("orders-events", key: TestKeys.orders) == .created)
            #expect(try await publish("billing-events", key: TestKeys.orders) == .forbidden)
            #expect(try await publish("orders-events", key: TestKeys.receive) == .forbidden)
            #expect(try await client.execute(uri: "/api/topics/orders-events", method: .post, body: ByteBuffer(string: "1")).status == .unauthorized)
            // A subscription an unconfined admin points at another tenant's queue, on a topic the
            // confined key may use: it can neither read, replace, delete nor list it.
            #expect(try await put("orders-mixed", queue: "billing-audit", key: TestKeys.admin) == .created)
            let path = "/api/topics/orders-mixed/subscriptions/s"
            let confined = TestKeys.bearer(TestKeys.ordersAdmin)
            #expect(try await client.execute(uri: path, method: .get, headers: confined).status == .forbidden)
            #expect(try await client.execute(uri: path, method: .delete, headers: confined).status == .forbidden)
            #expect(try await put("orders-mixed", queue: "orders-audit", key: TestKeys.ordersAdmin) == .forbidden)
            let mixed = try await client.execute(uri: "/api/topics/orders-mixed/subscriptions", method: .get, headers: confined).text
            #expect(!mixed.contains("billing-audit") && mixed.contains(#""subscriptions":[]"#))
            #expect(try await client.execute(uri: path, method: .get, headers: TestKeys.bearer(TestKeys.admin)).status == .ok)
            // The topic list shows a confined key its own topics only.
            _ = try await put("billing-events", queue: "billing-audit", key: TestKeys.admin)
            let listed = try await client.execute(uri: "/api/topics", method: .get, headers: TestKeys.bearer(TestKeys.ordersAdmin)).text
            #expect(listed.contains("orders-events") && !listed.contains("billing-events"))
        }
    }
}
