import Foundation
public import NIOCore
import NIOPosix
import Synchronization

/// A WebSocket client written byte by byte, for the cases a well-behaved client library cannot
/// produce: a connection cut without a close frame, a peer that never answers pings, binary or
/// oversized frames, fragments. It also reads the HTTP answer to a refused upgrade.
public final class RawWebSocket: Sendable {
    public let channel: any Channel
    /// The status line and headers the server answered the handshake with.
    public let responseHead: String
    private let received: Received

    /// A frame from the server (servers never mask).
    public struct Frame: Sendable {
        public var opcode: UInt8
        public var fin: Bool
        public var payload: ByteBuffer

        public var text: String { String(buffer: payload) }
        /// A close frame's code.
        public var closeCode: Int? {
            guard opcode == 0x8, payload.readableBytes >= 2 else { return nil }
            return Int(payload.getInteger(at: payload.readerIndex, as: UInt16.self)!)
        }
        public var closeReason: String {
            guard opcode == 0x8, payload.readableBytes > 2 else { return "" }
            return payload.getString(at: payload.readerIndex + 2, length: payload.readableBytes - 2) ?? ""
        }
        /// A text frame as a JSON object: strings, integers and booleans as themselves, anything
        /// else as its JSON text's description.
        public var json: [String: any Sendable]? {
            guard opcode == 0x1, let object = try? JSONDecoder().decode([String: Scalar].self, from: Data(payload.readableBytesView)) else { return nil }
            return object.mapValues { $0.value }
        }
    }

    final class Received: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let state = Mutex<(bytes: ByteBuffer, closed: Bool)>((ByteBuffer(), false))

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var bytes = unwrapInboundIn(data)
            state.withLock { $0.bytes.writeBuffer(&bytes) }
        }

        func channelInactive(context: ChannelHandlerContext) {
            state.withLock { $0.closed = true }
            context.fireChannelInactive()
        }
    }

    private init(channel: any Channel, responseHead: String, received: Received) {
        self.channel = channel
        self.responseHead = responseHead
        self.received = received
    }

    /// The status code of the handshake's answer (101 when upgraded).
    public var status: Int {
        let parts = responseHead.split(separator: " ", maxSplits: 2)
        return parts.count > 1 ? Int(parts[1]) ?? 0 : 0
    }

    /// Opens a TCP connection to `127.0.0.1:port` and sends a WebSocket handshake for `path`
    /// (`upgrade: false` sends a plain GET). Waits for the answer's head.
    public static func connect(port: Int, path: String, headers: [(String, String)] = [], upgrade: Bool = true) async throws -> RawWebSocket {
        let received = Received()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(received) } }
            .connect(host: "127.0.0.1", port: port).get()
        var request = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\n"
        if upgrade {
            request += "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        }
        for (name, value) in headers { request += "\(name): \(value)\r\n" }
        request += "\r\n"
        try await channel.writeAndFlush(ByteBuffer(string: request)).get()
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            let head = received.state.withLock { state -> String? in
                let view = String(decoding: state.bytes.readableBytesView, as: UTF8.self)
                guard let end = view.range(of: "\r\n\r\n") else { return nil }
                let head = String(view[..<end.lowerBound])
                state.bytes.moveReaderIndex(forwardBy: view[..<end.upperBound].utf8.count)
                return head
            }
            if let head { return RawWebSocket(channel: channel, responseHead: head, received: received) }
            if received.state.withLock({ $0.closed }) { break }
            try await Task.sleep(for: .milliseconds(5))
        }
        channel.close(promise: nil)
        throw RawWebSocketError(description: "no handshake answer from 127.0.0.1:\(port)\(path)")
    }

    /// The body that followed a non-101 answer's head (as much as arrived).
    public var remainingText: String {
        received.state.withLock { String(decoding: $0.bytes.readableBytesView, as: UTF8.self) }
    }

    /// Sends one frame, masked as a client must.
    public func send(opcode: UInt8, _ payload: ByteBuffer, fin: Bool = true) async throws {
        try await channel.writeAndFlush(Self.frame(opcode: opcode, payload, fin: fin)).get()
    }

    /// Sends text frames in one write, so that the server reads them together.
    public func sendTexts(_ texts: [String]) async throws {
        var frames = ByteBuffer()
        for text in texts {
            var frame = Self.frame(opcode: 0x1, ByteBuffer(string: text), fin: true)
            frames.writeBuffer(&frame)
        }
        try await channel.writeAndFlush(frames).get()
    }

    private static func frame(opcode: UInt8, _ payload: ByteBuffer, fin: Bool) -> ByteBuffer {
        var frame = ByteBuffer()
        frame.writeInteger((fin ? 0x80 : 0) | opcode)
        let length = payload.readableBytes
        if length < 126 {
            frame.writeInteger(UInt8(0x80 | length))
        } else if length <= 0xFFFF {
            frame.writeInteger(UInt8(0x80 | 126))
            frame.writeInteger(UInt16(length))
        } else {
            frame.writeInteger(UInt8(0x80 | 127))
            frame.writeInteger(UInt64(length))
        }
        let mask: [UInt8] = [0x12, 0x34, 0x56, 0x78]
        frame.writeBytes(mask)
        for (index, byte) in payload.readableBytesView.enumerated() { frame.writeInteger(byte ^ mask[index % 4]) }
        return frame
    }

    public func sendText(_ text: String) async throws {
        try await send(opcode: 0x1, ByteBuffer(string: text))
    }

    /// The next frame, waiting up to `timeout`; `nil` when the connection closed or nothing came.
    public func next(timeout: Duration = .seconds(10)) async throws -> Frame? {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let frame = received.state.withLock({ Self.parse(&$0.bytes) }) { return frame }
            if received.state.withLock({ $0.closed }) || ContinuousClock.now >= deadline { return nil }
            try await Task.sleep(for: .milliseconds(2))
        }
    }

    /// The next text frame's JSON, answering pings and skipping other control frames.
    public func nextJSON(timeout: Duration = .seconds(10)) async throws -> [String: any Sendable]? {
        let deadline = ContinuousClock.now + timeout
        while let frame = try await next(timeout: deadline - ContinuousClock.now) {
            if frame.opcode == 0x9 { try await send(opcode: 0xA, frame.payload) }
            if frame.opcode == 0x8 { return nil }
            if let json = frame.json { return json }
        }
        return nil
    }

    /// Whether the server closed the TCP connection.
    public var isClosed: Bool { received.state.withLock { $0.closed } }

    /// Ends the TCP connection at once, with no close frame (a network cut, a killed client).
    public func abort() async {
        try? await channel.close()
    }

    private static func parse(_ bytes: inout ByteBuffer) -> Frame? {
        guard bytes.readableBytes >= 2 else { return nil }
        let start = bytes.readerIndex
        let first = bytes.getInteger(at: start, as: UInt8.self)!
        let second = bytes.getInteger(at: start + 1, as: UInt8.self)!
        var offset = 2
        var length = Int(second & 0x7F)
        if length == 126 {
            guard bytes.readableBytes >= 4 else { return nil }
            length = Int(bytes.getInteger(at: start + 2, as: UInt16.self)!)
            offset = 4
        } else if length == 127 {
            guard bytes.readableBytes >= 10 else { return nil }
            length = Int(bytes.getInteger(at: start + 2, as: UInt64.self)!)
            offset = 10
        }
        guard bytes.readableBytes >= offset + length else { return nil }
        let payload = bytes.getSlice(at: start + offset, length: length)!
        bytes.moveReaderIndex(forwardBy: offset + length)
        return Frame(opcode: first & 0x0F, fin: first & 0x80 != 0, payload: payload)
    }
}

/// A JSON value as tests read it.
struct Scalar: Decodable {
    let value: any Sendable

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let bool = try? container.decode(Bool.self) {
            value = bool
        } else if let int = try? container.decode(Int.self) {
            value = int
        } else if let double = try? container.decode(Double.self) {
            value = double
        } else if let text = try? container.decode(String.self) {
            value = text
        } else if container.decodeNil() {
            value = "null"
        } else if let array = try? container.decode([Scalar].self) {
            value = array.map { "\($0.value)" }
        } else {
            value = (try? container.decode([String: Scalar].self).mapValues { "\($0.value)" }) ?? "?"
        }
    }
}

public struct RawWebSocketError: Error, CustomStringConvertible {
    public var description: String
    public init(description: String) { self.description = description }
}
