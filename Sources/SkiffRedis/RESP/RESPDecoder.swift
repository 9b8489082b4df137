import CHiredis
public import NIOCore

/// Turns bytes from Redis into ``RedisValue``s with hiredis's reply reader.
///
/// hiredis keeps its own buffer, so every call feeds all readable bytes and then hands on every
/// complete reply the reader holds: NIO does not call `decode` again for bytes already consumed.
/// A protocol error is fatal to the connection.
public final class RESPDecoder: ByteToMessageDecoder {
    public typealias InboundOut = RedisValue

    private let reader: UnsafeMutablePointer<redisReader>

    public init() {
        guard let reader = redisReaderCreate() else { fatalError("hiredis could not allocate a reader") }
        // Keep hiredis from trimming its buffer after every reply: it frees unused space past this size.
        reader.pointee.maxbuf = 64 * 1024
        self.reader = reader
    }

    deinit {
        redisReaderFree(reader)
    }

    public func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        try feed(&buffer)
        while let value = try nextReply(allocator: context.channel.allocator) {
            context.fireChannelRead(wrapInboundOut(value))
        }
        return .needMoreData
    }

    public func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        try decode(context: context, buffer: &buffer)
    }

    private func feed(_ buffer: inout ByteBuffer) throws {
        let count = buffer.readableBytes
        guard count > 0 else { return }
        let status = buffer.readWithUnsafeReadableBytes { bytes -> (Int, Int32) in
            let status = redisReaderFeed(reader, bytes.baseAddress?.assumingMemoryBound(to: CChar.self), bytes.count)
            return (bytes.count, status)
        }
        if status != REDIS_OK { throw RedisClientError.protocolError(readerError()) }
    }

    /// The next complete reply, or `nil` when the reader needs more bytes.
    func nextReply(allocator: ByteBufferAllocator) throws -> RedisValue? {
        var raw: UnsafeMutableRawPointer?
        guard redisReaderGetReply(reader, &raw) == REDIS_OK else {
            throw RedisClientError.protocolError(readerError())
        }
        guard let raw else { return nil }
        let reply = raw.assumingMemoryBound(to: redisReply.self)
        defer { freeReplyObject(raw) }  // frees the whole tree; only the top-level reply is freed by us
        return Self.convert(reply, allocator: allocator)
    }

    private func readerError() -> String {
        withUnsafePointer(to: &reader.pointee.errstr) { pointer in
            pointer.withMemoryRebound(to: CChar.self, capacity: 128) { String(cString: $0) }
        }
    }

    private static func convert(_ reply: UnsafeMutablePointer<redisReply>, allocator: ByteBufferAllocator) -> RedisValue {
        let r = reply.pointee
        switch r.type {
        case REDIS_REPLY_STRING:
            var buffer = allocator.buffer(capacity: r.len)
            if r.len > 0, let str = r.str {
                buffer.writeBytes(UnsafeRawBufferPointer(start: str, count: r.len))
            }
            return .bulkString(buffer)
        case REDIS_REPLY_STATUS:
            return .simpleString(string(r))
        case REDIS_REPLY_ERROR:
            return .error(string(r))
        case REDIS_REPLY_INTEGER:
            return .integer(r.integer)
        case REDIS_REPLY_ARRAY:
            var elements: [RedisValue] = []
            elements.reserveCapacity(r.elements)
            for index in 0..<r.elements {
                if let element = r.element[index] {
                    elements.append(convert(element, allocator: allocator))
                } else {
                    elements.append(.null)
                }
            }
            return .array(elements)
        default:
            return .null
        }
    }

    private static func string(_ r: redisReply) -> String {
        guard let str = r.str, r.len > 0 else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: str, count: r.len), as: UTF8.self)
    }
}
