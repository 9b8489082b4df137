import Logging
import NIOCore
import NIOPosix
import SkiffTestSupport
import Testing

@testable import SkiffRedis

@Suite("Redis client against a real server", .enabled(if: TestEnvironment.hasRedis), .timeLimit(.minutes(2)))
struct RedisClientIntegrationTests {
    let logger = Logger(label: "test")

    func makeClient(_ url: String? = TestEnvironment.redisURL, configure: (inout RedisConfiguration) -> Void = { _ in }) throws -> RedisClient {
        var configuration = try RedisConfiguration(url: try #require(url))
        // Generous by default: dozens of tests share two cores. The deadline test sets its own.
        configuration.commandTimeout = .seconds(5)
        configuration.connectTimeout = .seconds(5)
        configure(&configuration)
        return RedisClient(configuration: configuration, eventLoopGroup: MultiThreadedEventLoopGroup.singleton, logger: logger)
    }

    @Test func binaryValuesRoundTrip() async throws {
        let client = try makeClient()
        defer { client.close() }
        let key = TestEnvironment.uniqueName("bin")
        var value = ByteBuffer(bytes: (0...255).map { UInt8($0) })
        value.writeString("\r\n$-1\r\n")
        _ = try await client.send("SET", .string(key), .bytes(value), "EX", 60)
        #expect(try await client.send("GET", .string(key)) == .bulkString(value))
    }

    @Test func concurrentCommandsArePipelinedWithoutMixingReplies() async throws {
        let client = try makeClient()
        defer { client.close() }
        let base = TestEnvironment.uniqueName("pipe")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<2000 {
                group.addTask {
                    let key = "\(base):\(index)"
                    _ = try await client.send("SET", .string(key), .string("v\(index)"), "EX", 60)
                    let value = try await client.send("GET", .string(key))
                    #expect(value.string == "v\(index)")
                }
            }
            try await group.waitForAll()
        }
        // A small pool serves all of them.
        #expect(client.pool.openConnections <= client.configuration.multiplexedConnections)
    }

    @Test func serverErrorsAreTypedAndKeepTheConnection() async throws {
        let client = try makeClient()
        defer { client.close() }
        await #expect(throws: RedisServerError.self) { try await client.send("NOSUCHCOMMAND") }
        #expect(try await client.send("PING") == .simpleString("PONG"))
    }

    @Test func scriptsReloadAfterTheServerForgetsThem() async throws {
        let client = try makeClient()
        defer { client.close() }
        let script = RedisScript(name: "echo", source: "return ARGV[1] .. '" + TestEnvironment.uniqueName("s") + "'")
        let first = try await client.evaluate(script, keys: [], arguments: ["a"])
        _ = try await client.send("SCRIPT", "FLUSH")
        let second = try await client.evaluate(script, keys: [], arguments: ["a"])
        #expect(first == second)
    }

    @Test func blockingCommandReturnsNullAtItsServerTimeout() async throws {
        let client = try makeClient()
        defer { client.close() }
        let key = TestEnvironment.uniqueName("block")
        let value = try await client.blocking(RedisCommand("BLPOP", .string(key), "0.2"), serverTimeout: .milliseconds(200))
        #expect(value.isNull)
    }

    @Test func cancelledBlockingPopDoesNotSwallowTheNextMessage() async throws {
        let client = try makeClient()
        defer { client.close() }
        let key = TestEnvironment.uniqueName("cancel")
        let waiting = Task { try await client.blocking(RedisCommand("BLPOP", .string(key), "5"), serverTimeout: .seconds(5)) }
        try await Task.sleep(for: .milliseconds(200))
        waiting.cancel()
        await #expect(throws: RedisClientError.self) { try await waiting.value }
        // The cancelled BLPOP's connection was closed, so it cannot take this message.
        try await Task.sleep(for: .milliseconds(100))
        _ = try await client.send("RPUSH", .string(key), "kept")
        try await Task.sleep(for: .milliseconds(100))
        #expect(try await client.send("LPOP", .string(key)).string == "kept")
    }

    @Test func reconnectsAfterTheServerDropsTheConnection() async throws {
        // A server of its own: CLIENT KILL would cut every other test's connections too.
        let server = try RedisServerProcess()
        try server.start()
        // One connection: with two, the PING below may open the second for the first time, which
        // is not a reconnect.
        let client = try makeClient(server.url) { $0.multiplexedConnections = 1 }
        defer { client.close() }
        _ = try await client.send("CLIENT", "SETNAME", "skiff-reconnect-test")
        _ = try await client.send("CLIENT", "KILL", "SKIPME", "no", "TYPE", "normal")
        var recovered = false
        for _ in 0..<50 where !recovered {
            recovered = (try? await client.send("PING")) == .simpleString("PONG")
            if !recovered { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(recovered)
        #expect(client.pool.reconnects >= 1)
    }

    @Test func aCommandOnAClosedConnectionFailsInsteadOfHanging() async throws {
        var configuration = try RedisConfiguration(url: try #require(TestEnvironment.redisURL))
        configuration.connectTimeout = .seconds(5)
        let connection = try await RedisConnection.connect(
            configuration: configuration, eventLoop: MultiThreadedEventLoopGroup.singleton.next(), logger: logger)
        connection.close()
        try await connection.closeFuture.get()
        // The pipeline is torn down: the write never reaches the handler, and must still fail.
        await #expect(throws: RedisClientError.connectionClosed) {
            try await connection.send(RedisCommand("PING"), timeout: .seconds(60))
        }
        let results = try await connection.sendPipelined([RedisCommand("PING"), RedisCommand("PING")], timeout: .seconds(60))
        #expect(results.allSatisfy { if case .failure = $0 { true } else { false } })
    }

    @Test func serverErrorsThatPassAreTemporary() {
        for message in [
            "LOADING Redis is loading the dataset in memory", "MASTERDOWN Link with MASTER is down", "TRYAGAIN", "BUSY Redis is busy",
            "READONLY You can't write against a read only replica.",
        ] {
            #expect(RedisServerError(message: message).isTemporary, "\(message)")
        }
        #expect(!RedisServerError(message: "ERR unknown command").isTemporary)
        #expect(RedisClientError.protocolError("x").isConnectivityFailure)
    }

    @Test func failsFastWhenNothingListens() async throws {
        let port = try RedisServerProcess.freePort()
        let client = try makeClient("redis://127.0.0.1:\(port)")
        defer { client.close() }
        let started = ContinuousClock.now
        await #expect(throws: RedisClientError.self) { try await client.send("PING") }
        // Fails rather than hangs: the bound is far above the expected few milliseconds.
        #expect(ContinuousClock.now - started < .seconds(5))
        #expect(await client.checkHealth() == false)
    }

    @Test func commandDeadlineAppliesWhenTheServerHangs() async throws {
        let server = try RedisServerProcess()
        try server.start()
        let client = try makeClient(server.url) { $0.commandTimeout = .seconds(1) }
        defer { client.close() }
        #expect(try await client.send("PING") == .simpleString("PONG"))
        // Freeze the server: replies stop but the socket stays open.
        let pauser = try makeClient(server.url)
        defer { pauser.close() }
        _ = try await pauser.send("CLIENT", "PAUSE", "4000", "ALL")
        await #expect(throws: RedisClientError.timeout) { try await client.send("SET", "k", "v") }
    }

    @Test func authenticatesWithAnACLUser() async throws {
        let admin = try makeClient()
        defer { admin.close() }
        let user = TestEnvironment.uniqueName("user")
        _ = try await admin.send("ACL", "SETUSER", .string(user), "on", ">s3cret", "~*", "&*", "+@all")
        defer { Task { _ = try? await admin.send("ACL", "DELUSER", .string(user)) } }
        let url = try #require(TestEnvironment.redisURL).replacingOccurrences(of: "redis://", with: "redis://\(user):s3cret@")
        let client = try makeClient(url)
        defer { client.close() }
        #expect(try await client.send("ACL", "WHOAMI").string == user)
        let wrong = try makeClient(url.replacingOccurrences(of: "s3cret", with: "wrong"))
        defer { wrong.close() }
        await #expect(throws: (any Error).self) { try await wrong.send("PING") }
    }

    @Test(.enabled(if: TestEnvironment.redisPasswordURL != nil)) func authenticatesWithAPassword() async throws {
        let client = try makeClient(TestEnvironment.redisPasswordURL)
        defer { client.close() }
        #expect(try await client.send("PING") == .simpleString("PONG"))
        let url = try #require(TestEnvironment.redisPasswordURL)
        let anonymous = try makeClient(url.replacingOccurrences(of: #"://:[^@]*@"#, with: "://", options: .regularExpression))
        defer { anonymous.close() }
        await #expect(throws: RedisServerError.self) { try await anonymous.send("SET", "k", "v") }
    }

    @Test(.enabled(if: TestEnvironment.redisTLSURL != nil)) func speaksTLS() async throws {
        let client = try makeClient(TestEnvironment.redisTLSURL) { $0.tlsCAFile = TestEnvironment.redisTLSCAFile }
        defer { client.close() }
        #expect(try await client.send("PING") == .simpleString("PONG"))
        let untrusting = try makeClient(TestEnvironment.redisTLSURL)
        defer { untrusting.close() }
        await #expect(throws: (any Error).self) { try await untrusting.send("PING") }
    }

    /// Runs `body` with a client and its subscriber, connected, on a Redis server of its own.
    private func withConnectedSubscriber(_ body: (RedisClient, RedisSubscriber) async throws -> Void) async throws {
        let server = try RedisServerProcess()
        try server.start()
        let client = try makeClient(server.url)
        defer { client.close() }
        let subscriber = client.makeSubscriber(onMessage: { _, _ in }, onConnectionChange: { _ in })
        let running = Task { try await subscriber.run() }
        defer { running.cancel() }
        // Connected first: a channel asked for while connecting is subscribed by the connect itself.
        for _ in 0..<200 where !subscriber.isConnected { try await Task.sleep(for: .milliseconds(10)) }
        try await body(client, subscriber)
    }

    @Test func subscribingToAConfirmedChannelCostsNothing() async throws {
        try await withConnectedSubscriber { client, subscriber in
            for _ in 0..<5 { try await subscriber.subscribe("channel") }
            let stats = String(buffer: try await client.send("INFO", "commandstats").bytes ?? ByteBuffer())
            #expect(stats.contains("cmdstat_subscribe:calls=1,"), "\(stats)")
        }
    }

    /// A channel unsubscribed and subscribed again on the same connection missed what was
    /// published in between: the generation says so.
    @Test func aChannelSubscribedAgainHasANewGeneration() async throws {
        try await withConnectedSubscriber { _, subscriber in
            try await subscriber.subscribe("channel")
            let first = try #require(subscriber.confirmedGeneration(of: "channel"))
            try await subscriber.subscribe("other")
            #expect(subscriber.confirmedGeneration(of: "channel") == first)
            await subscriber.unsubscribe("channel")
            #expect(subscriber.confirmedGeneration(of: "channel") == nil)
            try await subscriber.subscribe("channel")
            let again = try #require(subscriber.confirmedGeneration(of: "channel"))
            #expect(again != first)
        }
    }

    @Test func subscriberResubscribesAfterReconnect() async throws {
        let server = try RedisServerProcess()
        try server.start()
        let client = try makeClient(server.url)
        defer { client.close() }
        let channel = TestEnvironment.uniqueName("chan")
        let received = AsyncStream<String>.makeStream()
        let connections = AsyncStream<Bool>.makeStream()
        let subscriber = client.makeSubscriber(
            onMessage: { _, payload in received.continuation.yield(String(buffer: payload)) },
            onConnectionChange: { connections.continuation.yield($0) }
        )
        let running = Task { try await subscriber.run() }
        defer { running.cancel() }
        var states = connections.stream.makeAsyncIterator()
        #expect(await states.next() == true)
        try await subscriber.subscribe(channel)
        _ = try await client.send("PUBLISH", .string(channel), "one")
        var messages = received.stream.makeAsyncIterator()
        #expect(await messages.next() == "one")
        _ = try await client.send("CLIENT", "KILL", "TYPE", "pubsub")
        #expect(await states.next() == false)
        #expect(await states.next() == true)
        _ = try await client.send("PUBLISH", .string(channel), "two")
        #expect(await messages.next() == "two")
    }
}
