// The stream client of `make bench` (issue 19): one WebSocket consumer or publisher on
// `/api/{queue}/stream` as fast as the server lets it go, or many idle streams, with NIO and no
// JSON decoding on the hot path, so that the client is not what is measured. Prints one JSON line.
//
//   skiff-streambench consume --port P --queue Q --credit 100 --seconds 10
//   skiff-streambench publish --port P --queue Q --window 256 --seconds 10 --body '{"n":1}'
//   skiff-streambench idle    --port P --queue Q --count 10000 --hold 20
import Foundation
import NIOCore
import NIOPosix
import NIOWebSocket

struct Options {
    var mode = ""
    var port = 8080
    var queue = "bench-stream"
    var credit = 100
    var window = 256
    var seconds = 10.0
    var body = #"{"n":1}"#
    var count = 1000
    var hold = 10.0

    init(_ arguments: [String]) {
        var rest = arguments.dropFirst()
        mode = rest.popFirst() ?? ""
        while let flag = rest.popFirst() {
            let value = rest.popFirst() ?? ""
            switch flag {
            case "--port": port = Int(value) ?? port
            case "--queue": queue = value
            case "--credit": credit = Int(value) ?? credit
            case "--window": window = Int(value) ?? window
            case "--seconds": seconds = Double(value) ?? seconds
            case "--body": body = value
            case "--count": count = Int(value) ?? count
            case "--hold": hold = Double(value) ?? hold
            default: fatalError("unknown option \(flag)")
            }
        }
    }
}

/// Counts shared by the connections' handlers (each on its own event loop thread).
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func add(_ count: Int) {
        lock.lock()
        value += count
        lock.unlock()
    }
    var current: Int {
        lock.lock()
        defer { lock.unlock() }
        return value
    }
}

/// Sends the upgrade request, waits for the 101, then hands the connection to WebSocket framing
/// and `next`.
final class Handshake: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    let path: String
    let next: any ChannelHandler
    let upgraded: EventLoopPromise<Void>
    private var received = ByteBuffer()

    init(path: String, next: any ChannelHandler, upgraded: EventLoopPromise<Void>) {
        self.path = path
        self.next = next
        self.upgraded = upgraded
    }

    func channelActive(context: ChannelHandlerContext) {
        let request =
            "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        context.writeAndFlush(NIOAny(ByteBuffer(string: request)), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        received.writeBuffer(&bytes)
        let view = String(decoding: received.readableBytesView, as: UTF8.self)
        guard let end = view.range(of: "\r\n\r\n") else { return }
        guard view.hasPrefix("HTTP/1.1 101") else {
            upgraded.fail(BenchError(description: "upgrade refused: \(view.prefix(200))"))
            context.close(promise: nil)
            return
        }
        received.moveReaderIndex(forwardBy: view[..<end.upperBound].utf8.count)
        let rest = received
        do {
            let pipeline = context.pipeline.syncOperations
            try pipeline.addHandler(WebSocketFrameEncoder())
            try pipeline.addHandler(ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: 1 << 24)))
            try pipeline.addHandler(next)
            pipeline.removeHandler(context: context, promise: nil)
        } catch {
            upgraded.fail(error)
            return
        }
        upgraded.succeed()
        if rest.readableBytes > 0 { context.fireChannelRead(NIOAny(rest)) }
    }
}

struct BenchError: Error, CustomStringConvertible { var description: String }

/// A masked text frame, as a client must send.
func textFrame(_ allocator: ByteBufferAllocator, _ text: String) -> WebSocketFrame {
    WebSocketFrame(fin: true, opcode: .text, maskKey: WebSocketMaskingKey([1, 2, 3, 4]), data: allocator.buffer(string: text))
}

/// Answers pings; every other frame goes to `received`. Writes are flushed once per read burst.
class FrameHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .ping:
            context.write(
                wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, maskKey: WebSocketMaskingKey([1, 2, 3, 4]), data: frame.data)), promise: nil)
        case .text:
            received(frame.data, context: context)
        case .connectionClose:
            context.close(promise: nil)
        default:
            break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }

    // Here, not only in a subclass: the protocol's requirement is witnessed by this class.
    func handlerAdded(context: ChannelHandlerContext) {
        started(context: context)
    }

    func started(context: ChannelHandlerContext) {}

    func received(_ text: ByteBuffer, context: ChannelHandlerContext) {}
}

/// Acks every message as it arrives; counts messages.
final class Consumer: FrameHandler, @unchecked Sendable {
    let messages: Counter
    init(messages: Counter) { self.messages = messages }

    private static let marker = Array(#""receipt":""#.utf8)

    override func received(_ text: ByteBuffer, context: ChannelHandlerContext) {
        let bytes = text.readableBytesView
        guard bytes.starts(with: #"{"op":"message""#.utf8) else { return }
        messages.add(1)
        // The receipt's value: after `"receipt":"`, up to the next quote (receipts need no escapes).
        guard let start = Self.find(Self.marker, in: bytes) else { return }
        let afterMarker = start + Self.marker.count
        guard let end = bytes[afterMarker...].firstIndex(of: UInt8(ascii: "\"")) else { return }
        let receipt = String(decoding: bytes[afterMarker..<end], as: UTF8.self)
        context.write(wrapOutboundOut(textFrame(context.channel.allocator, #"{"op":"ack","receipt":""# + receipt + #""}"#)), promise: nil)
    }

    static func find(_ needle: [UInt8], in haystack: ByteBufferView) -> Int? {
        var index = haystack.startIndex
        while index + needle.count <= haystack.endIndex {
            if haystack[index] == needle[0], haystack[index..<(index + needle.count)].elementsEqual(needle) { return index }
            index += 1
        }
        return nil
    }
}

/// Keeps `window` publishes in flight; counts the answers.
final class Publisher: FrameHandler, @unchecked Sendable {
    let published: Counter
    let window: Int
    let frame: String
    init(published: Counter, window: Int, body: String) {
        self.published = published
        self.window = window
        self.frame = #"{"op":"publish","body":"# + body + "}"
    }

    override func started(context: ChannelHandlerContext) {
        for _ in 0..<window { context.write(wrapOutboundOut(textFrame(context.channel.allocator, frame)), promise: nil) }
        context.flush()
    }

    override func received(_ text: ByteBuffer, context: ChannelHandlerContext) {
        guard text.readableBytesView.starts(with: #"{"op":"published""#.utf8) else { return }
        published.add(1)
        context.write(wrapOutboundOut(textFrame(context.channel.allocator, frame)), promise: nil)
    }
}

/// An idle stream: answers pings, nothing else.
final class Idle: FrameHandler, @unchecked Sendable {}

func open(_ options: Options, path: String, handler: @escaping @Sendable () -> any ChannelHandler) async throws -> any Channel {
    let group = MultiThreadedEventLoopGroup.singleton
    let loop = group.next()
    let upgraded = loop.makePromise(of: Void.self)
    let channel = try await ClientBootstrap(group: loop)
        .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
        .channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(Handshake(path: path, next: handler(), upgraded: upgraded))
            }
        }
        .connect(host: "127.0.0.1", port: options.port).get()
    try await upgraded.futureResult.get()
    return channel
}

func emit(_ fields: [String: Any]) {
    let data = try! JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys])
    // Unbuffered: the harness reads the idle mode's line while the process holds its streams.
    FileHandle.standardOutput.write(data + Data("\n".utf8))
}

let options = Options(CommandLine.arguments)
switch options.mode {
case "consume":
    let messages = Counter()
    let channel = try await open(options, path: "/api/\(options.queue)/stream?credit=\(options.credit)") { Consumer(messages: messages) }
    // From the first message on.
    while messages.current == 0 { try await Task.sleep(for: .milliseconds(1)) }
    let (start, first) = (ContinuousClock.now, messages.current)
    try await Task.sleep(for: .seconds(options.seconds))
    let elapsed = ContinuousClock.now - start
    let count = messages.current - first
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    emit(["mode": "consume", "credit": options.credit, "ok": count, "seconds": seconds, "ok_per_second": Double(count) / seconds])
    try? await channel.close()
case "publish":
    let published = Counter()
    let channel = try await open(options, path: "/api/\(options.queue)/stream") {
        Publisher(published: published, window: options.window, body: options.body)
    }
    while published.current == 0 { try await Task.sleep(for: .milliseconds(1)) }
    let (start, first) = (ContinuousClock.now, published.current)
    try await Task.sleep(for: .seconds(options.seconds))
    let elapsed = ContinuousClock.now - start
    let count = published.current - first
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    emit(["mode": "publish", "window": options.window, "ok": count, "seconds": seconds, "ok_per_second": Double(count) / seconds])
    try? await channel.close()
case "idle":
    var channels: [any Channel] = []
    var failures = 0
    for batchStart in stride(from: 0, to: options.count, by: 250) {
        try await withThrowingTaskGroup(of: (any Channel)?.self) { group in
            for _ in batchStart..<min(options.count, batchStart + 250) {
                group.addTask { try? await open(options, path: "/api/\(options.queue)/stream") { Idle() } }
            }
            for try await channel in group {
                if let channel { channels.append(channel) } else { failures += 1 }
            }
        }
    }
    emit(["mode": "idle", "open": channels.count, "failed": failures])
    try await Task.sleep(for: .seconds(options.hold))
    for channel in channels { channel.close(promise: nil) }
default:
    FileHandle.standardError.write(Data("usage: skiff-streambench consume|publish|idle --port P --queue Q ...\n".utf8))
    exit(2)
}
