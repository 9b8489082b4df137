import Testing

@testable import SkiffAPI

/// The fast path's reading of chunked bodies: the end found exactly, in one read or byte by byte,
/// and `unframeable` at the first doubt, so it never disagrees with NIO's decoder.
@Suite("Chunked body framing")
struct ChunkedBodyFramingTests {
    /// Scans `text` in pieces of `step` bytes; the body's length if it ended.
    private func scan(_ text: String, step: Int) -> ChunkedBodyFraming.Outcome {
        var framing = ChunkedBodyFraming()
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let piece = Array(bytes[offset..<min(bytes.count, offset + step)])
            let outcome = piece.withUnsafeBytes { framing.scan($0) }
            switch outcome {
            case .needsMore: offset += piece.count
            case .ended(let count): return .ended(bytes: offset + count)
            case .unframeable: return .unframeable
            }
        }
        return .needsMore
    }

    @Test(arguments: [
        "0\r\n\r\n",
        "5\r\nhello\r\n0\r\n\r\n",
        "1\r\n[\r\nA\r\n\"0123456\",\r\n3\r\n\"x\"\r\n1\r\n]\r\n0\r\n\r\n",
        "a\r\n0123456789\r\n0\r\n\r\n",
        "0005\r\nhello\r\n000\r\n\r\n",
        "4\r\n\r\n\r\n\r\n0\r\n\r\n",
    ])
    func aStrictBodyEndsWhereItsLastChunkEnds(body: String) {
        let next = "GET /api/q HTTP/1.1\r\n\r\n"
        for step in [1, 2, 3, 7, 1000] {
            #expect(scan(body + next, step: step) == .ended(bytes: body.utf8.count), "\(body.debugDescription) in pieces of \(step)")
            #expect(scan(body, step: step) == .ended(bytes: body.utf8.count))
        }
        // Every proper prefix needs more.
        for length in 0..<body.utf8.count {
            #expect(scan(String(decoding: Array(body.utf8).prefix(length), as: UTF8.self), step: 1) == .needsMore)
        }
    }

    @Test(arguments: [
        "5;name=value\r\nhello\r\n0\r\n\r\n",
        "5 \r\nhello\r\n0\r\n\r\n",
        " 5\r\nhello\r\n0\r\n\r\n",
        "5\nhello\r\n0\r\n\r\n",
        "5\r\nhelloX\r\n0\r\n\r\n",
        "5\r\nhello\n0\r\n\r\n",
        "\r\nhello\r\n0\r\n\r\n",
        "g\r\n",
        "-1\r\n",
        "0x5\r\nhello\r\n0\r\n\r\n",
        "123456789\r\n",
        "0\r\nTrailer: x\r\n\r\n",
        "0\r\n\n",
    ])
    func anythingOutsideTheStrictGrammarIsUnframeable(body: String) {
        for step in [1, 1000] {
            #expect(scan(body, step: step) == .unframeable, "\(body.debugDescription) in pieces of \(step)")
        }
    }
}
