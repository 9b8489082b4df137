import Logging
import NIOPosix
import SkiffTestSupport
import Synchronization
import Testing

@testable import SkiffRedis

/// A password that changes over time (Memorystore's IAM tokens), on a Redis of the test's own
/// whose `requirepass` the test rotates: every new connection asks the source, the open ones stay
/// authenticated, and a refused or missing password is a clear "unavailable".
@Suite("Redis password source", .enabled(if: (try? RedisServerProcess.redisServerPath()) != nil), .timeLimit(.minutes(1)))
struct RedisPasswordSourceTests {
    /// Hands out `current`, counting the connections that asked.
    final class RotatingPassword: Sendable {
        private let state = Mutex((current: "token-1", asked: 0))
        var asked: Int { state.withLock { $0.asked } }
        func rotate(to password: String) { state.withLock { $0.current = password } }
        func next() -> String {
            state.withLock { state in
                state.asked += 1
                return state.current
            }
        }
    }

    static func client(port: Int, source: RedisPasswordSource, connections: Int = 2) -> RedisClient {
        var configuration = RedisConfiguration(port: port, connectTimeout: .seconds(5), commandTimeout: .seconds(5))
        configuration.multiplexedConnections = connections
        configuration.passwordSource = source
        return RedisClient(configuration: configuration, eventLoopGroup: MultiThreadedEventLoopGroup.singleton, logger: Logger(label: "test"))
    }

    @Test func everyNewConnectionAuthenticatesWithThePasswordOfTheMoment() async throws {
        let server = try RedisServerProcess()
        try server.start(extraArguments: ["--requirepass", "token-1"])
        let password = RotatingPassword()
        let client = Self.client(port: server.port, source: RedisPasswordSource(name: "rotating") { password.next() })
        defer { client.close() }
        var admin = RedisConfiguration(port: server.port, password: "token-1")
        admin.commandTimeout = .seconds(5)
        let adminClient = RedisClient(configuration: admin, eventLoopGroup: MultiThreadedEventLoopGroup.singleton, logger: Logger(label: "test"))
        defer { adminClient.close() }

        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<20 {
                group.addTask {
                    let reply = try await client.send("PING")
                    #expect(reply == .simpleString("PONG"))
                }
            }
            try await group.waitForAll()
        }
        let firstConnections = password.asked
        #expect((1...2).contains(firstConnections))

        // The token rotates on the server: open connections keep working on the old one.
        _ = try await adminClient.send("CONFIG", "SET", "requirepass", "token-2")
        password.rotate(to: "token-2")
        #expect(try await client.send("PING") == .simpleString("PONG"))
        #expect(password.asked == firstConnections)

        // Connections dropped (a failover, an idle timeout): the new ones use the new token.
        _ = try await adminClient.send("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
        let answered = try await eventually(until: { $0 == .simpleString("PONG") }) { (try? await client.send("PING")) ?? .null }
        #expect(answered == .simpleString("PONG"))
        #expect(password.asked > firstConnections)
    }

    @Test func aRefusedPasswordIsUnavailableAndNamesItsSource() async throws {
        let server = try RedisServerProcess()
        try server.start(extraArguments: ["--requirepass", "token-2"])
        let client = Self.client(port: server.port, source: RedisPasswordSource(name: "stale tokens") { "token-1" })
        defer { client.close() }
        let error = await #expect(throws: RedisClientError.self) { try await client.send("PING") }
        #expect(error == .unavailable(""))
        #expect(error?.detail.contains("AUTH refused (password from stale tokens)") == true)
        #expect(error?.detail.contains("WRONGPASS") == true)
    }

    @Test func aSourceThatFailsIsUnavailableAndNoAuthIsSent() async throws {
        struct NoToken: Error, CustomStringConvertible {
            var description: String { "metadata server unavailable" }
        }
        let server = try RedisServerProcess()
        try server.start()
        let client = Self.client(port: server.port, source: RedisPasswordSource(name: "broken") { throw NoToken() })
        defer { client.close() }
        let error = await #expect(throws: RedisClientError.self) { try await client.send("PING") }
        #expect(error == .unavailable(""))
        #expect(error?.detail.contains("no password from broken: metadata server unavailable") == true)
    }
}
