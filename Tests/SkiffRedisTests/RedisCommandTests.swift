import NIOCore
import Testing

@testable import SkiffRedis

@Suite("Command encoding")
struct RedisCommandTests {
    private func encode(_ command: RedisCommand) -> String {
        var buffer = ByteBuffer()
        command.encode(into: &buffer)
        return String(buffer: buffer)
    }

    @Test func encodesArgumentsWithExplicitLengths() {
        #expect(encode(RedisCommand("SET", "key", "value")) == "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n")
        #expect(encode(RedisCommand("INCRBY", "n", .integer(-12))) == "*3\r\n$6\r\nINCRBY\r\n$1\r\nn\r\n$3\r\n-12\r\n")
        #expect(encode(RedisCommand("PING")) == "*1\r\n$4\r\nPING\r\n")
    }

    @Test func isBinarySafe() {
        let binary = ByteBuffer(bytes: [0x00, 0x0D, 0x0A, 0x24, 0xFF])
        var buffer = ByteBuffer()
        RedisCommand("SET", "k", .bytes(binary), .string("")).encode(into: &buffer)
        let expected = ByteBuffer(string: "*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\n") + binary + ByteBuffer(string: "\r\n$0\r\n\r\n")
        #expect(buffer == expected)
    }

    @Test func utf8LengthsAreInBytes() {
        #expect(encode(RedisCommand("SET", "ключ", "é")) == "*3\r\n$3\r\nSET\r\n$8\r\nключ\r\n$2\r\né\r\n")
    }
}
