import HTTPTypes
import NIOCore
import NIOEmbedded
import NIOHTTPTypes
import Testing

@testable import SkiffAPI

@Suite("Response flush coalescer")
struct ResponseFlushCoalescerTests {
    private func channel() throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(ResponseFlushCoalescer())
        return channel
    }

    /// Writes and flushes a part; its write promise completes only once the part is really flushed.
    private func send(_ channel: EmbeddedChannel, _ part: HTTPResponsePart) {
        channel.writeAndFlush(part, promise: nil)
    }

    private func flushedParts(_ channel: EmbeddedChannel) throws -> [HTTPResponsePart] {
        var parts: [HTTPResponsePart] = []
        while let part = try channel.readOutbound(as: HTTPResponsePart.self) { parts.append(part) }
        return parts
    }

    @Test func aSmallResponseLeavesInOneFlushAtItsEnd() throws {
        let channel = try channel()
        defer { _ = try? channel.finish() }
        send(channel, HTTPResponsePart.head(HTTPResponse(status: .ok)))
        send(channel, HTTPResponsePart.body(ByteBuffer(string: "{}")))
        #expect(try flushedParts(channel).isEmpty)
        send(channel, HTTPResponsePart.end(nil))
        #expect(try flushedParts(channel).count == 3)
    }

    @Test func aLargeBodyIsFlushedAsItGoes() throws {
        let channel = try channel()
        defer { _ = try? channel.finish() }
        send(channel, HTTPResponsePart.head(HTTPResponse(status: .ok)))
        let chunk = ByteBuffer(repeating: UInt8(ascii: "x"), count: ResponseFlushCoalescer.flushThresholdBytes)
        send(channel, HTTPResponsePart.body(chunk))
        // Past the threshold: head and body are on their way before the end is written.
        #expect(try flushedParts(channel).count == 2)
        send(channel, HTTPResponsePart.end(nil))
        #expect(try flushedParts(channel).count == 1)
    }

    @Test func anInformationalHeadIsNotHeldBack() throws {
        let channel = try channel()
        defer { _ = try? channel.finish() }
        send(channel, HTTPResponsePart.head(HTTPResponse(status: .continue)))
        #expect(try flushedParts(channel).count == 1)
    }
}
