import HTTPTypes
import NIOCore
import NIOHTTPTypes

/// Sends a small response in one `write` system call instead of one per part.
///
/// Hummingbird's response writer flushes the head, every body part and the end separately; each
/// flush is a system call and a TCP segment. This handler holds the flushes of a response in
/// progress until its end is written, unless more than ``flushThresholdBytes`` are waiting (a
/// large body still streams, and backpressure still works).
final class ResponseFlushCoalescer: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    static let flushThresholdBytes = 16 << 10

    private var inResponse = false
    private var unflushedBytes = 0

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let head):
            // An informational head (100 Continue) is its own response part: flush it at once.
            inResponse = head.status.kind != .informational
        case .body(let buffer):
            unflushedBytes += buffer.readableBytes
        case .end:
            inResponse = false
        }
        context.write(data, promise: promise)
    }

    func flush(context: ChannelHandlerContext) {
        if inResponse, unflushedBytes < Self.flushThresholdBytes { return }
        unflushedBytes = 0
        context.flush()
    }
}
