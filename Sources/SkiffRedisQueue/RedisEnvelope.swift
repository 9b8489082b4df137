import NIOCore
import SkiffQueue

/// A message as Redis stores it, one string per message:
///
///     2|<seq>|<id>|<enqueuedAtMs>|<priority>|<receiveCount>|<claims>|<firstReceivedMs>|<lastReceivedMs>|<body>
///
/// or, for a message sent with a trace context (``MessageTraceContext/stored``), version 3 with
/// the context's length and the context itself before the body:
///
///     3|<seq>|…|<lastReceivedMs>|<traceLength>|<trace><body>
///
/// The scripts write and rewrite envelopes (a claim counts a receive and a claim, a return keeps
/// the rest), so the format has a Lua codec (`parse`/`build` in Lua/library.lua) beside this one;
/// ``RedisEnvelope`` is the reference, and EnvelopeCodecTests run both on the same envelopes
/// inside Redis (parse-build round trips either way, random fields and bodies) so that they
/// cannot drift apart unnoticed. In the delayed set the sequence number is zero-padded to 16
/// digits, so that messages due at the same time sort by it (`padded`).
struct RedisEnvelope: Equatable, Sendable {
    var sequence: Int64
    var id: String
    var enqueuedAtMilliseconds: Int64
    var priority: Int
    var receiveCount: Int
    /// Claims so far: the claim token of the current one (the fence of a stale receipt).
    var claims: Int
    var firstReceivedAtMilliseconds: Int64
    var lastReceivedAtMilliseconds: Int64
    /// As posted, byte for byte (may contain `|`).
    var body: ByteBuffer
    /// ``MessageTraceContext/stored``, as the send gave it; `nil` in a version 2 envelope.
    var traceContext: String? = nil

    /// The envelope's bytes; `padded` for the delayed set.
    func encoded(padded: Bool = false) -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: 64 + id.utf8.count + (traceContext?.utf8.count ?? 0) + body.readableBytes)
        buffer.writeStaticString(traceContext == nil ? "2|" : "3|")
        let sequence = String(self.sequence)
        if padded, sequence.utf8.count < 16 { buffer.writeString(String(repeating: "0", count: 16 - sequence.utf8.count)) }
        buffer.writeString(sequence)
        for field in [id, String(enqueuedAtMilliseconds), String(priority), String(receiveCount), String(claims)] {
            buffer.writeStaticString("|")
            buffer.writeString(field)
        }
        buffer.writeStaticString("|")
        buffer.writeString(String(firstReceivedAtMilliseconds))
        buffer.writeStaticString("|")
        buffer.writeString(String(lastReceivedAtMilliseconds))
        buffer.writeStaticString("|")
        if let traceContext {
            buffer.writeString(String(traceContext.utf8.count))
            buffer.writeStaticString("|")
            buffer.writeString(traceContext)
        }
        var body = self.body
        buffer.writeBuffer(&body)
        return buffer
    }

    /// Reads an envelope; the body is a zero-copy slice. `nil` if it is not one.
    static func parse(_ envelope: ByteBuffer) -> RedisEnvelope? {
        let view = envelope.readableBytesView
        guard let version = view.first, version == UInt8(ascii: "2") || version == UInt8(ascii: "3") else { return nil }
        let fieldCount = version == UInt8(ascii: "3") ? 10 : 9
        var fields: [Substring] = []
        fields.reserveCapacity(fieldCount)
        var start = view.startIndex
        var index = view.startIndex
        while fields.count < fieldCount, index < view.endIndex {
            if view[index] == UInt8(ascii: "|") {
                fields.append(Substring(decoding: view[start..<index], as: UTF8.self))
                start = index + 1
            }
            index += 1
        }
        guard fields.count == fieldCount, fields[0].count == 1, let sequence = Int64(fields[1]), !fields[2].isEmpty,
            let enqueuedAt = Int64(fields[3]), let priority = Int(fields[4]), let receiveCount = Int(fields[5]), let claims = Int(fields[6]),
            let first = Int64(fields[7]), let last = Int64(fields[8])
        else { return nil }
        var bodyOffset = start - view.startIndex
        var traceContext: String?
        if fieldCount == 10 {
            // Digits only, as Lua's `%d+` reads them.
            guard fields[9].utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }), let length = Int(fields[9]), length > 0,
                length <= envelope.readableBytes - bodyOffset, let trace = envelope.getString(at: envelope.readerIndex + bodyOffset, length: length)
            else { return nil }
            traceContext = trace
            bodyOffset += length
        }
        guard let body = envelope.getSlice(at: envelope.readerIndex + bodyOffset, length: envelope.readableBytes - bodyOffset) else { return nil }
        return RedisEnvelope(
            sequence: sequence,
            id: String(fields[2]),
            enqueuedAtMilliseconds: enqueuedAt,
            priority: priority,
            receiveCount: receiveCount,
            claims: claims,
            firstReceivedAtMilliseconds: first,
            lastReceivedAtMilliseconds: last,
            body: body,
            traceContext: traceContext
        )
    }

    /// The message a receive hands out, and its claim token. `history` is the dead-letter record
    /// `<source>|<receiveCount>|<first>|<last>|<reason>` kept beside a dead-lettered message.
    func message(lastError: String?, history: String?) -> (QueueMessage, claimToken: Int) {
        let message = QueueMessage(
            id: id,
            body: body,
            enqueuedAtMilliseconds: enqueuedAtMilliseconds,
            receiveCount: receiveCount,
            priority: priority,
            lastError: lastError,
            deadLetter: history.flatMap(Self.parseHistory),
            traceContext: traceContext.flatMap { MessageTraceContext(stored: $0) }
        )
        return (message, claims)
    }

    static func parseHistory(_ record: String) -> DeadLetterHistory? {
        let parts = record.split(separator: "|", maxSplits: 4, omittingEmptySubsequences: false)
        guard parts.count == 5, let source = QueueName(stored: parts[0]), let count = Int(parts[1]), let first = Int64(parts[2]), let last = Int64(parts[3])
        else { return nil }
        return DeadLetterHistory(
            sourceQueue: source,
            receiveCount: count,
            firstReceivedAtMilliseconds: first,
            lastReceivedAtMilliseconds: last,
            lastError: parts[4].isEmpty ? nil : String(parts[4])
        )
    }
}
