import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import MetricsTestKit
import NIOCore
import Prometheus
import SkiffAPI
import SkiffQueue
import SkiffTestSupport
import Testing

/// What the console stands on: its files at `/ui/`, open and locked down by their headers, and
/// the two admin reads it adds to the API, a message by id and a queue's history.
@Suite("Console and its API", .timeLimit(.minutes(2)))
struct ConsoleAPITests {
    /// The files need no key (they hold no data) even when keys are set; `/ui` moves to `/ui/`;
    /// each file carries the Content-Security-Policy and a validator a browser revalidates with.
    @Test func theConsoleFilesAreServedOpenWithTheirPolicy() async throws {
        let app = try makeObservedApplication(metricsFactory: TestMetrics(), registry: PrometheusCollectorRegistry()) { $0.apiKeys = TestKeys.all }
        try await app.test(.router) { client async throws in
            let moved = try await client.execute(uri: "/ui", method: .get)
            #expect(moved.status == .permanentRedirect)
            #expect(moved.headers[.location] == "/ui/")
            for (path, type) in [("/ui/", "text/html"), ("/ui/console.js", "text/javascript"), ("/ui/console.css", "text/css")] {
                let response = try await client.execute(uri: path, method: .get)
                #expect(response.status == .ok, "\(path)")
                #expect(response.headers[.contentType]?.hasPrefix(type) == true, "\(path)")
                #expect(response.body.readableBytes > 0 && response.headers[.contentLength] == String(response.body.readableBytes), "\(path)")
                let policy = try #require(response.headers[.contentSecurityPolicy])
                #expect(policy.contains("default-src 'self'") && policy.contains("frame-ancestors 'none'") && !policy.contains("unsafe"))
                #expect(response.headers[.xContentTypeOptions] == "nosniff")
                let tag = try #require(response.headers[.eTag])
                let again = try await client.execute(uri: path, method: .get, headers: [.ifNoneMatch: "\"other\", \(tag)"])
                #expect(again.status == .notModified, "\(path)")
                #expect(again.body.readableBytes == 0)
            }
            // Only the console's own files are open; another path under /ui needs a key like any.
            #expect(try await client.execute(uri: "/ui/secrets.txt", method: .get).status == .unauthorized)
            let missing = try await client.execute(uri: "/ui/secrets.txt", method: .get, headers: TestKeys.bearer(TestKeys.admin))
            #expect(missing.status == .notFound)
            #expect(missing.text.hasPrefix(#"{"error":"#))
            let written = try await client.execute(uri: "/ui/console.js", method: .put, body: ByteBuffer(string: "x"))
            #expect(written.status == .unauthorized)
            // What the page calls still needs an admin key.
            #expect(try await client.execute(uri: "/api/q/history", method: .get).status == .unauthorized)
            #expect(try await client.execute(uri: "/api/q/history", method: .get, headers: TestKeys.bearer(TestKeys.send)).status == .forbidden)
            #expect(try await client.execute(uri: "/api/q/history", method: .get, headers: TestKeys.bearer(TestKeys.admin)).status == .ok)
            let lookup = try await client.execute(uri: "/api/q/messages/01JD3Z5X1V0000000000000000", method: .get, headers: TestKeys.bearer(TestKeys.receive))
            #expect(lookup.status == .forbidden)
        }
    }

    /// `GET /api/{queue}/messages/{id}`: the message wherever it is, with its state, body as
    /// posted; a 404 naming the id when there is none; an ack by receipt still works beside it.
    @Test(arguments: BackendKind.available)
    func aMessageIsLookedUpByIdWithItsState(kind: BackendKind) async throws {
        let app = try makeApplication(kind)
        try await app.test(.router) { client async throws in
            let queue = TestEnvironment.uniqueName("lookup")
            func id(_ response: TestResponse) throws -> String {
                let object = try #require(try JSONSerialization.jsonObject(with: Data(response.text.utf8)) as? [String: Any])
                return try #require(object["id"] as? String)
            }
            let ready = try id(try await client.execute(uri: "/api/\(queue)", method: .post, body: ByteBuffer(string: #"{"n": 1}"#)))
            let delayed = try id(try await client.execute(uri: "/api/\(queue)?delay=600000", method: .post, body: ByteBuffer(string: "[2]")))
            let found = try await client.execute(uri: "/api/\(queue)/messages/\(ready)", method: .get)
            #expect(found.status == .ok)
            #expect(found.text.hasPrefix(#"{"id":"\#(ready)","enqueuedAt":""#))
            #expect(found.text.contains(#""receiveCount":0,"priority":0,"state":"ready","body":{"n": 1}}"#))
            let later = try await client.execute(uri: "/api/\(queue)/messages/\(delayed)", method: .get)
            #expect(later.text.contains(#""state":"delayed","body":[2]}"#))

            let received = try await client.execute(uri: "/api/\(queue)?timeout=0&visibility=60000", method: .get)
            let receipt = try #require(received.headers[HTTPField.Name("Skiff-Receipt")!])
            let inFlight = try await client.execute(uri: "/api/\(queue)/messages/\(ready)", method: .get)
            #expect(inFlight.text.contains(#""receiveCount":1,"priority":0,"state":"inFlight""#))
            #expect(try await client.execute(uri: "/api/\(queue)/messages/\(receipt)", method: .delete).status == .noContent)

            let gone = try await client.execute(uri: "/api/\(queue)/messages/\(ready)", method: .get)
            #expect(gone.status == .notFound)
            #expect(gone.text.contains("no message \(ready) in \(queue)"))
            let wrongMethod = try await client.execute(uri: "/api/\(queue)/messages/\(ready)", method: .put, body: ByteBuffer(string: "1"))
            #expect(wrongMethod.status == .methodNotAllowed)
            #expect(wrongMethod.headers[.allow] == "GET, DELETE")
        }
    }

    /// A partitioned queue's messages are found in whichever partition holds them, by the id the
    /// send answered (the receipt names the partition; the id does not).
    @Test(arguments: BackendKind.available)
    func aMessageOfAPartitionedQueueIsFoundByItsId(kind: BackendKind) async throws {
        let app = try makeApplication(kind)
        try await app.test(.router) { client async throws in
            let queue = TestEnvironment.uniqueName("lookup-parts")
            let configured = try await client.execute(uri: "/api/\(queue)/config", method: .put, body: ByteBuffer(string: #"{"partitions": 4}"#))
            #expect(configured.status == .ok)
            var ids: [String] = []
            for index in 0..<8 {
                let posted = try await client.execute(uri: "/api/\(queue)", method: .post, body: ByteBuffer(string: "\(index)"))
                let object = try #require(try JSONSerialization.jsonObject(with: Data(posted.text.utf8)) as? [String: Any])
                ids.append(try #require(object["id"] as? String))
            }
            for (index, id) in ids.enumerated() {
                let found = try await client.execute(uri: "/api/\(queue)/messages/\(id)", method: .get)
                #expect(found.status == .ok, "\(id)")
                #expect(found.text.hasSuffix(#""state":"ready","body":\#(index)}"#), "\(found.text)")
            }
            #expect(try await client.execute(uri: "/api/\(queue)/messages/01JD3Z5X1V0000000000000000", method: .get).status == .notFound)
        }
    }

    /// `GET /api/{queue}/history`: the samples the replica's refresher records (every second
    /// here), oldest first, each at the start of its interval; empty for a queue without any.
    @Test(arguments: BackendKind.available)
    func aQueueHistoryListsTheRecordedSamples(kind: BackendKind) async throws {
        let app = try makeApplication(kind) { $0.queueHistoryInterval = .seconds(1) }
        try await app.test(.live) { client async throws in
            let queue = TestEnvironment.uniqueName("history")
            let none = try await client.execute(uri: "/api/\(queue)/history", method: .get)
            #expect(none.text == #"{"queue":"\#(queue)","intervalMs":1000,"samples":[]}"#)
            for body in ["1", "2", "3"] { _ = try await client.execute(uri: "/api/\(queue)", method: .post, body: ByteBuffer(string: body)) }
            #expect(try await client.execute(uri: "/api/\(queue)?timeout=0", method: .get).status == .ok)
            let samples = try await eventually(until: { (samples: [[String: Int]]) in
                samples.last.map { $0["ready"] == 2 && $0["enqueued"] == 3 && $0["delivered"] == 1 && $0["acked"] == 1 } == true
            }) {
                let history = try await client.execute(uri: "/api/\(queue)/history", method: .get)
                let object = try #require(try JSONSerialization.jsonObject(with: Data(history.text.utf8)) as? [String: Any])
                return try #require(object["samples"] as? [[String: Int]])
            }
            let last = try #require(samples.last)
            #expect(last["inFlight"] == 0 && last["delayed"] == 0 && last["deadLetter"] == 0)
            let times = samples.compactMap { $0["at"] }
            #expect(times.count == samples.count && times.allSatisfy { $0 % 1000 == 0 })
            #expect(times == times.sorted() && Set(times).count == times.count)
            #expect(try #require(times.last) <= Int(Date().timeIntervalSince1970 * 1000))
        }
    }
}
