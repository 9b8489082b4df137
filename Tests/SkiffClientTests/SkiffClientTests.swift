import Foundation
import Hummingbird
import NIOCore
import NIOPosix
import SkiffClient
import SkiffTestSupport
import Synchronization
import Testing

/// The client against a real replica (memory and Redis) and against stand-in servers for the
/// retry rules: a retried send is stored once, a plain receive is never retried once sent.
@Suite("Skiff client", .timeLimit(.minutes(2)))
struct SkiffClientTests {
    static var kinds: [BackendKind] { BackendKind.available.filter { $0 != .redisCluster } }

    struct Boom: Error {}

    struct Order: Codable, Equatable {
        let id: Int
        let note: String
    }

    @Test(arguments: kinds) func sendReceiveAckAndTheirAnswers(kind: BackendKind) async throws {
        try await withServer(kind) { client in
            let queue = TestEnvironment.uniqueName("orders")
            let sent = try await client.send(Order(id: 17, note: "a/b \"quoted\""), to: queue, options: SendOptions(priority: 3))
            #expect(!sent.isDuplicate)
            let plain = try #require(try await client.receive(from: queue))
            #expect(plain.id == sent.id && plain.receipt == nil && plain.priority == 3 && plain.receiveCount == 1)
            #expect(try plain.decode(Order.self) == Order(id: 17, note: "a/b \"quoted\""))
            #expect(try await client.receive(from: queue) == nil)

            try await client.send(json: #"{"n":1}"#, to: queue)
            let held = try #require(try await client.receive(from: queue, wait: .seconds(1), visibility: .seconds(30)))
            let receipt = try #require(held.receipt)
            #expect(held.text == #"{"n":1}"#)
            #expect(try await client.extendVisibility(receipt, in: queue, by: .seconds(60)))
            #expect(try await client.ack(receipt, in: queue))
            #expect(try await client.ack(receipt, in: queue) == false, "a second ack of one receipt is stale")
            #expect(try await client.nack(receipt, in: queue) == false)

            let repeated = try await client.send(json: "1", to: queue, options: SendOptions(idempotencyKey: "k-1"))
            let again = try await client.send(json: "1", to: queue, options: SendOptions(idempotencyKey: "k-1"))
            #expect(again.isDuplicate && again.id == repeated.id)
            #expect(try await client.stats(of: queue).ready == 1)
            #expect(try await client.queues().contains { $0.queue == queue && $0.ready == 1 })
            #expect(try await client.purge(queue) == 1)
        }
    }

    @Test(arguments: kinds) func batchesNacksDeadLettersAndRedrive(kind: BackendKind) async throws {
        try await withServer(kind) { client in
            let queue = TestEnvironment.uniqueName("jobs")
            try await client.updateSettings(ByteBuffer(string: #"{"maxReceiveCount":1}"#), of: queue)
            #expect(String(buffer: try await client.settings(of: queue)).contains(#""maxReceiveCount":1"#))
            // A body with a newline inside a string goes as a JSON array, the rest as NDJSON. Bodies
            // come back byte for byte (key order, 2.50, 1e2: nothing re-serialised).
            let bodies = [#"{"zeta":1,"alpha":2.50,"e":1e2}"#, #""line\nbreak""#, "[1,2]"].map { ByteBuffer(string: $0) }
            let ids = try await client.sendBatch(bodies, to: queue)
            #expect(ids.count == 3)
            let received = try await client.receiveBatch(from: queue, max: 10, visibility: .seconds(30))
            #expect(received.map(\.id) == ids)
            #expect(received.map(\.text) == [#"{"zeta":1,"alpha":2.50,"e":1e2}"#, #""line\nbreak""#, "[1,2]"])
            let receipts = received.compactMap(\.receipt)
            let acked = try await client.ack(Array(receipts.prefix(2)), in: queue)
            #expect(acked.acked == 2 && acked.notFound.isEmpty)
            #expect(try await client.nack(receipts[2], in: queue, reason: "boom"))
            #expect(try await client.stats(of: queue).deadLetter == 1)
            #expect(try await client.redrive(into: queue) == 1)
            #expect(try await client.receive(from: queue)?.text == "[1,2]")
        }
    }

    @Test(arguments: kinds) func errorsCarryTheServersStatusAndMessage(kind: BackendKind) async throws {
        try await withServer(kind) { client in
            let queue = TestEnvironment.uniqueName("bad")
            let error = try await #require(throws: SkiffClientError.self) { try await client.send(json: "{nope", to: queue) }
            #expect(error.kind == .server && error.status == 400 && error.message.contains("JSON"))
            #expect(!error.isTransient)
            let priority = try await #require(throws: SkiffClientError.self) {
                try await client.send(json: "1", to: queue, options: SendOptions(priority: 12))
            }
            #expect(priority.status == 400 && priority.message.contains("priority"))
        }
    }

    /// A stream hands each message to the handler in order with its exact bytes, acks what the
    /// handler returned, nacks what it threw (the message comes back), and ends when cancelled.
    @Test(arguments: kinds) func aStreamAcksWhatTheHandlerTookAndNacksWhatItThrew(kind: BackendKind) async throws {
        try await withServer(kind) { client in
            let queue = TestEnvironment.uniqueName("stream")
            try await client.updateSettings(ByteBuffer(string: #"{"retryBackoff":{"baseMs":0,"capMs":0}}"#), of: queue)
            let bodies = [#"{"b":2.50,"a":1}"#, #""fails once""#, "[1e2]"]
            _ = try await client.sendBatch(bodies.map { ByteBuffer(string: $0) }, to: queue)
            let seen = Mutex<[(String, Int)]>([])
            let consumer = Task {
                // A window of one: the nacked message is back at the head before anything else is sent.
                try await client.stream(from: queue, credit: 1) { message in
                    seen.withLock { $0.append((message.text, message.receiveCount)) }
                    if message.text == #""fails once""#, message.receiveCount == 1 { throw Boom() }
                }
            }
            let stats = try await eventually(until: { $0.totals["acked"] == 3 }) { try await client.stats(of: queue) }
            consumer.cancel()
            try await consumer.value
            #expect(stats.totals["acked"] == 3 && stats.ready == 0 && stats.inFlight == 0)
            let handled = seen.withLock { $0 }
            // In order; a nacked message goes back to the head of its queue, so it comes next.
            #expect(handled.map(\.0) == [bodies[0], bodies[1], bodies[1], bodies[2]])
            #expect(handled.contains { $0.0 == #""fails once""# && $0.1 == 2 }, "the nacked message came back: \(handled)")
        }
    }

    @Test func anUnreachableServerIsNamedWithTheSettingToChange() async throws {
        // A port nothing listens on: bound, then closed.
        let listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).get()
        let port = try #require(listener.localAddress?.port)
        try await listener.close()
        let client = SkiffClient(
            configuration: SkiffClientConfiguration(
                url: "http://127.0.0.1:\(port)", retry: RetryPolicy(maxAttempts: 2, baseDelay: .milliseconds(1), maxDelay: .milliseconds(2))))
        defer { Task { try await client.shutdown() } }
        let error = try await #require(throws: SkiffClientError.self) { try await client.receive(from: "q") }
        #expect(error.kind == .connection && error.message.contains("127.0.0.1:\(port)") && error.message.contains("SKIFF_URL"))
        #expect(!error.mayHaveRun)
    }

    /// The answer to a send is lost (the client times out while the server stores it): the retry
    /// carries the same idempotency key, so the message is stored once.
    @Test(arguments: kinds) func aRetriedSendIsStoredOnce(kind: BackendKind) async throws {
        try await withServer(kind) { direct in
            let queue = TestEnvironment.uniqueName("once")
            let keys = Mutex<[String]>([])
            try await StubServer.with(respond: { request, attempt in
                // Forwards the send to the replica; the first answer is held past the client's timeout.
                keys.withLock { $0.append(request.headers[.init("Idempotency-Key")!] ?? "") }
                let body = try await request.body.collect(upTo: 1 << 20)
                let key = request.headers[.init("Idempotency-Key")!]
                let sent = try await direct.send(body, to: queue, options: SendOptions(idempotencyKey: key))
                if attempt == 1 { try await Task.sleep(for: .seconds(2)) }
                var headers = HTTPFields()
                if sent.isDuplicate { headers[.init("Skiff-Duplicate")!] = "true" }
                return Response(
                    status: sent.isDuplicate ? .ok : .created, headers: headers, body: .init(byteBuffer: ByteBuffer(string: #"{"id":"\#(sent.id)"}"#)))
            }) { stub, url in
                let client = SkiffClient(
                    configuration: SkiffClientConfiguration(
                        url: url, requestTimeout: .milliseconds(500),
                        retry: RetryPolicy(maxAttempts: 3, baseDelay: .milliseconds(10), maxDelay: .milliseconds(20))))
                let sent = try await client.send(json: #"{"once":true}"#, to: queue)
                try await client.shutdown()
                // The retry hit the first send's key: one message, and not reported as a duplicate
                // (the key was the client's own).
                #expect(!sent.isDuplicate)
                #expect(stub.count("POST", "/api/\(queue)") == 2)
                let sentKeys = keys.withLock { $0 }
                #expect(sentKeys.count == 2 && sentKeys[0] == sentKeys[1] && !sentKeys[0].isEmpty, "one generated key for both attempts")
                #expect(try await direct.stats(of: queue).ready == 1)
            }
        }
    }

    /// A plain receive whose answer does not come is not sent again (it may have taken a
    /// message); an acknowledged one is, and so is any receive the server answered 503.
    @Test func aPlainReceiveIsNeverRetriedOnceSent() async throws {
        try await StubServer.with(respond: { request, attempt in
            if request.uri.path.hasSuffix("/unavailable") {
                return Response(status: attempt == 1 ? .serviceUnavailable : .noContent, headers: [.retryAfter: "0"])
            }
            try await Task.sleep(for: .seconds(2))
            return Response(status: .noContent)
        }) { stub, url in
            let client = SkiffClient(
                configuration: SkiffClientConfiguration(
                    url: url, requestTimeout: .milliseconds(300),
                    retry: RetryPolicy(maxAttempts: 3, baseDelay: .milliseconds(10), maxDelay: .milliseconds(20))))
            defer { Task { try await client.shutdown() } }
            let plain = try await #require(throws: SkiffClientError.self) { try await client.receive(from: "slow") }
            #expect(plain.kind == .timeout && plain.mayHaveRun)
            #expect(stub.count("GET", "/api/slow") == 1)
            _ = try? await client.receive(from: "slow-ack", visibility: .seconds(30))
            #expect(stub.count("GET", "/api/slow-ack") == 3)
            #expect(try await client.receive(from: "unavailable") == nil)
            #expect(stub.count("GET", "/api/unavailable") == 2)
        }
    }

    @Test func theBackoffGrowsIsCappedJitteredAndHonoursRetryAfter() {
        let policy = RetryPolicy(maxAttempts: 5, baseDelay: .milliseconds(100), maxDelay: .seconds(1))
        #expect(policy.delay(after: 1, retryAfter: nil, jitter: 1) == .milliseconds(100))
        #expect(policy.delay(after: 3, retryAfter: nil, jitter: 1) == .milliseconds(400))
        #expect(policy.delay(after: 10, retryAfter: nil, jitter: 1) == .seconds(1))
        #expect(policy.delay(after: 3, retryAfter: nil, jitter: 0.5) == .milliseconds(200))
        #expect(policy.delay(after: 1, retryAfter: .seconds(2), jitter: 1) == .seconds(2))
        let fromEnvironment = SkiffClientConfiguration.fromEnvironment(["SKIFF_URL": "https://q.example/", "SKIFF_API_KEY": "k"])
        #expect(fromEnvironment.url == "https://q.example" && fromEnvironment.apiKey == "k")
        #expect(SkiffClientConfiguration.fromEnvironment([:]).url == "http://localhost:8080")
    }
}
