import NIOCore
import NIOEmbedded
import NIOTestUtils
import Testing

@testable import SkiffRedis

@Suite("RESP decoder")
struct RESPDecoderTests {
    @Test func decodesEveryReplyTypeByteByByteAndInChunks() throws {
        let binary = ByteBuffer(bytes: [0x00, 0x0D, 0x0A, 0xFF, 0x7C])
        let pairs: [(ByteBuffer, [RedisValue])] = [
            (ByteBuffer(string: "+OK\r\n"), [.simpleString("OK")]),
            (ByteBuffer(string: "-ERR wrong\r\n"), [.error("ERR wrong")]),
            (ByteBuffer(string: ":-42\r\n"), [.integer(-42)]),
            (ByteBuffer(string: "$5\r\nhello\r\n"), [.bulkString(ByteBuffer(string: "hello"))]),
            (ByteBuffer(string: "$0\r\n\r\n"), [.bulkString(ByteBuffer())]),
            (ByteBuffer(string: "$-1\r\n"), [.null]),
            (ByteBuffer(string: "*-1\r\n"), [.null]),
            (ByteBuffer(string: "*0\r\n"), [.array([])]),
            (
                ByteBuffer(string: "*3\r\n:1\r\n*2\r\n+a\r\n$-1\r\n$5\r\n") + binary + ByteBuffer(string: "\r\n"),
                [.array([.integer(1), .array([.simpleString("a"), .null]), .bulkString(binary)])]
            ),
            // Several replies in one read must all be handed on.
            (ByteBuffer(string: "+A\r\n+B\r\n:3\r\n"), [.simpleString("A"), .simpleString("B"), .integer(3)]),
        ]
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: pairs) { RESPDecoder() }
    }

    @Test func largeBulkStringSurvivesArbitrarySplits() throws {
        let payload = ByteBuffer(repeating: UInt8(ascii: "x"), count: 20_000)
        let input = ByteBuffer(string: "$20000\r\n") + payload + ByteBuffer(string: "\r\n")
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: [(input, [.bulkString(payload)])]) { RESPDecoder() }
    }

    @Test func protocolErrorIsFatal() throws {
        let decoder = RESPDecoder()
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(decoder))
        #expect(throws: RedisClientError.self) {
            try channel.writeInbound(ByteBuffer(string: "!not resp\r\n"))
        }
    }
}

extension ByteBuffer {
    static func + (lhs: ByteBuffer, rhs: ByteBuffer) -> ByteBuffer {
        var result = lhs
        var rhs = rhs
        result.writeBuffer(&rhs)
        return result
    }
}
