import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Metrics
import NIOCore
import NIOPosix
import ServiceLifecycle
import SkiffAPI
import SkiffPush
import SkiffQueue
import SkiffTestSupport
import Synchronization
import Testing

/// Push subscriptions end to end (docs/topics.md): a replica POSTs each matched message to the
/// endpoint, signed; a 2xx settles it, anything else retries it after the backoff and
/// dead-letters it after its last attempt; a lease that a dead replica never settles comes back
/// to be pushed again; a slow endpoint holds back nothing else; the secret is never shown.
@Suite("Push delivery", .timeLimit(.minutes(3)))
struct PushDeliveryTests {
    static var kinds: [BackendKind] { BackendKind.available }
    static let secret = "whsec-0123456789abcdef"

    /// A replica that may push to loopback, looks for subscription changes often, and gives a
    /// push's lease a short margin, so that an unsettled lease comes back quickly.
    static func application(_ kind: BackendKind) throws -> SkiffApplication {
        try makeApplication(kind) { configuration in
            configuration.keyPrefix = TestEnvironment.uniqueName("push")
            configuration.push = PushConfiguration(
                addressRules: PushAddressRules(allowedNetworks: [IPNetwork("127.0.0.0/8")!]),
                leaseMargin: .milliseconds(300),
                refreshInterval: .milliseconds(50),
                receiveWait: .seconds(1)
            )
        }
    }

    static func subscribe(
        _ client: some TestClientProtocol,
        topic: String,
        name: String,
        url: String,
        extra: String = "",
        filter: String? = nil,
        queue: String? = nil
    ) async throws -> TestResponse {
        let push = #"{"url":"\#(url)","secret":"\#(secret)"\#(extra.isEmpty ? "" : "," + extra)}"#
        var fields = [#""push":\#(push)"#]
        if let filter { fields.append(#""filter":\#(filter)"#) }
        if let queue { fields.append(#""queue":"\#(queue)""#) }
        let body = "{" + fields.joined(separator: ",") + "}"
        return try await client.execute(uri: "/api/topics/\(topic)/subscriptions/\(name)", method: .put, body: ByteBuffer(string: body))
    }

    static func publish(_ client: some TestClientProtocol, topic: String, _ body: String) async throws -> String {
        let response = try await client.execute(uri: "/api/topics/\(topic)", method: .post, body: ByteBuffer(string: body))
        #expect(response.status == .created)
        let document = try #require(try JSONSerialization.jsonObject(with: Data(response.text.utf8)) as? [String: Any])
        return try #require(document["id"] as? String)
    }

    static func counters(_ client: some TestClientProtocol, topic: String, name: String) async throws -> [String: Int] {
        let response = try await client.execute(uri: "/api/topics/\(topic)/subscriptions/\(name)", method: .get)
        let document = try #require(try JSONSerialization.jsonObject(with: Data(response.text.utf8)) as? [String: Any])
        return try #require(document["counters"] as? [String: Int])
    }

    /// A body over the payload threshold is pushed as published (read back from the store, signed
    /// over its bytes), and its object goes with the last copy: here the push's and a queue's.
    @Test(arguments: kinds) func anOffloadedBodyIsPushedAsPublished(kind: BackendKind) async throws {
        let directory = NSTemporaryDirectory() + TestEnvironment.uniqueName("skiff-push-payloads")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let app = try makeApplication(kind) { configuration in
            configuration.keyPrefix = TestEnvironment.uniqueName("push")
            configuration.usePayloadStore(PayloadSettings(location: .directory(directory)))
            configuration.push = PushConfiguration(
                addressRules: PushAddressRules(allowedNetworks: [IPNetwork("127.0.0.0/8")!]), refreshInterval: .milliseconds(50),
                receiveWait: .seconds(1))
        }
        @Sendable func objects() -> [String] { ((try? FileManager.default.contentsOfDirectory(atPath: directory + "/m")) ?? []).filter { !$0.hasPrefix(".") } }
        try await PushReceiver.with { receiver in
            try await app.test(.live) { client in
                let (topic, queue) = (TestEnvironment.uniqueName("t"), TestEnvironment.uniqueName("q"))
                #expect(try await Self.subscribe(client, topic: topic, name: "hook", url: receiver.url).status == .created)
                let plain = try await client.execute(
                    uri: "/api/topics/\(topic)/subscriptions/q", method: .put, body: ByteBuffer(string: #"{"queue":"\#(queue)"}"#))
                #expect(plain.status == .created)
                let body = #"{"kind":"video","data":""# + String(repeating: "v", count: 600_000) + #""}"#
                let id = try await Self.publish(client, topic: topic, body)
                #expect(MessageID.isShared(id))
                let push = try #require(try await eventually(until: { !$0.isEmpty }) { receiver.received(messageID: id) }.first)
                #expect(push.text == body)
                let timestamp = try #require(push.header("Skiff-Timestamp").flatMap { Int64($0) })
                #expect(PushSignature.verify(try #require(push.header("Skiff-Signature")), secret: Self.secret, timestampSeconds: timestamp, body: push.body))
                _ = try await eventually(until: { $0["delivered"] == 1 }) { try await Self.counters(client, topic: topic, name: "hook") }
                // The push is settled; the queue's copy still needs the object.
                #expect(objects() == [id])
                let received = try await client.execute(uri: "/api/\(queue)?timeout=0", method: .get)
                #expect(received.text == body)
                try await eventually { objects().isEmpty }
            }
        }
    }

    @Test(arguments: kinds) func aMatchedMessageIsPushedSignedOnceAndSettled(kind: BackendKind) async throws {
        try await PushReceiver.with { receiver in
            try await Self.application(kind).test(.live) { client in
                let topic = TestEnvironment.uniqueName("t")
                let created = try await Self.subscribe(client, topic: topic, name: "hook", url: receiver.url, filter: #"{"kind":["order"]}"#)
                #expect(created.status == .created)
                #expect(created.text.contains(#""secret":"********""#) && !created.text.contains(Self.secret))
                #expect(created.text.contains(#""queue":"\#(topic)-hook-push""#))

                let body = #"{"kind":"order","total":42}"#
                let id = try await Self.publish(client, topic: topic, body)
                _ = try await Self.publish(client, topic: topic, #"{"kind":"refund"}"#)
                let pushes = try await eventually(until: { !$0.isEmpty }) { receiver.received(messageID: id) }
                let push = try #require(pushes.first)
                #expect(push.text == body)
                #expect(push.header("Skiff-Topic") == topic && push.header("Skiff-Subscription") == "hook")
                #expect(push.header("Skiff-Attempt") == "1")
                #expect(push.header("Skiff-Delivery-Id") == "\(topic)/hook/\(id)")
                #expect(push.header("Content-Type") == "application/json")
                let timestamp = try #require(push.header("Skiff-Timestamp").flatMap { Int64($0) })
                let signature = try #require(push.header("Skiff-Signature"))
                #expect(PushSignature.verify(signature, secret: Self.secret, timestampSeconds: timestamp, body: push.body))
                #expect(!PushSignature.verify(signature, secret: Self.secret, timestampSeconds: timestamp + 1, body: push.body))

                // Settled: the push queue is empty, and the counters say so on every replica.
                let settled = try await eventually(until: { $0["delivered"] == 1 }) { try await Self.counters(client, topic: topic, name: "hook") }
                #expect(settled == ["matched": 1, "filteredOut": 1, "queued": 1, "delivered": 1, "failed": 0, "dropped": 0])
                let stats = try await client.execute(uri: "/api/\(topic)-hook-push/stats", method: .get)
                #expect(stats.text.contains(#""ready":0"#) && stats.text.contains(#""inFlight":0"#) && stats.text.contains(#""delayed":0"#), "\(stats.text)")
                #expect(receiver.received.count == 1, "the filtered-out message is never pushed")
                let listed = try await client.execute(uri: "/api/topics/\(topic)/subscriptions", method: .get)
                #expect(listed.status == .ok && !listed.text.contains(Self.secret))
            }
        }
    }

    @Test(arguments: kinds) func aFailingEndpointIsRetriedWithBackoffThenDeadLettered(kind: BackendKind) async throws {
        try await PushReceiver.with(respond: { _, _ in .internalServerError }) { receiver in
            try await Self.application(kind).test(.live) { client in
                let topic = TestEnvironment.uniqueName("t")
                let subscribed = try await Self.subscribe(
                    client, topic: topic, name: "hook", url: receiver.url, extra: #""maxAttempts":3,"backoff":{"baseMs":20,"capMs":40}"#)
                #expect(subscribed.status == .created)
                let id = try await Self.publish(client, topic: topic, #"{"n":1}"#)
                let attempts = try await eventually(until: { $0.count >= 3 }) { receiver.received(messageID: id) }
                #expect(attempts.map { $0.header("Skiff-Attempt") } == ["1", "2", "3"])
                #expect(Set(attempts.map { $0.header("Skiff-Delivery-Id") }).count == 1, "one delivery id for every attempt")

                let dead = try await eventually(until: { $0.status == .ok }) {
                    try await client.execute(uri: "/api/\(topic)-hook-push-dlq?timeout=0", method: .get)
                }
                #expect(dead.status == .ok && dead.text == #"{"n":1}"#)
                let counters = try await eventually(until: { $0["failed"] == 1 }) { try await Self.counters(client, topic: topic, name: "hook") }
                #expect(counters["delivered"] == 0 && counters["failed"] == 1)
                #expect(receiver.received(messageID: id).count == 3, "never a fourth attempt")
            }
        }
    }

    @Test(arguments: kinds) func anEndpointThatRecoversGetsTheMessageAndNothingIsDeadLettered(kind: BackendKind) async throws {
        // Fails twice (a 503, then no answer within the timeout), then takes it. The timeout is
        // long enough that the answer that takes it cannot miss it on a loaded machine.
        try await PushReceiver.with(respond: { _, index in
            if index == 1 { try? await Task.sleep(for: .seconds(5)) }
            return index < 2 ? .serviceUnavailable : .ok
        }) { receiver in
            try await Self.application(kind).test(.live) { client in
                let topic = TestEnvironment.uniqueName("t")
                _ = try await Self.subscribe(
                    client, topic: topic, name: "hook", url: receiver.url, extra: #""timeoutMs":2000,"backoff":{"baseMs":10,"capMs":20}"#)
                let id = try await Self.publish(client, topic: topic, #""hello""#)
                let counters = try await eventually(until: { $0["delivered"] == 1 }) { try await Self.counters(client, topic: topic, name: "hook") }
                #expect(counters["failed"] == 0)
                #expect(receiver.received(messageID: id).map { $0.header("Skiff-Attempt") } == ["1", "2", "3"])
                #expect(try await client.execute(uri: "/api/\(topic)-hook-push-dlq?timeout=0", method: .get).status == .noContent)
            }
        }
    }

    /// A replica that dies holding a push's lease never settles it: the message comes back when
    /// the lease runs out and is pushed again (the claim below stands for the dead replica's).
    @Test(arguments: kinds) func aLeaseADeadReplicaHeldComesBackAndIsPushed(kind: BackendKind) async throws {
        try await PushReceiver.with { receiver in
            try await Self.application(kind).test(.live) { client in
                let topic = TestEnvironment.uniqueName("t")
                let queue = TestEnvironment.uniqueName("pushq")
                // The queue exists with a message before the subscription does, so no replica
                // pushes it before the "dead" one has claimed it.
                let sent = try await client.execute(uri: "/api/\(queue)", method: .post, body: ByteBuffer(string: #"{"early":true}"#))
                #expect(sent.status == .created)
                let claimed = try await client.execute(uri: "/api/\(queue)?visibility=400&timeout=0", method: .get)
                #expect(claimed.status == .ok)
                // A push's lease outlives its timeout: long, so that a loaded machine cannot let the
                // live replica's own claim lapse into a third attempt.
                let subscribed = try await Self.subscribe(client, topic: topic, name: "hook", url: receiver.url, extra: #""timeoutMs":3000"#, queue: queue)
                #expect(subscribed.status == .created)
                let pushed = try await eventually(until: { !$0.isEmpty }) { receiver.received }
                #expect(pushed.first?.text == #"{"early":true}"#)
                #expect(pushed.first?.header("Skiff-Attempt") == "2", "the dead replica's claim was the first")
                _ = try await eventually(until: { $0["delivered"] == 1 }) { try await Self.counters(client, topic: topic, name: "hook") }
            }
        }
    }

    @Test(arguments: kinds) func aSlowEndpointHoldsBackNoOtherSubscription(kind: BackendKind) async throws {
        let release = AsyncStream.makeStream(of: Void.self)
        try await PushReceiver.with(respond: { received, _ in
            if received.header("Skiff-Subscription") == "slow" { for await _ in release.stream { break } }
            return .ok
        }) { receiver in
            try await Self.application(kind).test(.live) { client in
                let topic = TestEnvironment.uniqueName("t")
                _ = try await Self.subscribe(client, topic: topic, name: "slow", url: receiver.url, extra: #""concurrency":1,"timeoutMs":60000"#)
                _ = try await Self.subscribe(client, topic: topic, name: "fast", url: receiver.url)
                var ids: [String] = []
                for n in 0..<5 { ids.append(try await Self.publish(client, topic: topic, "\(n)")) }
                let fast = try await eventually(until: { $0.count == 5 }) {
                    receiver.received.filter { $0.header("Skiff-Subscription") == "fast" }
                }
                #expect(Set(fast.compactMap { $0.header("Skiff-Message-Id") }) == Set(ids))
                // The slow one's first push arrives (on a loaded machine, maybe after the fast five)
                // and, held, keeps the other four back.
                let slow = try await eventually(until: { !$0.isEmpty }) { receiver.received.filter { $0.header("Skiff-Subscription") == "slow" } }
                #expect(slow.count == 1, "one at a time")
                release.continuation.finish()
                _ = try await eventually(until: { $0["delivered"] == 5 }) { try await Self.counters(client, topic: topic, name: "slow") }
            }
        }
    }

    /// A partitioned push queue: each message is settled through the queue its receipt names
    /// (from the adversarial review: acks sent to the partition's own name were refused, and every
    /// message was pushed until it was dead-lettered).
    @Test(arguments: kinds) func aPartitionedPushQueuePushesEachMessageOnce(kind: BackendKind) async throws {
        try await PushReceiver.with { receiver in
            try await Self.application(kind).test(.live) { client in
                let (topic, queue) = (TestEnvironment.uniqueName("t"), TestEnvironment.uniqueName("pq"))
                let configured = try await client.execute(uri: "/api/\(queue)/config", method: .put, body: ByteBuffer(string: #"{"partitions":4}"#))
                #expect(configured.status == .ok)
                #expect(try await Self.subscribe(client, topic: topic, name: "hook", url: receiver.url, queue: queue).status == .created)
                var ids: [String] = []
                for n in 0..<8 { ids.append(try await Self.publish(client, topic: topic, "\(n)")) }
                let counters = try await eventually(until: { $0["delivered"] == 8 }) { try await Self.counters(client, topic: topic, name: "hook") }
                #expect(counters["delivered"] == 8 && counters["failed"] == 0)
                #expect(ids.map { receiver.received(messageID: $0).count } == Array(repeating: 1, count: 8))
            }
        }
    }

    /// The endpoint's timeout covers the whole answer: one that sends its status and then trickles
    /// its body is cut there, and the message is retried, then dead-lettered (from the review: the
    /// client's deadline ended with the head, and such a push held its consumer for minutes).
    @Test(arguments: kinds) func anAnswerThatTricklesIsCutAtTheTimeout(kind: BackendKind) async throws {
        let router = Router()
        router.post("/hook") { request, _ -> Response in
            _ = try await request.body.collect(upTo: 1 << 20)
            return Response(
                status: .ok,
                body: ResponseBody { writer in
                    for _ in 0..<600 {
                        try await writer.write(ByteBuffer(string: "x"))
                        try await Task.sleep(for: .milliseconds(100))
                    }
                    try await writer.finish(nil)
                }
            )
        }
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let receiver = Application(
            router: router,
            configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in continuation.yield(channel.localAddress?.port ?? 0) }
        )
        let server = Task { try await receiver.runService(gracefulShutdownSignals: []) }
        defer { server.cancel() }
        var iterator = ports.makeAsyncIterator()
        let port = try #require(await iterator.next())
        try await Self.application(kind).test(.live) { client in
            let topic = TestEnvironment.uniqueName("t")
            let subscribed = try await Self.subscribe(
                client, topic: topic, name: "hook", url: "http://127.0.0.1:\(port)/hook",
                extra: #""timeoutMs":300,"maxAttempts":2,"backoff":{"baseMs":10,"capMs":20}"#)
            #expect(subscribed.status == .created)
            _ = try await Self.publish(client, topic: topic, #"{"slow":true}"#)
            let dead = try await eventually(until: { $0.status == .ok }) {
                try await client.execute(uri: "/api/\(topic)-hook-push-dlq?timeout=0", method: .get)
            }
            #expect(dead.status == .ok && dead.text == #"{"slow":true}"#)
            let counters = try await eventually(until: { $0["failed"] == 1 }) { try await Self.counters(client, topic: topic, name: "hook") }
            #expect(counters["delivered"] == 0)
        }
    }

    /// `PUT /api/{q}/config` replaces every setting: one that drops the push queue's attempts and
    /// backoff is undone before the next nack, so maxAttempts still holds (from the review: the
    /// message was retried for ever, and counted as dead-lettered each time).
    @Test(arguments: kinds) func theEndpointsAttemptsHoldWhenThePushQueueIsReconfigured(kind: BackendKind) async throws {
        try await PushReceiver.with(respond: { _, _ in .internalServerError }) { receiver in
            try await Self.application(kind).test(.live) { client in
                let topic = TestEnvironment.uniqueName("t")
                let subscribed = try await Self.subscribe(
                    client, topic: topic, name: "hook", url: receiver.url, extra: #""maxAttempts":2,"backoff":{"baseMs":10,"capMs":20}"#)
                #expect(subscribed.status == .created)
                let reconfigured = try await client.execute(
                    uri: "/api/\(topic)-hook-push/config", method: .put, body: ByteBuffer(string: #"{"retentionMs":3600000}"#))
                #expect(reconfigured.status == .ok)
                let id = try await Self.publish(client, topic: topic, #"{"n":1}"#)
                let dead = try await eventually(until: { $0.status == .ok }) {
                    try await client.execute(uri: "/api/\(topic)-hook-push-dlq?timeout=0", method: .get)
                }
                #expect(dead.status == .ok)
                #expect(receiver.received(messageID: id).count == 2)
                let counters = try await eventually(until: { $0["failed"] == 1 }) { try await Self.counters(client, topic: topic, name: "hook") }
                #expect(counters["failed"] == 1)
                let settings = try await client.execute(uri: "/api/\(topic)-hook-push/config", method: .get)
                #expect(settings.text.contains(#""maxReceiveCount":2"#), "\(settings.text)")
            }
        }
    }

    /// A store without push subscriptions (topics on a Redis Cluster answer "unsupported"): the
    /// service stays up until the shutdown, because a service that returns ends the whole
    /// application (found by the cluster suite on a Redis Cluster: every replica exited at start).
    @Test func withoutPushSubscriptionsTheServiceWaitsForTheShutdown() async throws {
        let (asked, ask) = AsyncStream.makeStream(of: Void.self)
        let store = UnsupportedTopicStore(asked: ask)
        let backend = MemoryQueueBackend(eventLoop: MultiThreadedEventLoopGroup.singleton.next(), logger: Logger(label: "test"))
        let delivery = PushDelivery(
            backend: backend, store: store, configuration: PushConfiguration(refreshInterval: .milliseconds(20)), logger: Logger(label: "test"))
        let group = ServiceGroup(configuration: .init(services: [delivery], logger: Logger(label: "test")))
        let ended = Atomic<Bool>(false)
        let running = Task {
            try await group.run()
            ended.store(true, ordering: .releasing)
        }
        var iterator = asked.makeAsyncIterator()
        await iterator.next()
        // Many refresh intervals later, the group still runs.
        try await Task.sleep(for: .milliseconds(300))
        let endedEarly = ended.load(ordering: .acquiring)
        #expect(!endedEarly)
        await group.triggerGracefulShutdown()
        try await running.value
        let endedAtShutdown = ended.load(ordering: .acquiring)
        #expect(endedAtShutdown)
    }

    @Test func pushURLsMustBeHTTPSAndPublicUnlessAllowed() async throws {
        let resolve: @Sendable (String) async throws -> [IPAddress] = { host in
            switch host {
            case "public.example": [IPAddress("93.184.216.34")!]
            case "mixed.example": [IPAddress("93.184.216.34")!, IPAddress("10.1.2.3")!]
            case "metadata.example": [IPAddress("169.254.169.254")!]
            default: throw QueueError.invalidArgument("no such host")
            }
        }
        let router = Router(context: SkiffRequestContext.self)
        router.add(middleware: JSONErrorMiddleware())
        let backend = PartitionedQueues(MemoryQueueBackend(eventLoop: MultiThreadedEventLoopGroup.singleton.next(), logger: Logger(label: "test")))
        TopicController(
            topics: Topics.over(backend),
            settings: APISettings(),
            metrics: SkiffMetrics(factory: MetricsSystem.factory),
            settingsStore: backend,
            resolve: resolve
        ).addRoutes(to: router)
        try await Application(router: router).test(.router) { client in
            let refused: [(String, String)] = [
                ("http://public.example/hook", "must be https"),
                ("https://127.0.0.1/hook", "loopback"),
                ("https://[::1]:8443/hook", "loopback"),
                ("https://[::ffff:127.0.0.1]/hook", "loopback"),
                ("https://10.0.0.8/hook", "private"),
                ("https://mixed.example/hook", "private"),
                ("https://metadata.example/computeMetadata", "link-local"),
                ("https://100.64.1.1/", "carrier-grade NAT"),
                ("https://user:pw@public.example/hook", "user info"),
                ("ftp://public.example/hook", "must start with https://"),
                ("https://nowhere.example/hook", "does not resolve"),
                ("https://%31%32%37.0.0.1/hook", "letters, digits"),
                ("https://[2002:7f00:1::]/hook", "loopback"),
            ]
            for (url, reason) in refused {
                let answer = try await Self.subscribe(client, topic: "t", name: "hook", url: url)
                #expect(answer.status == .badRequest, "\(url)")
                #expect(answer.text.contains(reason), "\(url): \(answer.text)")
                #expect(!answer.text.contains("10.1.2.3") && !answer.text.contains("169.254.169.254/"), "no resolved address is told")
            }
            let fine = try await Self.subscribe(client, topic: "t", name: "hook", url: "https://public.example/hook?a=1")
            #expect(fine.status == .created)
            for (extra, field) in [
                (#""timeoutMs":50"#, "push.timeoutMs"), (#""maxAttempts":0"#, "push.maxAttempts"), (#""concurrency":65"#, "push.concurrency"),
                (#""backoff":{"baseMs":100,"capMs":10}"#, "push.backoff.capMs"), (#""retries":3"#, "unknown push field 'retries'"),
            ] {
                let answer = try await Self.subscribe(client, topic: "t", name: "hook", url: "https://public.example/hook", extra: extra)
                #expect(answer.status == .badRequest && answer.text.contains(field), "\(extra): \(answer.text)")
            }
            let weak = try await client.execute(
                uri: "/api/topics/t/subscriptions/hook",
                method: .put,
                body: ByteBuffer(string: #"{"push":{"url":"https://public.example/","secret":"short"}}"#)
            )
            #expect(weak.status == .badRequest && weak.text.contains("push.secret"))
        }
    }

    @Test func theAddressRulesJudgeEveryRange() throws {
        let rules = PushAddressRules(allowedNetworks: [IPNetwork("10.20.0.0/16")!, IPNetwork("::1")!])
        for (text, range) in [
            ("127.0.0.1", "loopback"), ("127.255.0.9", "loopback"), ("10.0.0.1", "private"), ("172.31.255.255", "private"),
            ("192.168.1.1", "private"), ("169.254.169.254", "link-local"), ("0.0.0.0", "this-network"), ("224.0.0.1", "multicast"),
            ("255.255.255.255", "reserved"), ("::", "unspecified"), ("fd00::1", "unique local (private)"), ("fe80::1", "link-local"),
            ("::ffff:10.0.0.1", "private"), ("64:ff9b::7f00:1", "loopback"), ("ff02::1", "multicast"),
            ("64:ff9b:1::a00:1", "private"), ("2002:a9fe:a9fe::1", "link-local"),
        ] {
            #expect(IPAddress(text)?.refusedRange == range, "\(text)")
        }
        for text in ["93.184.216.34", "172.32.0.1", "2606:4700::1111", "8.8.8.8"] {
            #expect(IPAddress(text)?.refusedRange == nil, "\(text)")
        }
        #expect(rules.isAllowed(IPAddress("10.20.3.4")!) && !rules.isAllowed(IPAddress("10.21.0.1")!))
        #expect(rules.isAllowed(IPAddress("::ffff:10.20.0.1")!), "an IPv4 range holds the IPv4-mapped addresses")
        #expect(rules.isAllowed(IPAddress("::1")!) && !rules.isAllowed(IPAddress("::2")!))
        #expect(IPNetwork("10.0.0.0/33") == nil && IPNetwork("host/8") == nil && IPNetwork("::/129") == nil)
        #expect(IPAddress("127.1") == nil, "not dotted-quad: left to the resolver, whose answer is judged")
        #expect(throws: Never.self) { try IPNetwork.list(" 10.0.0.0/8 , 127.0.0.1 ").get() }
    }

    /// A vector computed apart from this code (Python's hmac module), so the receiver sample in
    /// docs/topics.md and the server agree.
    @Test func theSignatureIsHMACSHA256OfTimestampDotBody() {
        let body = ByteBuffer(string: #"{"order":42}"#)
        let header = PushSignature.header(secret: Self.secret, timestampSeconds: 1_767_225_600, body: body)
        #expect(header == "v1=279d7ed3aec510fd274114e87056fb34183d1b554048a51cab57d13bf8790824")
        #expect(PushSignature.verify(header, secret: Self.secret, timestampSeconds: 1_767_225_600, body: body))
        #expect(!PushSignature.verify(header, secret: Self.secret + "x", timestampSeconds: 1_767_225_600, body: body))
        #expect(!PushSignature.verify(header, secret: Self.secret, timestampSeconds: 1_767_225_600, body: ByteBuffer(string: #"{"order":43}"#)))
    }

    @Test func pushURLsAreTakenApart() throws {
        let url = try PushURL("HTTPS://Hooks.Example.com:8443/a/b?c=d")
        #expect(url == PushURL.parts(https: true, host: "hooks.example.com", port: 8443, target: "/a/b?c=d"))
        #expect(try PushURL("http://[::1]/x").host == "::1")
        #expect(try PushURL("https://h.example?x=1").target == "/?x=1")
        #expect(throws: QueueError.self) { try PushURL("https://h.example/#frag") }
        #expect(throws: QueueError.self) { try PushURL("https://h.example:0/") }
        #expect(throws: QueueError.self) { try PushURL("https:///path") }
        #expect(throws: QueueError.self) { try PushURL("https://h.example/a b") }
    }
}

extension PushURL {
    static func parts(https: Bool, host: String, port: Int, target: String) -> PushURL? {
        guard var url = try? PushURL(https ? "https://x/" : "http://x/") else { return nil }
        (url.host, url.port, url.target) = (host, port, target)
        return url
    }
}

/// Topics as a Redis Cluster has them: every call unsupported.
struct UnsupportedTopicStore: TopicStore {
    let asked: AsyncStream<Void>.Continuation
    private var refusal: QueueError { .unsupported("no topics here") }
    func subscriptions(of topic: TopicName) async throws -> TopicSubscriptions { throw refusal }
    func putSubscription(_ subscription: TopicSubscription, on topic: TopicName) async throws -> Bool { throw refusal }
    func deleteSubscription(_ name: SubscriptionName, of topic: TopicName) async throws -> Bool { throw refusal }
    func deleteTopic(_ topic: TopicName) async throws -> Bool { throw refusal }
    func fanOut(_ fanOut: TopicFanOut) async throws -> TopicFanOutResult { throw refusal }
    func topicStats(of topic: TopicName) async throws -> TopicStats { throw refusal }
    func topics() async throws -> [TopicName] { throw refusal }
    func pushSubscriptionsVersion() async throws -> String {
        asked.yield()
        throw refusal
    }
    func pushSubscriptions() async throws -> PushSubscriptions { throw refusal }
    func countPushes(_ counts: [PushCount]) async throws { throw refusal }
}
