import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import SkiffAPI
import SkiffPush
import SkiffQueue
import SkiffTestSupport
import Synchronization
import Testing

@Suite("ZZ review probes", .timeLimit(.minutes(3)))
struct ZZReviewProbeTests {
    static var kinds: [BackendKind] { BackendKind.available.filter { $0 != .redisCluster } }

    @Test(arguments: kinds) func probePartitionedPushQueue(kind: BackendKind) async throws {
        try await PushReceiver.with { receiver in
            try await PushDeliveryTests.application(kind).test(.live) { client in
                let topic = TestEnvironment.uniqueName("t")
                let queue = TestEnvironment.uniqueName("pq")
                let configured = try await client.execute(uri: "/api/\(queue)/config", method: .put, body: ByteBuffer(string: #"{"partitions":4}"#))
                #expect(configured.status == .ok, "\(configured.text)")
                let s = try await PushDeliveryTests.subscribe(client, topic: topic, name: "hook", url: receiver.url, extra: #""timeoutMs":500"#, queue: queue)
                #expect(s.status == .created, "\(s.text)")
                var ids: [String] = []
                for n in 0..<8 { ids.append(try await PushDeliveryTests.publish(client, topic: topic, "\(n)")) }
                try await Task.sleep(for: .seconds(8))
                let perID = ids.map { receiver.received(messageID: $0).count }
                let dlq = try await client.execute(uri: "/api/\(queue)/stats", method: .get)
                print("PROBE partitioned \(kind) stats: \(dlq.text)")
                let counters = try await PushDeliveryTests.counters(client, topic: topic, name: "hook")
                print("PROBE partitioned \(kind): pushes per message \(perID), counters \(counters)")
                #expect(perID.allSatisfy { $0 == 1 }, "each message pushed once: \(perID)")
                #expect(counters["delivered"] == 8, "\(counters)")
            }
        }
    }

    @Test(arguments: kinds) func probeQueueSettingsChangedAfterwards(kind: BackendKind) async throws {
        try await PushReceiver.with(respond: { r, _ in print("PROBE recv attempt \(r.header("Skiff-Attempt") ?? "") at \(Date().timeIntervalSince1970)"); return .internalServerError }) { receiver in
            try await PushDeliveryTests.application(kind).test(.live) { client in
                let topic = TestEnvironment.uniqueName("t")
                let s = try await PushDeliveryTests.subscribe(
                    client, topic: topic, name: "hook", url: receiver.url, extra: #""maxAttempts":2,"backoff":{"baseMs":200,"capMs":400}"#)
                #expect(s.status == .created)
                // A user sets only the retention of the push queue (PUT replaces settings).
                let c = try await client.execute(uri: "/api/\(topic)-hook-push/config", method: .put, body: ByteBuffer(string: #"{"retentionMs":3600000}"#))
                #expect(c.status == .ok, "\(c.text)")
                let id = try await PushDeliveryTests.publish(client, topic: topic, #"{"n":1}"#)
                let start = Date()
                try await Task.sleep(for: .seconds(20))
                let attempts = receiver.received(messageID: id).count
                let dlq = try await client.execute(uri: "/api/\(topic)-hook-push-dlq?timeout=0", method: .get)
                print("PROBE settings-changed \(kind): dlq \(dlq.status) after \(Date().timeIntervalSince(start)); attempt headers \(receiver.received(messageID: id).map { ($0.header("Skiff-Attempt") ?? "") + "@" + ($0.header("Skiff-Timestamp") ?? "") })")
                let counters = try await PushDeliveryTests.counters(client, topic: topic, name: "hook")
                print("PROBE settings-changed \(kind): attempts in 3 s = \(attempts), counters \(counters)")
                #expect(attempts <= 2, "attempts: \(attempts)")
            }
        }
    }

    @Test(arguments: kinds) func probeTwoTopicsOneQueue(kind: BackendKind) async throws {
        try await PushReceiver.with { receiver in
            try await PushDeliveryTests.application(kind).test(.live) { client in
                let a = TestEnvironment.uniqueName("ta")
                let b = TestEnvironment.uniqueName("tb")
                let queue = TestEnvironment.uniqueName("shared")
                let sa = try await PushDeliveryTests.subscribe(client, topic: a, name: "hook", url: receiver.url, queue: queue)
                let sb = try await PushDeliveryTests.subscribe(client, topic: b, name: "hook", url: receiver.url + "?other", queue: queue)
                print("PROBE two-topics \(kind): \(sa.status) \(sb.status) \(sb.text)")
                var ids: [String] = []
                for n in 0..<10 { ids.append(try await PushDeliveryTests.publish(client, topic: a, "\(n)")) }
                try await Task.sleep(for: .seconds(2))
                let labels = receiver.received.map { $0.header("Skiff-Topic") ?? "?" }
                print("PROBE two-topics \(kind): topics on pushes of messages published to A only: \(labels.map { $0 == a ? "A" : "B" })")
                #expect(labels.allSatisfy { $0 == a })
            }
        }
    }

    @Test(arguments: kinds) func probeTricklingAnswer(kind: BackendKind) async throws {
        let requests = Atomic<Int>(0)
        let router = Router()
        router.post("/hook") { request, _ -> Response in
            _ = try await request.body.collect(upTo: 1 << 20)
            requests.wrappingAdd(1, ordering: .relaxed)
            return Response(status: .ok, body: ResponseBody { writer in
                for _ in 0..<600 {
                    try await writer.write(ByteBuffer(string: "x"))
                    try await Task.sleep(for: .milliseconds(500))
                }
                try await writer.finish(nil)
            })
        }
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                              onServerRunning: { channel in continuation.yield(channel.localAddress?.port ?? 0) })
        let server = Task { try await app.runService(gracefulShutdownSignals: []) }
        defer { server.cancel() }
        var iterator = ports.makeAsyncIterator()
        let port = try #require(await iterator.next())
        try await PushDeliveryTests.application(kind).test(.live) { client in
            let topic = TestEnvironment.uniqueName("t")
            let s = try await PushDeliveryTests.subscribe(
                client, topic: topic, name: "hook", url: "http://127.0.0.1:\(port)/hook", extra: #""timeoutMs":300,"maxAttempts":100,"concurrency":4"#)
            #expect(s.status == .created)
            _ = try await PushDeliveryTests.publish(client, topic: topic, #"{"n":1}"#)
            try await Task.sleep(for: .seconds(5))
            let counters = try await PushDeliveryTests.counters(client, topic: topic, name: "hook")
            print("PROBE trickle \(kind): one message, timeoutMs 300, requests after 5 s = \(requests.load(ordering: .relaxed)), counters \(counters)")
            // Delete the subscription: pushes already under way continue.
            _ = try await client.execute(uri: "/api/topics/\(topic)/subscriptions/hook", method: .delete)
            #expect(requests.load(ordering: .relaxed) <= 1)
        }
    }
}
