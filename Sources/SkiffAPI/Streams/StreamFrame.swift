import NIOCore
import SkiffQueue

/// The frames a server sends on a stream, one JSON object each (docs/streams.md lists them).
/// Bodies are written as stored, between the pieces, never re-encoded.
enum StreamFrame {
    /// `{"op":"message","id","receipt","receiveCount","enqueuedAt","priority"[,"lastError"][,"offloaded":true]`
    /// `[,"traceparent"[,"tracestate"]],"body"}`; `"payloadUrl"` in place of `"body"` when the
    /// stream asked for `payload=url` and the body is offloaded.
    /// An auto-acknowledged stream's messages carry no receipt.
    static func message(_ delivery: Delivery) -> ByteBuffer {
        let message = delivery.message
        var frame = ByteBufferAllocator().buffer(capacity: 160 + message.body.readableBytes)
        frame.writeStaticString(#"{"op":"message","id":"#)
        JSONText.writeQuoted(message.id, to: &frame)
        if delivery.isAcknowledgedMode {
            frame.writeStaticString(#","receipt":"#)
            JSONText.writeQuoted(delivery.receipt.description, to: &frame)
        }
        frame.writeStaticString(#","receiveCount":"#)
        frame.writeString(String(message.receiveCount))
        frame.writeStaticString(#","enqueuedAt":""#)
        JSONText.writeTimestamp(milliseconds: message.enqueuedAtMilliseconds, to: &frame)
        frame.writeStaticString(#"","priority":"#)
        frame.writeString(String(message.priority))
        if let lastError = message.lastError {
            frame.writeStaticString(#","lastError":"#)
            JSONText.writeQuoted(lastError, to: &frame)
        }
        if MessageID.isOffloaded(message.id) { frame.writeStaticString(#","offloaded":true"#) }
        if let trace = message.traceContext {
            frame.writeStaticString(#","traceparent":"#)
            JSONText.writeQuoted(trace.traceparent, to: &frame)
            if let state = trace.tracestate {
                frame.writeStaticString(#","tracestate":"#)
                JSONText.writeQuoted(state, to: &frame)
            }
        }
        if let link = message.payloadLink {
            frame.writeStaticString(#","payloadUrl":"#)
            frame.writeImmutableBuffer(MessageExchange<MemoryQueueBackend>.linkJSON(link))
        } else {
            frame.writeStaticString(#","body":"#)
            frame.writeImmutableBuffer(message.body)
        }
        frame.writeStaticString("}")
        return frame
    }

    /// `{"op":"published","ref","id"[,"duplicate":true]}`.
    static func published(_ sent: SentMessage, ref: ByteBuffer?) -> ByteBuffer {
        var frame = start("published", ref: ref)
        frame.writeStaticString(#","id":"#)
        JSONText.writeQuoted(sent.id, to: &frame)
        if sent.isDuplicate { frame.writeStaticString(#","duplicate":true"#) }
        frame.writeStaticString("}")
        return frame
    }

    /// `{"op":"acked"|"nacked"|"extended","ref","receipt"}`.
    static func settled(_ op: StaticString, receipt: Receipt, ref: ByteBuffer?) -> ByteBuffer {
        var frame = start(op, ref: ref)
        frame.writeStaticString(#","receipt":"#)
        JSONText.writeQuoted(receipt.description, to: &frame)
        frame.writeStaticString("}")
        return frame
    }

    /// `{"op":"credited","ref","credit"}`: the window now.
    static func credited(window: Int, ref: ByteBuffer?) -> ByteBuffer {
        var frame = start("credited", ref: ref)
        frame.writeStaticString(#","credit":"#)
        frame.writeString(String(window))
        frame.writeStaticString("}")
        return frame
    }

    /// `{"op":"expired","id","receipt"}`: a message held unacknowledged past its visibility
    /// timeout left the window; it may be delivered again, and its receipt no longer settles it.
    static func expired(_ receipt: Receipt) -> ByteBuffer {
        var frame = ByteBufferAllocator().buffer(capacity: 96)
        frame.writeStaticString(#"{"op":"expired","id":"#)
        JSONText.writeQuoted(receipt.messageID, to: &frame)
        frame.writeStaticString(#","receipt":"#)
        JSONText.writeQuoted(receipt.description, to: &frame)
        frame.writeStaticString("}")
        return frame
    }

    /// `{"op":"error","ref","status","error"}`: the status and message HTTP would answer.
    static func error(status: Int, message: String, ref: ByteBuffer?) -> ByteBuffer {
        var frame = start("error", ref: ref)
        frame.writeStaticString(#","status":"#)
        frame.writeString(String(status))
        frame.writeStaticString(#","error":"#)
        JSONText.writeQuoted(message, to: &frame)
        frame.writeStaticString("}")
        return frame
    }

    static func error(_ refusal: StreamCommand.Refusal) -> ByteBuffer {
        error(status: refusal.status, message: refusal.message, ref: refusal.ref)
    }

    private static func start(_ op: StaticString, ref: ByteBuffer?) -> ByteBuffer {
        var frame = ByteBufferAllocator().buffer(capacity: 96)
        frame.writeStaticString(#"{"op":""#)
        frame.writeStaticString(op)
        frame.writeStaticString(#"""#)
        if let ref {
            frame.writeStaticString(#","ref":"#)
            frame.writeImmutableBuffer(ref)
        }
        return frame
    }
}
