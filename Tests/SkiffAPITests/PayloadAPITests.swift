import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import SkiffAPI
import SkiffQueue
import SkiffTestSupport
import Testing

/// Large messages over HTTP with a payload store (issue 23, docs/payloads.md): what a client sees,
/// through the fast path and the router, and the limits with and without a store.
@Suite("Payload store over HTTP", .timeLimit(.minutes(3)))
struct PayloadAPITests {
    /// A replica of `kind` with a filesystem payload store in a fresh directory.
    private func withStore<T>(_ kind: BackendKind, _ body: (SkiffApplication, String) async throws -> T) async throws -> T {
        let directory = NSTemporaryDirectory() + TestEnvironment.uniqueName("skiff-payloads-api")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // Redis keys of its own: every replica with a store drains the graveyard under its prefix
        // and deletes what it finds in its own store, which for another test's ids is the wrong one.
        let app = try makeApplication(kind) {
            $0.usePayloadStore(PayloadSettings(location: .directory(directory)))
            $0.keyPrefix = TestEnvironment.uniqueName("payloads")
        }
        return try await body(app, directory)
    }

    /// The objects in the store's directory.
    private func objects(in directory: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory + "/m")) ?? []).filter { !$0.hasPrefix(".") }.sorted()
    }

    /// Every file under the store's directory, temporary ones included.
    private func allFiles(in directory: String) -> [String] {
        (FileManager.default.enumerator(atPath: directory)?.allObjects as? [String] ?? []).filter {
            var isDirectory: ObjCBool = false
            return FileManager.default.fileExists(atPath: directory + "/" + $0, isDirectory: &isDirectory) && !isDirectory.boolValue
        }
    }

    /// A JSON string of `size` bytes.
    private static func json(_ size: Int, fill: Character = "x") -> ByteBuffer {
        ByteBuffer(string: "\"" + String(repeating: fill, count: size - 2) + "\"")
    }

    private static let payloadHeader = HTTPField.Name("Skiff-Payload")!
    private static let receiptHeader = HTTPField.Name("Skiff-Receipt")!

    @Test(arguments: BackendKind.available, [TestingSetup.live, .router])
    func aLargeBodyComesBackAsPostedAndItsObjectGoesWithTheMessage(kind: BackendKind, setup: TestingSetup) async throws {
        try await withStore(kind) { app, directory in
            try await app.test(setup) { client in
                let queue = TestEnvironment.uniqueName("large")
                let body = Self.json(2 << 20)
                let posted = try await client.execute(uri: "/api/\(queue)", method: .post, body: body)
                #expect(posted.status == .created)
                #expect(objects(in: directory).count == 1)
                // A lookup by id reads it back, byte for byte, and changes nothing.
                let id = try #require(objects(in: directory).first)
                let found = try await client.execute(uri: "/api/\(queue)/messages/\(id)", method: .get)
                #expect(found.status == .ok && found.text.hasSuffix(#""state":"ready","body":"# + String(buffer: body) + "}"))
                let received = try await client.execute(uri: "/api/\(queue)?timeout=0", method: .get)
                #expect(received.status == .ok)
                #expect(received.body == body)
                #expect(received.headers[Self.payloadHeader] == "offloaded")
                // A plain GET deletes the message once its response is written, then the object.
                try await eventually { objects(in: directory).isEmpty }
                // A small one is kept in Redis and says nothing.
                #expect(try await client.execute(uri: "/api/\(queue)", method: .post, body: ByteBuffer(string: "1")).status == .created)
                let small = try await client.execute(uri: "/api/\(queue)?timeout=0", method: .get)
                #expect(small.text == "1" && small.headers[Self.payloadHeader] == nil)
                // An offloaded body with a trace context (docs/tracing.md): both come back.
                let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                let traced = try await client.execute(
                    uri: "/api/\(queue)", method: .post, headers: [HTTPField.Name("traceparent")!: traceparent], body: body)
                #expect(traced.status == .created)
                let tracedBack = try await client.execute(uri: "/api/\(queue)?timeout=0", method: .get)
                #expect(tracedBack.body == body && tracedBack.headers[Self.payloadHeader] == "offloaded")
                #expect(tracedBack.headers[HTTPField.Name("traceparent")!] == traceparent)
            }
        }
    }

    @Test(arguments: BackendKind.available)
    func batchesSayWhichBodiesWereOffloadedAndAnAckDeletesTheObject(kind: BackendKind) async throws {
        try await withStore(kind) { app, directory in
            try await app.test(.router) { client in
                let queue = TestEnvironment.uniqueName("batch")
                let large = String(repeating: "y", count: 300_000)
                let posted = try await client.execute(uri: "/api/\(queue)/batch", method: .post, body: ByteBuffer(string: #"["small","\#(large)"]"#))
                #expect(posted.status == .created)
                let received = try await client.execute(uri: "/api/\(queue)/batch?max=10&timeout=0&visibility=30000", method: .get)
                #expect(received.status == .ok)
                let items = try #require(try JSONSerialization.jsonObject(with: Data(received.body.readableBytesView)) as? [[String: Any]])
                #expect(items.count == 2)
                #expect(items[0]["offloaded"] == nil && items[0]["body"] as? String == "small")
                #expect(items[1]["offloaded"] as? Bool == true && items[1]["body"] as? String == large)
                #expect(objects(in: directory).count == 1)
                let receipt = try #require(items[1]["receipt"] as? String)
                #expect(try await client.execute(uri: "/api/\(queue)/messages/\(receipt)", method: .delete).status == .noContent)
                try await eventually { objects(in: directory).isEmpty }
            }
        }
    }

    /// A purge and a queue delete leave no object behind: their messages' bodies are deleted soon
    /// after (the replica drains the graveyard every 5 s), while a dead letter's stays.
    @Test(arguments: BackendKind.available)
    func purgeAndDeleteTakeTheObjectsOfTheirMessagesAlong(kind: BackendKind) async throws {
        try await withStore(kind) { app, directory in
            try await app.test(.live) { client in
                let queue = TestEnvironment.uniqueName("purged")
                for _ in 0..<2 { #expect(try await client.execute(uri: "/api/\(queue)", method: .post, body: Self.json(300_000)).status == .created) }
                let other = TestEnvironment.uniqueName("deleted")
                #expect(try await client.execute(uri: "/api/\(other)", method: .post, body: Self.json(300_000)).status == .created)
                #expect(objects(in: directory).count == 3)
                #expect(try await client.execute(uri: "/api/\(queue)/purge", method: .post).status == .ok)
                try await eventually(timeout: .seconds(30)) { objects(in: directory).count == 1 }
                #expect(try await client.execute(uri: "/api/\(other)", method: .delete).status == .noContent)
                try await eventually(timeout: .seconds(30)) { objects(in: directory).isEmpty }
            }
        }
    }

    @Test(arguments: BackendKind.available)
    func aCorruptedBodyIsA502AndTheMessageStays(kind: BackendKind) async throws {
        try await withStore(kind) { app, directory in
            try await app.test(.router) { client in
                let queue = TestEnvironment.uniqueName("corrupt")
                #expect(try await client.execute(uri: "/api/\(queue)", method: .post, body: Self.json(300_000)).status == .created)
                let name = try #require(objects(in: directory).first)
                try Data(Self.json(300_000, fill: "z").readableBytesView).write(to: URL(fileURLWithPath: directory + "/m/" + name))
                let received = try await client.execute(uri: "/api/\(queue)?timeout=0", method: .get)
                #expect(received.status == .badGateway)
                #expect(received.text.contains("not what was stored") && received.text.hasPrefix(#"{"error":"#))
                // It names the message's object, never where the store keeps it.
                #expect(received.text.contains("m/") && !received.text.contains(directory))
                let stats = try await client.execute(uri: "/api/\(queue)/stats", method: .get)
                #expect(stats.text.contains(#""delayed":1"#) || stats.text.contains(#""ready":1"#))
                // A peek shows it, its body null and why (once its retry backoff has passed).
                let peeked = try await eventually(until: { $0.text.contains(#""unreadable""#) }) {
                    try await client.execute(uri: "/api/\(queue)/messages?peek=5", method: .get)
                }
                #expect(peeked.status == .ok)
                #expect(peeked.text.contains(#""body":null,"unreadable":""#) && peeked.text.contains("not what was stored"))
                #expect(!peeked.text.contains(directory))
                // A lookup by id shows it the same way, with its state.
                let id = try #require(name.split(separator: "/").last.map(String.init))
                let found = try await client.execute(uri: "/api/\(queue)/messages/\(id)", method: .get)
                #expect(found.status == .ok)
                #expect(found.text.contains(#""state":"ready""#) && found.text.contains(#""body":null,"unreadable":""#))
                #expect(found.text.contains("not what was stored") && !found.text.contains(directory))
            }
        }
    }

    @Test(arguments: BackendKind.available)
    func aStreamedBodyThatIsNotJSONIsA400AndLeavesNothing(kind: BackendKind) async throws {
        try await withStore(kind) { app, directory in
            try await app.test(.live) { client in
                let queue = TestEnvironment.uniqueName("invalid")
                // Invalid at the very end (no closing quote), in the middle (a control character),
                // and at the first byte.
                var control = Self.json(1 << 20)
                control.setInteger(UInt8(0x01), at: 500_000)
                for body in [
                    ByteBuffer(string: "\"" + String(repeating: "x", count: 1 << 20)), control,
                    ByteBuffer(string: "x" + String(repeating: " ", count: 300_000)),
                ] {
                    let response = try await client.execute(uri: "/api/\(queue)", method: .post, body: body)
                    #expect(response.status == .badRequest)
                    #expect(response.text.contains("not valid JSON"))
                }
                #expect(try await client.execute(uri: "/api/\(queue)?timeout=0", method: .get).status == .noContent)
                #expect(allFiles(in: directory).isEmpty)
            }
        }
    }

    @Test func aClientThatLeavesMidBodyStoresNothing() async throws {
        let directory = NSTemporaryDirectory() + TestEnvironment.uniqueName("skiff-payloads-api")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try await withReplica(.memory, configure: { $0.usePayloadStore(PayloadSettings(location: .directory(directory))) }) { port, _ in
            let queue = TestEnvironment.uniqueName("left")
            let socket = try #require(LoopbackSocket.connect(port: port))
            let head = "POST /api/\(queue) HTTP/1.1\r\nHost: test\r\nContent-Length: 2000000\r\n\r\n\""
            let half = head + String(repeating: "a", count: 600_000)
            _ = half.utf8CString.withUnsafeBufferPointer { write(socket, $0.baseAddress, $0.count - 1) }
            // The upload is under way when the client goes.
            try await eventually { !allFiles(in: directory).isEmpty }
            close(socket)
            try await eventually { allFiles(in: directory).isEmpty }
            // Nothing was enqueued.
            let probe = try #require(LoopbackSocket.connect(port: port))
            defer { close(probe) }
            let get = "GET /api/\(queue)?timeout=0 HTTP/1.1\r\nHost: test\r\n\r\n"
            _ = get.utf8CString.withUnsafeBufferPointer { write(probe, $0.baseAddress, $0.count - 1) }
            var answer = [UInt8](repeating: 0, count: 12)
            #expect(read(probe, &answer, 12) == 12)
            #expect(String(decoding: answer, as: UTF8.self) == "HTTP/1.1 204")
        }
    }

    @Test func withAStoreQueuesTakeUpTo32MiB() async throws {
        try await withStore(.memory) { app, _ in
            try await app.test(.live) { client in
                let queue = TestEnvironment.uniqueName("q")
                #expect(try await client.execute(uri: "/api/\(queue)", method: .post, body: Self.json(32 << 20)).status == .created)
                let refused = try await client.execute(uri: "/api/\(queue)", method: .post, body: Self.json((32 << 20) + 1))
                #expect(refused.status == .contentTooLarge && refused.text.contains("33554432"))
                let received = try await client.execute(uri: "/api/\(queue)?timeout=0", method: .get)
                #expect(received.body.readableBytes == 32 << 20)
            }
        }
    }

    /// A topic publish over the threshold is one object, whatever the number of its copies: every
    /// subscriber queue hands the body out as posted, and the last copy deleted deletes it.
    @Test(arguments: BackendKind.available, [TestingSetup.live, .router])
    func topicPublishesAreOffloadedOnceForAllTheirCopies(kind: BackendKind, setup: TestingSetup) async throws {
        try await withStore(kind) { app, directory in
            try await app.test(setup) { client in
                let topic = TestEnvironment.uniqueName("t")
                let queues = [TestEnvironment.uniqueName("first"), TestEnvironment.uniqueName("second")]
                for (index, queue) in queues.enumerated() {
                    let subscribed = try await client.execute(
                        uri: "/api/topics/\(topic)/subscriptions/s\(index)", method: .put, body: ByteBuffer(string: #"{"queue":"\#(queue)"}"#))
                    #expect(subscribed.status == .created)
                }
                let body = Self.json(2 << 20, fill: "t")
                let published = try await client.execute(uri: "/api/topics/\(topic)", method: .post, body: body)
                #expect(published.status == .created && published.text.contains(#""deliveredTo":2"#))
                #expect(objects(in: directory).count == 1)
                let first = try await client.execute(uri: "/api/\(queues[0])?timeout=0", method: .get)
                #expect(first.body == body && first.headers[Self.payloadHeader] == "offloaded")
                // The second copy still reads it after the first was deleted.
                try await Task.sleep(for: .milliseconds(200))
                #expect(objects(in: directory).count == 1)
                let second = try await client.execute(uri: "/api/\(queues[1])?timeout=0&visibility=30000", method: .get)
                #expect(second.body == body && second.headers[Self.payloadHeader] == "offloaded")
                let receipt = try #require(second.headers[Self.receiptHeader])
                #expect(objects(in: directory).count == 1)
                #expect(try await client.execute(uri: "/api/\(queues[1])/messages/\(receipt)", method: .delete).status == .noContent)
                try await eventually { objects(in: directory).isEmpty }
                // A batch offloads what is over the threshold and keeps the rest whole.
                let large = String(repeating: "b", count: 300_000)
                let batch = try await client.execute(
                    uri: "/api/topics/\(topic)/batch", method: .post, body: ByteBuffer(string: #"["small","\#(large)"]"#))
                #expect(batch.status == .created)
                #expect(objects(in: directory).count == 1)
                let items = try await client.execute(uri: "/api/\(queues[0])/batch?max=10&timeout=0", method: .get)
                #expect(items.text.contains(#""body":"small""#) && items.text.contains(#""offloaded":true"#) && items.text.contains(large))
                // Past PAYLOADS_MAX_MESSAGE_BYTES, a publish is refused as a send is.
                let refused = try await client.execute(uri: "/api/topics/\(topic)", method: .post, body: Self.json((32 << 20) + 1))
                #expect(refused.status == .contentTooLarge)
            }
        }
    }

    @Test func withoutAStoreALargeBodyIsStillA413() async throws {
        let app = try makeApplication(.memory)
        try await app.test(.live) { client in
            let response = try await client.execute(uri: "/api/\(TestEnvironment.uniqueName("q"))", method: .post, body: Self.json(2 << 20))
            #expect(response.status == .contentTooLarge)
            #expect(response.text.contains("MAX_MESSAGE_BYTES is 1048576"))
        }
    }

    @Test func theSettingsAreReadAndCheckedTogether() throws {
        let directory = NSTemporaryDirectory() + TestEnvironment.uniqueName("skiff-payload-settings")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let configuration = try SkiffConfiguration.fromEnvironment([
            "PAYLOADS_STORE": "file://\(directory)", "PAYLOADS_OFFLOAD_THRESHOLD_BYTES": "1000", "PAYLOADS_MAX_MESSAGE_BYTES": "4000000",
        ])
        #expect(configuration.payloads?.location == .directory(directory))
        #expect(configuration.payloads?.thresholdBytes == 1000)
        #expect(configuration.api.maximumMessageBytes == 4_000_000)
        #expect(configuration.api.largestInlineMessageBytes == 1_048_576)
        #expect(FileManager.default.fileExists(atPath: directory))
        let bucket = try SkiffConfiguration.fromEnvironment(["PAYLOADS_STORE": "gs://skiff-payloads/", "PAYLOADS_GCS_ENDPOINT": "http://127.0.0.1:9023"])
        #expect(bucket.payloads?.location == .bucket("skiff-payloads", endpoint: "http://127.0.0.1:9023"))
        let refused: [[String: String]] = [
            ["PAYLOADS_STORE": "s3://bucket"],
            ["PAYLOADS_STORE": "file://relative/dir"],
            ["PAYLOADS_STORE": "gs://bucket/with/a/path"],
            ["PAYLOADS_STORE": "gs://Upper"],
            ["PAYLOADS_STORE": "gs://bucket", "PAYLOADS_GCS_ENDPOINT": "ftp://x"],
            ["PAYLOADS_STORE": "file://\(directory)", "PAYLOADS_MAX_MESSAGE_BYTES": "33554433"],
            ["PAYLOADS_STORE": "file://\(directory)", "PAYLOADS_OFFLOAD_THRESHOLD_BYTES": "2000000"],
            ["PAYLOADS_OFFLOAD_THRESHOLD_BYTES": "1000"],
            // A threshold of 0 would take every body, and crashed the fast path once.
            ["PAYLOADS_STORE": "file://\(directory)", "PAYLOADS_OFFLOAD_THRESHOLD_BYTES": "0"],
            // A store must not refuse what Redis would take.
            ["PAYLOADS_STORE": "file://\(directory)", "MAX_MESSAGE_BYTES": "2000000", "PAYLOADS_MAX_MESSAGE_BYTES": "1500000"],
        ]
        for environment in refused {
            #expect(throws: (any Error).self, "\(environment)") { try SkiffConfiguration.fromEnvironment(environment) }
        }
    }
}
