public import Logging
public import NIOCore
import NIOPosix
import NIOSSL
import SkiffSupport
import Synchronization

/// One TCP (or TLS) connection to Redis with an async command API.
///
/// Commands from many tasks may be in flight at once; they are pipelined in submission order.
/// Cancelling a pipelined command abandons only that reply; cancelling a blocking command closes
/// the connection (see ``RedisCommandStateMachine``).
public final class RedisConnection: Sendable {
    public let id: Int
    let channel: any Channel
    private let handler: NIOLoopBound<RedisCommandHandler>
    private let nextCommandID = Atomic<UInt64>(0)
    private let logger: Logger
    /// A pub/sub connection (see ``connect(configuration:eventLoop:logger:onPush:)``).
    private let isSubscriber: Bool

    private static let connectionIDs = Atomic<Int>(0)

    private init(id: Int, channel: any Channel, handler: NIOLoopBound<RedisCommandHandler>, logger: Logger, isSubscriber: Bool) {
        self.id = id
        self.channel = channel
        self.handler = handler
        self.logger = logger
        self.isSubscriber = isSubscriber
    }

    public var isActive: Bool { channel.isActive }
    public var closeFuture: EventLoopFuture<Void> { channel.closeFuture }

    /// Connects, then authenticates and selects the database.
    ///
    /// - Parameter onPush: when set, the connection is a subscriber: pub/sub `message` and `smessage`
    ///   pushes go here, and so does the `sunsubscribe` Redis sends when a shard channel's slot
    ///   leaves the node.
    public static func connect(
        configuration: RedisConfiguration,
        eventLoop: any EventLoop,
        logger: Logger,
        onPush: (@Sendable (RedisValue) -> Void)? = nil
    ) async throws -> RedisConnection {
        let id = connectionIDs.wrappingAdd(1, ordering: .relaxed).newValue
        var logger = logger
        logger[metadataKey: "redis.connection.id"] = "\(id)"
        let sslContext: NIOSSLContext? = configuration.tls ? try makeSSLContext(configuration) : nil
        let handlerLogger = logger
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(.nanoseconds(Int64(configuration.connectTimeout.nanoseconds)))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.socketOption(.so_keepalive), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let sslContext {
                        let serverName = configuration.tlsServerName ?? configuration.host
                        let sniName = isIPAddress(serverName) ? nil : serverName
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: sslContext, serverHostname: sniName))
                    }
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(RESPDecoder()))
                    try channel.pipeline.syncOperations.addHandler(
                        RedisCommandHandler(isSubscriber: onPush != nil, logger: handlerLogger, onPush: onPush)
                    )
                }
            }
        // Before the socket: no connection sits open unauthenticated while a token is fetched.
        let password = try await configuration.passwordSource?.password() ?? configuration.password
        let channel: any Channel
        do {
            channel = try await bootstrap.connect(host: configuration.host, port: configuration.port).get()
        } catch {
            throw RedisClientError.unavailable("cannot connect to \(configuration.host):\(configuration.port): \(error)")
        }
        let handler = try await channel.eventLoop.submit {
            NIOLoopBound(try channel.pipeline.syncOperations.handler(type: RedisCommandHandler.self), eventLoop: channel.eventLoop)
        }.get()
        let connection = RedisConnection(id: id, channel: channel, handler: handler, logger: logger, isSubscriber: onPush != nil)
        do {
            if let password {
                let auth =
                    if let username = configuration.username {
                        RedisCommand("AUTH", .string(username), .string(password))
                    } else {
                        RedisCommand("AUTH", .string(password))
                    }
                do {
                    _ = try await connection.send(auth, timeout: configuration.commandTimeout)
                } catch let error as RedisServerError {
                    // WRONGPASS, or an expired token: this connection is of no use, and the
                    // pool's backoff (not the caller) decides when to try again.
                    let source = configuration.passwordSource.map { " (password from \($0.name))" } ?? ""
                    throw RedisClientError.unavailable("AUTH refused\(source): \(error.message)")
                }
            }
            if configuration.database != 0 {
                _ = try await connection.send(RedisCommand("SELECT", .integer(Int64(configuration.database))), timeout: configuration.commandTimeout)
            }
        } catch {
            connection.close()
            throw error
        }
        logger.debug("redis connection established")
        return connection
    }

    /// Sends one command and waits for its reply.
    ///
    /// - Throws: ``RedisServerError`` for an error reply; ``RedisClientError`` when the connection
    ///   fails, the deadline passes (the connection is then closed) or the task is cancelled.
    public func send(_ command: RedisCommand, timeout: Duration, isBlocking: Bool = false) async throws -> RedisValue {
        if Task.isCancelled { throw RedisClientError.cancelled }
        let (id, future) = write(command, timeout: timeout, isBlocking: isBlocking)
        return try await reply(id: id, future)
    }

    /// Writes several commands before waiting for any reply, so they run in this order on this
    /// connection (`WAIT` after a write covers that write), and returns each outcome in order.
    public func sendPipelined(_ commands: [RedisCommand], timeout: Duration) async throws -> [Result<RedisValue, any Error>] {
        if Task.isCancelled { throw RedisClientError.cancelled }
        let written = commands.map { write($0, timeout: timeout, isBlocking: false) }
        var results: [Result<RedisValue, any Error>] = []
        results.reserveCapacity(written.count)
        for (id, future) in written {
            do {
                results.append(.success(try await reply(id: id, future)))
            } catch {
                results.append(.failure(error))
            }
        }
        return results
    }

    private func write(_ command: RedisCommand, timeout: Duration, isBlocking: Bool) -> (UInt64, EventLoopFuture<RedisValue>) {
        let id = nextCommandID.wrappingAdd(1, ordering: .relaxed).newValue
        let promise = channel.eventLoop.makePromise(of: RedisValue.self)
        var buffer = channel.allocator.buffer(capacity: 64)
        command.encode(into: &buffer)
        var request = RedisRequest(
            id: id,
            encoded: buffer,
            deadline: .now() + .nanoseconds(Int64(timeout.nanoseconds)),
            isBlocking: isBlocking,
            promise: promise
        )
        if isSubscriber, command.name == "SUNSUBSCRIBE", case .string(let channel) = command.arguments.first {
            request.shardUnsubscribe = channel
        }
        // If the channel closed before the request reaches the handler (its pipeline may already be
        // torn down), the write fails and nothing else would ever complete the reply: fail it here.
        // A promise completes once, so a reply or an earlier failure wins.
        let written = channel.eventLoop.makePromise(of: Void.self)
        written.futureResult.whenFailure { _ in promise.fail(RedisClientError.connectionClosed) }
        channel.write(request, promise: written)
        return (id, promise.futureResult)
    }

    /// Waits for a written command's reply; cancelling the caller abandons it (see the state machine).
    private func reply(id: UInt64, _ future: EventLoopFuture<RedisValue>) async throws -> RedisValue {
        let handler = self.handler
        let eventLoop = channel.eventLoop
        let value = try await withTaskCancellationHandler {
            try await future.get()
        } onCancel: {
            eventLoop.execute { handler.value.cancel(id: id) }
        }
        if case .error(let message) = value { throw RedisServerError(message: message) }
        return value
    }

    public func close() {
        channel.close(promise: nil)
    }

    private static func makeSSLContext(_ configuration: RedisConfiguration) throws -> NIOSSLContext {
        var tls = TLSConfiguration.makeClientConfiguration()
        if let file = configuration.tlsCAFile {
            tls.trustRoots = .file(file)
        }
        if configuration.tlsSkipHostnameVerification {
            tls.certificateVerification = .noHostnameVerification
        }
        do {
            return try NIOSSLContext(configuration: tls)
        } catch {
            throw RedisClientError.invalidConfiguration("TLS: \(error)")
        }
    }

    private static func isIPAddress(_ host: String) -> Bool {
        (try? SocketAddress(ipAddress: host, port: 0)) != nil
    }
}
