import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import SkiffAPI
import SkiffQueue
import SkiffTestSupport
import Testing

/// A queue's own `maxMessageBytes` and `offloadThresholdBytes` (issue 23): kept by every backend,
/// checked against the replica's limits, and applied to every way of sending, the fast path
/// included.
@Suite("Per-queue size settings", .timeLimit(.minutes(3)))
struct QueueSizeSettingsTests {
    /// A JSON string of `size` bytes.
    private static func json(_ size: Int) -> ByteBuffer {
        ByteBuffer(string: "\"" + String(repeating: "x", count: size - 2) + "\"")
    }

    private static func configure(_ client: some TestClientProtocol, _ queue: String, _ settings: String) async throws -> TestResponse {
        try await client.execute(uri: "/api/\(queue)/config", method: .put, body: ByteBuffer(string: settings))
    }

    private static let payloadHeader = HTTPField.Name("Skiff-Payload")!

    @Test(arguments: BackendKind.available, [TestingSetup.live, .router])
    func aQueuesMaxMessageBytesBoundsEverySend(kind: BackendKind, setup: TestingSetup) async throws {
        let app = try makeApplication(kind)
        try await app.test(setup) { client in
            let (queue, other) = (TestEnvironment.uniqueName("small"), TestEnvironment.uniqueName("other"))
            let configured = try await Self.configure(client, queue, #"{"maxMessageBytes":100}"#)
            #expect(configured.status == .ok && configured.text.contains(#""maxMessageBytes":100,"offloadThresholdBytes":null"#))
            // Read back from the backend, not from what the PUT echoed.
            #expect(try await client.execute(uri: "/api/\(queue)/config", method: .get).text.contains(#""maxMessageBytes":100"#))
            #expect(try await client.execute(uri: "/api/\(queue)", method: .post, body: Self.json(100)).status == .created)
            let refused = try await client.execute(uri: "/api/\(queue)", method: .post, body: Self.json(101))
            #expect(refused.status == .contentTooLarge)
            #expect(refused.text.contains("queue \(queue)'s maxMessageBytes (100 bytes)"))
            let batch = ByteBuffer(string: "[1," + String(buffer: Self.json(101)) + "]")
            let refusedBatch = try await client.execute(uri: "/api/\(queue)/batch", method: .post, body: batch)
            #expect(refusedBatch.status == .contentTooLarge && refusedBatch.text.contains("message 1 is larger than queue \(queue)'s maxMessageBytes"))
            // Nothing of the refused sends was stored; other queues keep the service's limit.
            #expect(try await client.execute(uri: "/api/\(queue)?timeout=0", method: .get).body.readableBytes == 100)
            #expect(try await client.execute(uri: "/api/\(queue)?timeout=0", method: .get).status == .noContent)
            #expect(try await client.execute(uri: "/api/\(other)", method: .post, body: Self.json(1000)).status == .created)
            // Back to the service's limit.
            #expect(try await Self.configure(client, queue, #"{"maxMessageBytes":null}"#).text.contains(#""maxMessageBytes":null"#))
            #expect(try await client.execute(uri: "/api/\(queue)", method: .post, body: Self.json(101)).status == .created)
        }
    }

    @Test func aStreamPublishOverTheQueuesLimitIsAnErrorFrameAndTheStreamStaysOpen() async throws {
        try await withReplica(.memory) { port, _ in
            let queue = TestEnvironment.uniqueName("ws-small")
            let probe = Probe(port: port)
            #expect(try await probe.request(.put, "/api/\(queue)/config", body: #"{"maxMessageBytes":10}"#).status == .ok)
            let socket = try await RawWebSocket.connect(port: port, path: "/api/\(queue)/stream")
            try await socket.sendText(#"{"op":"publish","ref":1,"body":"0123456789"}"#)
            let error = try await frame(socket, op: "error")
            #expect(error.int("ref") == 1 && error.int("status") == 413)
            #expect(error.string("error")?.contains("maxMessageBytes (10 bytes)") == true)
            try await socket.sendText(#"{"op":"publish","ref":2,"body":"0123"}"#)
            #expect(try await frame(socket, op: "published").int("ref") == 2)
            // Publishes that arrive together are stored together: one too large is refused
            // alone, and the others are stored as if each had come on its own.
            try await socket.sendTexts([
                #"{"op":"publish","ref":3,"body":"01"}"#, #"{"op":"publish","ref":4,"body":"0123456789"}"#, #"{"op":"publish","ref":5,"body":"23"}"#,
            ])
            var answers: [Int: String] = [:]
            for _ in 0..<3 {
                let answer = try #require(try await socket.nextJSON())
                answers[try #require(answer.int("ref"))] = answer.string("op")
                if answer.string("op") == "error" { #expect(answer.string("error") == "message is larger than queue \(queue)'s maxMessageBytes (10 bytes)") }
            }
            #expect(answers == [3: "published", 4: "error", 5: "published"])
            #expect(try await probe.get(queue, timeout: 0).text == #""0123""#)
            #expect(try await probe.get(queue, timeout: 0).text == #""01""#)
            #expect(try await probe.get(queue, timeout: 0).text == #""23""#)
            await socket.abort()
        }
    }

    @Test func settingsOutsideTheServicesLimitsAreRefused() async throws {
        let app = try makeApplication(.memory)
        try await app.test(.router) { client in
            let queue = TestEnvironment.uniqueName("limits")
            let cases: [(String, String)] = [
                (#"{"offloadThresholdBytes":1000}"#, "needs a payload store (PAYLOADS_STORE)"),
                (#"{"maxMessageBytes":1048577}"#, "maxMessageBytes must be at most 1048576 on this service (MAX_MESSAGE_BYTES"),
                (#"{"maxMessageBytes":0}"#, "maxMessageBytes must be from 1 to 33554432"),
                (#"{"maxMessageBytes":33554433}"#, "maxMessageBytes must be from 1 to 33554432"),
                (#"{"maxMessageBytes":"big"}"#, "maxMessageBytes"),
            ]
            for (settings, message) in cases {
                let response = try await Self.configure(client, queue, settings)
                #expect(response.status == .badRequest, "\(settings)")
                #expect(response.text.contains(message), "\(settings): \(response.text)")
            }
            // Nothing was stored by the refused ones.
            #expect(try await client.execute(uri: "/api/\(queue)/config", method: .get).text.contains(#""maxMessageBytes":null"#))
        }
    }

    /// With a store, a queue's threshold moves bodies into the store below the service's
    /// threshold, or keeps them in the queue above it (up to MAX_MESSAGE_BYTES).
    @Test(arguments: BackendKind.available)
    func aQueuesOffloadThresholdDecidesWhatGoesToTheStore(kind: BackendKind) async throws {
        let directory = NSTemporaryDirectory() + TestEnvironment.uniqueName("skiff-size-settings")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let app = try makeApplication(kind) {
            $0.usePayloadStore(PayloadSettings(location: .directory(directory)))
            $0.keyPrefix = TestEnvironment.uniqueName("sizes")
        }
        @Sendable func objects() -> Int { ((try? FileManager.default.contentsOfDirectory(atPath: directory + "/m")) ?? []).filter { !$0.hasPrefix(".") }.count }
        try await app.test(.live) { client in
            let (low, high) = (TestEnvironment.uniqueName("low"), TestEnvironment.uniqueName("high"))
            #expect(try await Self.configure(client, low, #"{"offloadThresholdBytes":1000}"#).status == .ok)
            let tooHigh = try await Self.configure(client, high, #"{"offloadThresholdBytes":1048577}"#)
            #expect(tooHigh.status == .badRequest && tooHigh.text.contains("MAX_MESSAGE_BYTES"))
            #expect(try await Self.configure(client, high, #"{"offloadThresholdBytes":1048576,"maxMessageBytes":33554432}"#).status == .ok)
            // 5000 bytes: under the service's 256 KiB, over the queue's 1000 (and taken by the fast path).
            let small = Self.json(5000)
            #expect(try await client.execute(uri: "/api/\(low)", method: .post, body: small).status == .created)
            #expect(objects() == 1)
            let received = try await client.execute(uri: "/api/\(low)?timeout=0", method: .get)
            #expect(received.body == small && received.headers[Self.payloadHeader] == "offloaded")
            try await eventually { objects() == 0 }
            // 600 KB: over the service's threshold, under the queue's: kept in the queue whole.
            let medium = Self.json(600_000)
            #expect(try await client.execute(uri: "/api/\(high)", method: .post, body: medium).status == .created)
            #expect(objects() == 0)
            let inline = try await client.execute(uri: "/api/\(high)?timeout=0", method: .get)
            #expect(inline.body == medium && inline.headers[Self.payloadHeader] == nil)
            // A body the route would stream to the store is refused by its length first.
            #expect(try await Self.configure(client, low, #"{"offloadThresholdBytes":1000,"maxMessageBytes":300000}"#).status == .ok)
            let refused = try await client.execute(uri: "/api/\(low)", method: .post, body: Self.json(300_001))
            #expect(refused.status == .contentTooLarge && refused.text.contains("maxMessageBytes (300000 bytes)"))
            #expect(objects() == 0)
            // Over the queue's threshold, to the store.
            let large = Self.json(2 << 20)
            #expect(try await client.execute(uri: "/api/\(high)", method: .post, body: large).status == .created)
            #expect(objects() == 1)
            #expect(try await client.execute(uri: "/api/\(high)?timeout=0", method: .get).body == large)
        }
    }
}
