import NIOCore

/// A body to upload: `bytes` in chunks of `chunkBytes`, failing with ``Interrupted`` once
/// `failAfterBytes` have been handed out (an upload whose client went away).
struct TestBody: AsyncSequence, Sendable {
    typealias Element = ByteBuffer

    struct Interrupted: Error, Equatable {}

    let bytes: ByteBuffer
    var chunkBytes = 64 * 1024
    var failAfterBytes: Int?

    init(_ bytes: ByteBuffer, chunkBytes: Int = 64 * 1024, failAfterBytes: Int? = nil) {
        self.bytes = bytes
        self.chunkBytes = chunkBytes
        self.failAfterBytes = failAfterBytes
    }

    /// `count` random bytes.
    static func random(_ count: Int) -> ByteBuffer {
        var generator = SystemRandomNumberGenerator()
        var buffer = ByteBuffer()
        buffer.reserveCapacity(count)
        var remaining = count
        while remaining > 0 {
            var word = generator.next() as UInt64
            let take = Swift.min(8, remaining)
            withUnsafeBytes(of: &word) { buffer.writeBytes($0.prefix(take)) }
            remaining -= take
        }
        return buffer
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(body: self) }

    struct AsyncIterator: AsyncIteratorProtocol {
        var body: TestBody
        var offset = 0

        mutating func next() async throws -> ByteBuffer? {
            if let failAfter = body.failAfterBytes, offset >= failAfter { throw Interrupted() }
            guard offset < body.bytes.readableBytes else { return nil }
            var length = Swift.min(body.chunkBytes, body.bytes.readableBytes - offset)
            if let failAfter = body.failAfterBytes { length = Swift.min(length, Swift.max(failAfter - offset, 1)) }
            let chunk = body.bytes.getSlice(at: body.bytes.readerIndex + offset, length: length)!
            offset += length
            // Let the store's other work (an HTTP client's writes) interleave, as a socket would.
            await Task.yield()
            return chunk
        }
    }
}
