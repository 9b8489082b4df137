import NIOCore
import NIOEmbedded
import NIOHTTP1

/// What the router path makes of some bytes: NIO's `HTTPRequestDecoder`, configured as
/// Hummingbird configures it (`configureHTTPServerPipeline`: left-over bytes dropped, default
/// limits), run in an `EmbeddedChannel`.
struct RouterPathDecoding {
    struct Request {
        var head: HTTPRequestHead
        var body: [UInt8] = []
        var isComplete = false
    }

    /// The requests decoded, in order; the last may be incomplete.
    var requests: [Request] = []
    /// Set when the decoder refused the bytes (the router path answers 400 and closes).
    var error: (any Error)?

    init(_ bytes: [UInt8]) {
        let channel = EmbeddedChannel()
        defer { _ = try? channel.finish(acceptAlreadyClosed: true) }
        do {
            try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes)))
            try channel.writeInbound(channel.allocator.buffer(bytes: bytes))
        } catch {
            self.error = error
        }
        while let part = try? channel.readInbound(as: HTTPServerRequestPart.self) {
            switch part {
            case .head(let head):
                requests.append(Request(head: head))
            case .body(let buffer):
                requests[requests.count - 1].body += buffer.readableBytesView
            case .end:
                requests[requests.count - 1].isComplete = true
            }
        }
    }
}

/// A request the parsers never produce themselves: appended after a framed request, it shows
/// where the router path thinks that request ended.
enum Sentinel {
    static let target = "/fuzz-sentinel"
    static let request = Array("GET \(target) HTTP/1.1\r\nHost: sentinel\r\n\r\n".utf8)
}
