import NIOCore

/// Splits a batch body into its messages without building objects: each message is a zero-copy
/// slice of the body, validated on its own so a bad one can be named by its index.
enum BatchBody {
    /// Why a batch body was refused, as the 400 answer says it.
    struct Failure: Error {
        let message: String
    }

    /// The elements of a top-level JSON array, each validated.
    static func jsonArray(_ body: ByteBuffer, maximumCount: Int) throws(Failure) -> [ByteBuffer] {
        let ranges: [Range<Int>]? = body.withUnsafeReadableBytes { bytes in elementRanges(bytes) }
        guard let ranges else { throw Failure(message: "body must be a JSON array of messages") }
        return try slices(body, ranges: ranges, maximumCount: maximumCount)
    }

    /// The lines of an NDJSON body (blank lines skipped), each validated.
    static func ndjson(_ body: ByteBuffer, maximumCount: Int) throws(Failure) -> [ByteBuffer] {
        let ranges: [Range<Int>] = body.withUnsafeReadableBytes { bytes in
            var ranges: [Range<Int>] = []
            var start = 0
            for index in 0...bytes.count where index == bytes.count || bytes[index] == UInt8(ascii: "\n") {
                let line = start..<index
                start = index + 1
                if bytes[line].contains(where: { !isWhitespace($0) }) { ranges.append(line) }
            }
            return ranges
        }
        return try slices(body, ranges: ranges, maximumCount: maximumCount)
    }

    private static func slices(_ body: ByteBuffer, ranges: [Range<Int>], maximumCount: Int) throws(Failure) -> [ByteBuffer] {
        guard (1...maximumCount).contains(ranges.count) else {
            throw Failure(message: "a batch holds 1 to \(maximumCount) messages; this one has \(ranges.count)")
        }
        var messages: [ByteBuffer] = []
        messages.reserveCapacity(ranges.count)
        for (index, range) in ranges.enumerated() {
            let slice = body.getSlice(at: body.readerIndex + range.lowerBound, length: range.count)!
            if let error = JSONValidator.validate(slice) {
                throw Failure(message: "message \(index) is not valid JSON: \(error)")
            }
            messages.append(slice)
        }
        return messages
    }

    private static func isWhitespace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D
    }

    /// Byte ranges of the top-level array's elements, found by tracking strings and nesting only;
    /// `nil` when the body is not an array. The elements are validated afterwards.
    private static func elementRanges(_ bytes: UnsafeRawBufferPointer) -> [Range<Int>]? {
        var index = 0
        while index < bytes.count, isWhitespace(bytes[index]) { index += 1 }
        guard index < bytes.count, bytes[index] == UInt8(ascii: "[") else { return nil }
        index += 1
        var ranges: [Range<Int>] = []
        var start = index
        var depth = 0
        var inString = false
        var closed = false
        while index < bytes.count {
            let byte = bytes[index]
            if inString {
                if byte == UInt8(ascii: "\\") {
                    index += 1
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                }
            } else {
                switch byte {
                case UInt8(ascii: "\""): inString = true
                case UInt8(ascii: "["), UInt8(ascii: "{"): depth += 1
                case UInt8(ascii: "]") where depth == 0, UInt8(ascii: ",") where depth == 0:
                    let element = trimmed(start..<index, bytes)
                    if byte == UInt8(ascii: ",") || !element.isEmpty || !ranges.isEmpty {
                        ranges.append(element)
                    }
                    start = index + 1
                    if byte == UInt8(ascii: "]") { closed = true }
                case UInt8(ascii: "]"), UInt8(ascii: "}"): depth -= 1
                default: break
                }
            }
            index += 1
            if closed { break }
        }
        guard closed else { return nil }
        while index < bytes.count, isWhitespace(bytes[index]) { index += 1 }
        return index == bytes.count ? ranges : nil
    }

    private static func trimmed(_ range: Range<Int>, _ bytes: UnsafeRawBufferPointer) -> Range<Int> {
        var lower = range.lowerBound
        var upper = range.upperBound
        while lower < upper, isWhitespace(bytes[lower]) { lower += 1 }
        while upper > lower, isWhitespace(bytes[upper - 1]) { upper -= 1 }
        return lower..<upper
    }
}
