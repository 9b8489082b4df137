import HTTPTypes
import NIOCore
import NIOEmbedded
import NIOHTTPTypes
import Testing

@testable import SkiffAPI

/// The write notification a routed delivery waits on before it deletes its message.
@Suite("Response flush coalescer")
struct ResponseFlushCoalescerTests {
    private func response(token: UInt64?) -> HTTPResponse {
        var head = HTTPResponse(status: .ok)
        head.headerFields[.contentLength] = "2"
        if let token { head.headerFields[.skiffWriteToken] = String(token) }
        return head
    }

    /// Outcome of a future, read synchronously on the embedded loop.
    private final class Outcome: @unchecked Sendable {
        var value: Result<Void, any Error>?
        init(_ future: EventLoopFuture<Void>) { future.whenComplete { self.value = $0 } }
    }

    /// A connected channel with the coalescer, and a waiter registered for a new token.
    private func connectedWaiter() throws -> (EmbeddedChannel, UInt64, Outcome) {
        let channel = EmbeddedChannel(handler: ResponseFlushCoalescer())
        _ = channel.connect(to: try .init(ipAddress: "127.0.0.1", port: 1))
        channel.embeddedEventLoop.run()
        try #require(channel.isActive)
        let token = ResponseFlushCoalescer.makeToken()
        return (channel, token, Outcome(try ResponseFlushCoalescer.registerWriteWaiter(token: token, on: channel)))
    }

    @Test func theWaiterCompletesWithTheWriteOfItsResponsesEndAndTheTokenNeverLeaves() throws {
        let (channel, token, outcome) = try connectedWaiter()

        // An earlier response without a token ends first: it must not complete the waiter.
        // (The coalescer holds a flush inside a response, so no `writeOutbound`, which waits for one.)
        channel.write(HTTPResponsePart.head(response(token: nil)), promise: nil)
        channel.write(HTTPResponsePart.end(nil), promise: nil)
        channel.flush()
        #expect(outcome.value == nil)

        channel.write(HTTPResponsePart.head(response(token: token)), promise: nil)
        channel.write(HTTPResponsePart.body(ByteBuffer(string: "42")), promise: nil)
        channel.write(HTTPResponsePart.end(nil), promise: nil)
        // Written but not flushed: the bytes have not reached the socket.
        #expect(outcome.value == nil)
        channel.flush()
        #expect(try #require(outcome.value).isSuccess)

        var heads: [HTTPResponse] = []
        while let part = try channel.readOutbound(as: HTTPResponsePart.self) {
            if case .head(let head) = part { heads.append(head) }
        }
        #expect(heads.count == 2)
        #expect(heads.allSatisfy { $0.headerFields[.skiffWriteToken] == nil })
        _ = try channel.finish()
    }

    @Test func theWaiterFailsWhenTheConnectionClosesFirst() throws {
        let (channel, token, outcome) = try connectedWaiter()
        channel.write(HTTPResponsePart.head(response(token: token)), promise: nil)
        _ = channel.close()
        channel.embeddedEventLoop.run()
        #expect(try #require(outcome.value).isFailure)
        // A closed connection gives no waiter that could succeed.
        if let late = try? ResponseFlushCoalescer.registerWriteWaiter(token: ResponseFlushCoalescer.makeToken(), on: channel) {
            #expect(try #require(Outcome(late).value).isFailure)
        }
    }
}

extension Result {
    fileprivate var isSuccess: Bool { if case .success = self { true } else { false } }
    fileprivate var isFailure: Bool { !isSuccess }
}
