import Logging
import NIOCore
import NIOEmbedded
import Testing

@testable import SkiffRedis

@Suite("Command handler")
struct RedisCommandHandlerTests {
    private func makeChannel() throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(RESPDecoder()))
        try channel.pipeline.syncOperations.addHandler(RedisCommandHandler(logger: Logger(label: "test")))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 6379)).wait()
        return channel
    }

    private func request(
        _ command: RedisCommand, id: UInt64, on channel: EmbeddedChannel, timeout: TimeAmount = .seconds(1), blocking: Bool = false
    )
        -> EventLoopFuture<RedisValue>
    {
        var buffer = ByteBuffer()
        command.encode(into: &buffer)
        let promise = channel.eventLoop.makePromise(of: RedisValue.self)
        channel.write(
            RedisRequest(id: id, encoded: buffer, deadline: channel.eventLoop.now + timeout, isBlocking: blocking, promise: promise),
            promise: nil
        )
        return promise.futureResult
    }

    @Test func pipelinedCommandsShareOneFlushAndGetTheirOwnReplies() throws {
        let channel = try makeChannel()
        let first = request(RedisCommand("INCR", "a"), id: 1, on: channel)
        let second = request(RedisCommand("GET", "b"), id: 2, on: channel)
        // Nothing is flushed until the event loop runs the scheduled flush.
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil)
        channel.embeddedEventLoop.run()
        let written1 = try #require(try channel.readOutbound(as: ByteBuffer.self))
        let written2 = try #require(try channel.readOutbound(as: ByteBuffer.self))
        #expect(String(buffer: written1) == "*2\r\n$4\r\nINCR\r\n$1\r\na\r\n")
        #expect(String(buffer: written2) == "*2\r\n$3\r\nGET\r\n$1\r\nb\r\n")
        try channel.writeInbound(ByteBuffer(string: ":5\r\n$2\r\nhi\r\n"))
        #expect(try first.wait() == .integer(5))
        #expect(try second.wait() == .bulkString(ByteBuffer(string: "hi")))
    }

    @Test func deadlineClosesTheConnection() throws {
        let channel = try makeChannel()
        let future = request(RedisCommand("GET", "slow"), id: 1, on: channel, timeout: .milliseconds(100))
        channel.embeddedEventLoop.run()
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(101))
        #expect(throws: RedisClientError.timeout) { try future.wait() }
        #expect(!channel.isActive)
    }

    @Test func cancelledBlockingCommandClosesTheConnection() throws {
        let channel = try makeChannel()
        let future = request(RedisCommand("BLPOP", "q", "5"), id: 9, on: channel, timeout: .seconds(6), blocking: true)
        channel.embeddedEventLoop.run()
        let handler = try channel.pipeline.syncOperations.handler(type: RedisCommandHandler.self)
        handler.cancel(id: 9)
        #expect(throws: RedisClientError.cancelled) { try future.wait() }
        #expect(!channel.isActive)
    }

    @Test func closingFailsPendingCommands() throws {
        let channel = try makeChannel()
        let future = request(RedisCommand("GET", "x"), id: 1, on: channel)
        channel.embeddedEventLoop.run()
        try channel.close().wait()
        #expect(throws: RedisClientError.connectionClosed) { try future.wait() }
    }
}
