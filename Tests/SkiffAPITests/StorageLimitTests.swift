import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import NIOPosix
import SkiffAPI
import SkiffRedis
import SkiffTestSupport
import Testing

/// Redis out of memory (`maxmemory` with `noeviction`, as Memorystore and deploy/redis.conf run it).
@Suite("Storage limits", .enabled(if: TestEnvironment.hasRedis), .timeLimit(.minutes(2)))
struct StorageLimitTests {
    @Test func aFullRedisRefusesSendsWith507AndConsumersCanStillDrainIt() async throws {
        let server = try RedisServerProcess()
        try server.start(extraArguments: ["--maxmemory", "3mb", "--maxmemory-policy", "noeviction"])
        try await makeApplication(.redis, redisURL: server.url).test(.router) { client in
            let queue = TestEnvironment.uniqueName("full")
            let body = ByteBuffer(string: "\"" + String(repeating: "x", count: 32_000) + "\"")
            var stored = 0
            var refusal: TestResponse?
            for _ in 0..<1_000 {
                let response = try await client.execute(uri: "/api/\(queue)", method: .post, body: body)
                guard response.status == .created else {
                    refusal = response
                    break
                }
                stored += 1
            }
            let refused = try #require(refusal)
            #expect(refused.status.code == 507)
            #expect(refused.text.contains("full"))
            #expect(stored > 10)
            // Deeper under water: Redis now refuses every script that may write unless it says it
            // drains (claims, acks). Consumers must still be able to empty the queue.
            let admin = RedisClient(
                configuration: try RedisConfiguration(url: server.url),
                eventLoopGroup: MultiThreadedEventLoopGroup.singleton,
                logger: Logger(label: "test")
            )
            defer { admin.close() }
            _ = try await admin.send("CONFIG", "SET", "maxmemory", "1mb")
            #expect(try await client.execute(uri: "/api/\(queue)", method: .post, body: ByteBuffer(string: "1")).status.code == 507)
            // A consumer can still extend and nack (with a reason) while Redis is full.
            let first = try await client.execute(uri: "/api/\(queue)?timeout=0&visibility=10000", method: .get)
            let receipt = try #require(first.headers[.init("Skiff-Receipt")!])
            #expect(try await client.execute(uri: "/api/\(queue)/messages/\(receipt)/visibility?timeout=20000", method: .post).status == .noContent)
            let nack = try await client.execute(
                uri: "/api/\(queue)/messages/\(receipt)/nack?delay=0",
                method: .post,
                body: ByteBuffer(string: #"{"reason": "busy"}"#)
            )
            #expect(nack.status == .noContent)
            // The refused messages were not stored; the others all were. Consumers drain them, all
            // of them and nothing more.
            for index in 0..<stored {
                let response = try await client.execute(uri: "/api/\(queue)?timeout=0&visibility=10000", method: .get)
                #expect(response.status == .ok, "message \(index)")
                let receipt = try #require(response.headers[.init("Skiff-Receipt")!])
                #expect(try await client.execute(uri: "/api/\(queue)/messages/\(receipt)", method: .delete).status == .noContent)
            }
            #expect(try await client.execute(uri: "/api/\(queue)?timeout=0", method: .get).status == .noContent)
            // With room again, sends are accepted.
            _ = try await admin.send("CONFIG", "SET", "maxmemory", "64mb")
            #expect(try await client.execute(uri: "/api/\(queue)", method: .post, body: body).status == .created)
        }
    }
}
