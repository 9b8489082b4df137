import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import SkiffAPI
import SkiffTestSupport
import Testing

/// The HTTP contract, in-process (`.router`) for plain cases.
@Suite("Queue API", .timeLimit(.minutes(2)))
struct QueueAPITests {
    @Test(arguments: BackendKind.available)
    func postThenGetReturnsTheBodyVerbatim(kind: BackendKind) async throws {
        let app = try makeApplication(kind)
        try await app.test(.live) { client in
            let queue = TestEnvironment.uniqueName("api")
            let body = #"{ "order": 17, "items": ["a", "é"], "ok": true }"#
            let created = try await client.execute(uri: "/api/\(queue)", method: .post, body: ByteBuffer(string: body))
            #expect(created.status == .created)
            #expect(created.headers[.contentType]?.hasPrefix("application/json") == true)
            #expect(created.text.contains(#""queue":"\#(queue)""#))
            let id = try #require(created.text.split(separator: "\"").dropFirst(3).first)
            let received = try await client.execute(uri: "/api/\(queue)?timeout=0", method: .get)
            #expect(received.status == .ok)
            #expect(received.text == body)
            #expect(received.headers[.contentType] == "application/json")
            #expect(received.headers[HTTPField.Name("Skiff-Message-Id")!] == String(id))
            #expect(received.headers[HTTPField.Name("Skiff-Receive-Count")!] == "1")
            #expect(received.headers[HTTPField.Name("Skiff-Enqueued-At")!]?.hasSuffix("Z") == true)
            let empty = try await client.execute(uri: "/api/\(queue)?timeout=0", method: .get)
            #expect(empty.status == .noContent)
            #expect(empty.body.readableBytes == 0)
        }
    }

    /// `GET /api/{queue}/messages?peek=n`: the next messages with their facts and bodies as
    /// posted, changing nothing (the GET after it is the message's first receive); a missing or
    /// out-of-range `peek` is a 400.
    @Test(arguments: BackendKind.available)
    func aPeekShowsTheNextMessagesWithoutReceivingThem(kind: BackendKind) async throws {
        let app = try makeApplication(kind)
        try await app.test(.live) { client in
            let queue = TestEnvironment.uniqueName("peek")
            let bodies = [#"{"n":1}"#, #"[1, "two"]"#, #""three""#]
            for body in bodies { _ = try await client.execute(uri: "/api/\(queue)", method: .post, body: ByteBuffer(string: body)) }
            _ = try await client.execute(uri: "/api/\(queue)?priority=7", method: .post, body: ByteBuffer(string: "7"))
            for _ in 0..<2 {
                let peeked = try await client.execute(uri: "/api/\(queue)/messages?peek=3", method: .get)
                #expect(peeked.status == .ok)
                let object = try #require(try JSONSerialization.jsonObject(with: Data(peeked.text.utf8)) as? [String: Any])
                #expect(object["queue"] as? String == queue)
                let messages = try #require(object["messages"] as? [[String: Any]])
                #expect(messages.map { $0["priority"] as? Int } == [7, 0, 0])
                #expect(messages.map { $0["receiveCount"] as? Int } == [0, 0, 0])
                #expect(messages.allSatisfy { ($0["id"] as? String)?.count == 26 && ($0["enqueuedAt"] as? String)?.hasSuffix("Z") == true })
                // The bodies are as posted, verbatim.
                #expect(peeked.text.contains(#""body":7}"#) && peeked.text.contains(#""body":{"n":1}}"#) && peeked.text.contains(#""body":[1, "two"]}"#))
            }
            let received = try await client.execute(uri: "/api/\(queue)?timeout=0", method: .get)
            #expect(received.text == "7")
            #expect(received.headers[HTTPField.Name("Skiff-Receive-Count")!] == "1")
            for bad in ["", "?peek=0", "?peek=101", "?peek=x"] {
                let response = try await client.execute(uri: "/api/\(queue)/messages\(bad)", method: .get)
                #expect(response.status == .badRequest, "\(bad)")
                #expect(response.text.contains("peek"), "\(bad): \(response.text)")
            }
            let empty = try await client.execute(uri: "/api/\(TestEnvironment.uniqueName("none"))/messages?peek=5", method: .get)
            #expect(empty.text.hasSuffix(#""messages":[]}"#))
            let wrongMethod = try await client.execute(uri: "/api/\(queue)/messages", method: .post, body: ByteBuffer(string: "1"))
            #expect(wrongMethod.status == .methodNotAllowed)
        }
    }

    @Test(arguments: ["{}", "[]", "\"text\"", "42", "-1.5e3", "true", "false", "null"])
    func acceptsEveryKindOfJSONValue(body: String) async throws {
        let app = try makeApplication(.memory)
        try await app.test(.router) { client in
            let response = try await client.execute(uri: "/api/kinds", method: .post, body: ByteBuffer(string: body))
            #expect(response.status == .created)
            let received = try await client.execute(uri: "/api/kinds?timeout=0", method: .get)
            #expect(received.text == body)
        }
    }

    @Test(arguments: ["", "   ", "{", "not json", "{\"a\":1}{}", "[1,]"])
    func rejectsInvalidBodiesAndStoresNothing(body: String) async throws {
        let app = try makeApplication(.memory)
        try await app.test(.router) { client in
            let response = try await client.execute(uri: "/api/invalid", method: .post, body: ByteBuffer(string: body))
            #expect(response.status == .badRequest)
            #expect(response.text.hasPrefix(#"{"error":""#))
            let received = try await client.execute(uri: "/api/invalid?timeout=0", method: .get)
            #expect(received.status == .noContent)
        }
    }

    @Test func rejectsBodiesOverTheLimitWith413() async throws {
        let app = try makeApplication(.memory) { $0.api.maximumMessageBytes = 100 }
        try await app.test(.live) { client in
            let fits = "\"" + String(repeating: "a", count: 98) + "\""
            #expect(try await client.execute(uri: "/api/big", method: .post, body: ByteBuffer(string: fits)).status == .created)
            let tooBig = "\"" + String(repeating: "a", count: 99) + "\""
            let response = try await client.execute(uri: "/api/big", method: .post, body: ByteBuffer(string: tooBig))
            #expect(response.status == .contentTooLarge)
            #expect(response.text.contains("MAX_MESSAGE_BYTES"))
        }
    }

    @Test(arguments: ["bad.name", "with%20space", "%7Bbrace%7D", String(repeating: "n", count: 129), "sl%2Fash", "%C3%A9"])
    func rejectsInvalidQueueNames(name: String) async throws {
        let app = try makeApplication(.memory)
        try await app.test(.router) { client in
            let post = try await client.execute(uri: "/api/\(name)", method: .post, body: ByteBuffer(string: "1"))
            #expect(post.status == .badRequest)
            #expect(post.text.contains("queue name"))
            let get = try await client.execute(uri: "/api/\(name)?timeout=0", method: .get)
            #expect(get.status == .badRequest)
        }
    }

    @Test func acceptsTheLongestValidQueueName() async throws {
        let app = try makeApplication(.memory)
        try await app.test(.router) { client in
            let name = String(repeating: "Az09_-", count: 21) + "xy"
            #expect(name.count == 128)
            let response = try await client.execute(uri: "/api/\(name)", method: .post, body: ByteBuffer(string: "1"))
            #expect(response.status == .created)
        }
    }

    @Test(arguments: ["-1", "60001", "abc", "1.5", "1e3", "99999999999999999999999", "", "+5", " 5", "0x10"])
    func rejectsInvalidTimeouts(timeout: String) async throws {
        let app = try makeApplication(.memory)
        try await app.test(.router) { client in
            let response = try await client.execute(uri: "/api/t?timeout=\(timeout)", method: .get)
            #expect(response.status == .badRequest)
            #expect(response.text.contains("timeout"))
        }
    }

    @Test func unknownPathsAndMethodsGetJSONErrors() async throws {
        let app = try makeApplication(.memory)
        try await app.test(.router) { client in
            for uri in ["/", "/api", "/api/", "/api/q/extra/path", "/nothing"] {
                let response = try await client.execute(uri: uri, method: .get)
                #expect(response.status == .notFound, "\(uri)")
                #expect(response.text.hasPrefix(#"{"error":""#))
            }
            for method: HTTPRequest.Method in [.put, .patch, .trace] {
                let response = try await client.execute(uri: "/api/q", method: method)
                #expect(response.status == .methodNotAllowed)
                #expect(response.headers[.allow] == "GET, POST, DELETE")
                #expect(response.text.hasPrefix(#"{"error":""#))
            }
        }
    }

    @Test func requestIDsAreHonouredOrGenerated() async throws {
        let app = try makeApplication(.memory)
        try await app.test(.router) { client in
            let given = try await client.execute(uri: "/health", method: .get, headers: [HTTPField.Name("X-Request-Id")!: "abc-123"])
            #expect(given.headers[HTTPField.Name("X-Request-Id")!] == "abc-123")
            let generated = try await client.execute(uri: "/health", method: .get)
            #expect(generated.headers[HTTPField.Name("X-Request-Id")!]?.isEmpty == false)
        }
    }

    @Test(arguments: BackendKind.available)
    func healthAndReadiness(kind: BackendKind) async throws {
        let app = try makeApplication(kind)
        try await app.test(.live) { client in
            var health = try await client.execute(uri: "/health", method: .get)
            for _ in 0..<50 where health.status != .ok {
                try await Task.sleep(for: .milliseconds(50))
                health = try await client.execute(uri: "/health", method: .get)
            }
            #expect(health.status == .ok)
            #expect(health.text.contains(#""status":"healthy""#))
            #expect(health.text.contains(#""backend":"\#(kind.isRedis ? "redis" : "memory")""#))
            #expect(try await client.execute(uri: "/ready", method: .get).status == .ok)
        }
    }
}
