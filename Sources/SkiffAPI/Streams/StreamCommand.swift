import Foundation
import NIOCore
import SkiffQueue

/// One frame a client sends on a stream, parsed: what it asks and the tag (`ref`) its answer
/// carries back. A publish keeps its body's bytes exactly as sent.
struct StreamCommand: Sendable {
    enum Operation: Sendable {
        case publish(body: ByteBuffer, options: SendOptions)
        /// Widens the delivery window by this many messages.
        case credit(Int)
        case ack(Receipt)
        case nack(Receipt, delay: Duration?, reason: String?)
        case extend(Receipt, timeout: Duration)
    }

    var operation: Operation
    /// The client's tag, as raw JSON (a string or a number), echoed in the answer.
    var ref: ByteBuffer?

    /// Why a frame cannot be carried out: answered with an error frame, the stream stays open.
    struct Refusal: Error, Equatable {
        var status: Int
        var message: String
        /// The frame's `ref`, when it could be read.
        var ref: ByteBuffer?
    }

    /// The longest `ref` a client may tag a frame with.
    static var maximumReferenceBytes: Int { 256 }
    /// The largest window a stream can ask for, so a client cannot make a replica hold an
    /// unbounded number of leases (each message in the window may be MAX_MESSAGE_BYTES).
    static var maximumCredit: Int { 10_000 }

    /// Parses one text frame. `maximumBodyBytes` is MAX_MESSAGE_BYTES: a larger body is refused
    /// with 413 as a POST's is.
    static func parse(_ frame: ByteBuffer, maximumBodyBytes: Int) throws(Refusal) -> StreamCommand {
        let found: [JSONValidator.Member]?
        do throws(JSONValidationError) {
            found = try JSONValidator.objectMembers(frame)
        } catch {
            throw Refusal(status: 400, message: "frame is not valid JSON: \(error)")
        }
        guard let members = found else {
            throw Refusal(status: 400, message: #"a frame must be one JSON object such as {"op":"ack","receipt":"…"}"#)
        }
        var fields = Fields(frame: frame)
        for member in members {
            var key = frame.getString(at: frame.readerIndex + member.key.lowerBound, length: member.key.count) ?? ""
            // A key written with escapes is the key it decodes to (`"\u006fp"` is `op`).
            if key.utf8.contains(UInt8(ascii: "\\")),
                let decoded = try? JSONDecoder().decode(String.self, from: Data(("\"" + key + "\"").utf8))
            {
                key = decoded
            }
            // Unknown fields are ignored, as unknown query parameters are, so that a newer
            // client's extra fields do not break an older server. A repeated field is ambiguous.
            guard fields.values[key] == nil else { throw Refusal(status: 400, message: "field '\(key)' appears twice") }
            fields.values[key] = member.value
        }
        let ref = try fields.reference()
        do throws(Refusal) {
            return StreamCommand(operation: try operation(fields, maximumBodyBytes: maximumBodyBytes), ref: ref)
        } catch {
            throw Refusal(status: error.status, message: error.message, ref: ref)
        }
    }

    private static func operation(_ fields: Fields, maximumBodyBytes: Int) throws(Refusal) -> Operation {
        guard let op = try fields.string("op") else {
            throw Refusal(status: 400, message: "field 'op' is required: publish, credit, ack, nack or extend")
        }
        switch op {
        case "publish":
            guard let body = fields.raw("body") else { throw Refusal(status: 400, message: "a publish needs a 'body' (any JSON value)") }
            guard body.readableBytes <= maximumBodyBytes else {
                throw Refusal(status: 413, message: "body is larger than MAX_MESSAGE_BYTES (\(maximumBodyBytes) bytes)")
            }
            var options = SendOptions()
            if let key = try fields.string("key") {
                guard (1...SendOptions.maximumIdempotencyKeyLength).contains(key.utf8.count) else {
                    throw Refusal(status: 400, message: "key must be 1 to \(SendOptions.maximumIdempotencyKeyLength) bytes")
                }
                options.idempotencyKey = key
            }
            if let delay = try fields.integer("delay", range: 0...QueueSettings.maximumRetentionMilliseconds) {
                options.delay = .milliseconds(delay)
            }
            if let priority = try fields.integer("priority", range: 0...Int64(SendOptions.maximumPriority)) {
                options.priority = Int(priority)
            }
            // As a POST's headers: kept with the message; a malformed one is ignored.
            if let parent = try fields.string("traceparent") {
                options.traceContext = MessageTraceContext(traceparent: parent, tracestate: try fields.string("tracestate"))
            }
            return .publish(body: body, options: options)
        case "credit":
            guard let count = try fields.integer("n", range: 1...Int64(maximumCredit)) else {
                throw Refusal(status: 400, message: "a credit needs 'n', an integer from 1 to \(maximumCredit)")
            }
            return .credit(Int(count))
        case "ack":
            return .ack(try fields.receipt())
        case "nack":
            let receipt = try fields.receipt()
            let delay = try fields.integer("delay", range: 0...QueueSettings.maximumRetentionMilliseconds).map { Duration.milliseconds($0) }
            let reason = try fields.string("reason")
            if let reason, reason.utf8.count > 1024 { throw Refusal(status: 400, message: "reason must be a string of at most 1024 bytes") }
            return .nack(receipt, delay: delay, reason: reason)
        case "extend":
            let receipt = try fields.receipt()
            guard let milliseconds = try fields.integer("ms", range: 0...QueueSettings.maximumVisibilityTimeoutMilliseconds) else {
                throw Refusal(status: 400, message: "an extend needs 'ms', from 0 to \(QueueSettings.maximumVisibilityTimeoutMilliseconds)")
            }
            return .extend(receipt, timeout: .milliseconds(milliseconds))
        default:
            throw Refusal(status: 400, message: "unknown op '\(op)': use publish, credit, ack, nack or extend")
        }
    }

    /// A frame's members by name, read on demand.
    private struct Fields {
        let frame: ByteBuffer
        var values: [String: Range<Int>] = [:]

        init(frame: ByteBuffer) { self.frame = frame }

        /// The value's bytes as sent; `nil` when absent.
        func raw(_ name: String) -> ByteBuffer? {
            guard let range = values[name] else { return nil }
            return frame.getSlice(at: frame.readerIndex + range.lowerBound, length: range.count)
        }

        /// `nil` when absent or JSON `null`.
        func string(_ name: String) throws(Refusal) -> String? {
            guard let raw = raw(name), !Self.isNull(raw) else { return nil }
            guard raw.readableBytesView.first == UInt8(ascii: "\"") else { throw Refusal(status: 400, message: "\(name) must be a string") }
            let inner = raw.getString(at: raw.readerIndex + 1, length: raw.readableBytes - 2) ?? ""
            // Already valid JSON: only escapes need decoding, and most strings have none.
            guard inner.utf8.contains(UInt8(ascii: "\\")) else { return inner }
            guard let decoded = try? JSONDecoder().decode(String.self, from: Data(raw.readableBytesView)) else {
                throw Refusal(status: 400, message: "\(name) must be a string")
            }
            return decoded
        }

        /// A non-negative integer within `range` (no fraction, no exponent); `nil` when absent or `null`.
        func integer(_ name: String, range: ClosedRange<Int64>) throws(Refusal) -> Int64? {
            guard let raw = raw(name), !Self.isNull(raw) else { return nil }
            let digits = raw.readableBytesView
            guard (1...15).contains(digits.count), digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
                let value = Int64(String(decoding: digits, as: UTF8.self)), range.contains(value)
            else {
                throw Refusal(status: 400, message: "\(name) must be an integer from \(range.lowerBound) to \(range.upperBound)")
            }
            return value
        }

        func receipt() throws(Refusal) -> Receipt {
            guard let text = try string("receipt") else { throw Refusal(status: 400, message: "field 'receipt' is required") }
            // A string that is no receipt at all answers as HTTP does for it: unknown.
            guard let receipt = Receipt(text) else { throw Refusal(status: 404, message: APIError.unknownReceiptMessage) }
            return receipt
        }

        func reference() throws(Refusal) -> ByteBuffer? {
            guard let raw = raw("ref"), !Self.isNull(raw) else { return nil }
            let first = raw.readableBytesView.first
            let isString = first == UInt8(ascii: "\"")
            let isNumber = first.map { $0 == UInt8(ascii: "-") || ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9")) } ?? false
            guard isString || isNumber, raw.readableBytes <= StreamCommand.maximumReferenceBytes else {
                throw Refusal(status: 400, message: "ref must be a string or a number of at most \(StreamCommand.maximumReferenceBytes) bytes")
            }
            return raw
        }

        static func isNull(_ raw: ByteBuffer) -> Bool { raw.readableBytesView.elementsEqual("null".utf8) }
    }
}
