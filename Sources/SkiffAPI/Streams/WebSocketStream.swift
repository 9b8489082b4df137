import Logging
import NIOCore
import NIOWebSocket
import ServiceLifecycle
import SkiffQueue
import SkiffSupport
import Synchronization

/// A stream's frames as WebSocket text frames, written straight to the channel so that each
/// write's future tells when its bytes reached the socket.
struct WebSocketStreamOutput: StreamOutput {
    let channel: any Channel
    let lastWrite = LastWrite()

    func write(_ frame: ByteBuffer) -> EventLoopFuture<Void> {
        lastWrite.record(channel.write(WebSocketFrame(fin: true, opcode: .text, data: frame)))
    }

    func untilWritable() async {
        await lastWrite.wait(isWritable: { channel.isWritable }, flush: { channel.flush() })
    }

    func flush() {
        channel.flush()
    }

    var isWritable: Bool { channel.isWritable }

    var eventLoop: any EventLoop { channel.eventLoop }

    func control(_ opcode: WebSocketOpcode, _ data: ByteBuffer) -> EventLoopFuture<Void> {
        lastWrite.record(channel.writeAndFlush(WebSocketFrame(fin: true, opcode: opcode, data: data)))
    }

    /// A close frame: the code and a reason of at most 123 bytes (what fits a control frame).
    static func closeData(_ code: WebSocketErrorCode, reason: String) -> ByteBuffer {
        var data = ByteBuffer()
        data.write(webSocketErrorCode: code)
        var bytes = Array(reason.utf8)
        if bytes.count > 123 {
            // Cut before the UTF-8 sequence the 124th byte belongs to, never through it.
            var end = 123
            while end > 0, bytes[end] & 0xC0 == 0x80 { end -= 1 }
            bytes = Array(bytes[..<end])
        }
        data.writeBytes(bytes)
        return data
    }
}

/// The WebSocket side of one stream: reads frames (text messages, fragmented or not; control
/// frames; the close handshake), pings the peer, and runs the session's delivery loop and command
/// processor until the connection ends; then gives back what the stream holds.
///
/// Close codes: 1000 echoes a client's close, 1001 on drain, 1002 for a protocol error, 1003 for
/// a binary frame, 1009 for a message over the frame limit, 1011 for a peer that stopped
/// answering pings.
/// Whether a stream's peer answered the last ping, set by ``StreamPongWatcher`` as the pong is
/// read: on the event loop, in the same pass as the socket read, so a busy process cannot make a
/// pong that arrived in time look late to the heartbeat (which runs on that loop too).
final class StreamLiveness: Sendable {
    let pongPending = Atomic<Bool>(false)
}

/// Takes pongs out of a stream's frames and records them in its ``StreamLiveness``.
final class StreamPongWatcher: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    typealias InboundIn = WebSocketFrame
    typealias InboundOut = WebSocketFrame
    let liveness = StreamLiveness()

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if unwrapInboundIn(data).opcode == .pong {
            liveness.pongPending.store(false, ordering: .relaxed)
            return
        }
        context.fireChannelRead(data)
    }
}

/// How long a stream waits for the peer's answer to its close frame before closing the TCP connection.
let streamCloseTimeout = Duration.seconds(2)

final class WebSocketStreamConnection<Backend: QueueBackend>: Sendable {
    let session: StreamSession<Backend>
    let output: WebSocketStreamOutput
    let pingInterval: Duration
    /// The largest text message (after reassembly of fragments).
    let maximumMessageBytes: Int

    private let inbox = StreamInbox()
    private let closeSent = Atomic<Bool>(false)
    private let liveness: StreamLiveness
    /// The delivery loop, started at the first credit (a publish-only stream never needs one), and
    /// whether the stream stopped delivering (drain, close).
    private let deliveries = Mutex<(task: Task<Void, Never>?, stopped: Bool)>((nil, false))
    /// The command processor, started at the first command: an idle stream holds no task but its own.
    private let processor = Mutex<Task<Void, Never>?>(nil)
    private let closeCode = Mutex<WebSocketErrorCode?>(nil)

    init(
        session: StreamSession<Backend>,
        output: WebSocketStreamOutput,
        pingInterval: Duration,
        maximumMessageBytes: Int,
        liveness: StreamLiveness = StreamLiveness()
    ) {
        self.liveness = liveness
        self.session = session
        self.output = output
        self.pingInterval = pingInterval
        self.maximumMessageBytes = maximumMessageBytes
    }

    var channel: any Channel { output.channel }
    /// The close code this side sent, or echoed.
    var sentCloseCode: WebSocketErrorCode? { closeCode.withLock { $0 } }

    func run(_ asyncChannel: NIOAsyncChannel<WebSocketFrame, Never>) async {
        let executor = EventLoopTaskExecutor.shared(for: channel.eventLoop)
        do {
            try await asyncChannel.executeThenClose { inbound in
                await withGracefulShutdownHandler {
                    if self.session.credit > 0 { self.startDeliveries(executor) }
                    let heartbeat = self.startHeartbeat()
                    await self.read(inbound, executor: executor)
                    heartbeat.cancel()
                    let deliveries = self.deliveries.withLock { state in
                        state.stopped = true
                        return state.task
                    }
                    deliveries?.cancel()
                    self.inbox.finish()
                    await deliveries?.value
                    // Commands read before the end are still carried out (a publish the client sent
                    // is stored even if it cannot read the answer).
                    await self.processor.withLock({ $0 })?.value
                    await self.session.releaseHeld()
                    if !self.closeSent.load(ordering: .relaxed) { self.close(.normalClosure, reason: "") }
                } onGracefulShutdown: {
                    self.drain()
                }
            }
        } catch {
            session.logger.debug("stream connection ended with an error", metadata: ["error": "\(error)"])
        }
    }

    /// Graceful shutdown: no more deliveries, close with 1001; the client's close answer (or the
    /// close timeout) ends the stream, which then releases what it holds.
    func drain() {
        deliveries.withLock { state in
            state.stopped = true
            state.task?.cancel()
        }
        session.wakeDeliveries()
        close(.goingAway, reason: "server shutting down: reconnect to another replica")
    }

    private func startDeliveries(_ executor: EventLoopTaskExecutor) {
        deliveries.withLock { state in
            guard state.task == nil, !state.stopped else { return }
            state.task = Task(executorPreference: executor) { await self.session.runDeliveries() }
        }
    }

    private func startProcessor(_ executor: EventLoopTaskExecutor) {
        processor.withLock { task in
            guard task == nil else { return }
            task = Task(executorPreference: executor) {
                while let commands = await self.inbox.next() { await self.session.handle(commands) }
            }
        }
    }

    /// Sends a close frame once and closes the connection if the peer does not answer in time.
    func close(_ code: WebSocketErrorCode, reason: String) {
        guard closeSent.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged else { return }
        // No data frame may follow a close frame (RFC 6455 5.5.1): deliveries and answers stop.
        session.stop()
        deliveries.withLock { state in
            state.stopped = true
            state.task?.cancel()
        }
        closeCode.withLock { $0 = code }
        let channel = self.channel
        _ = output.control(.connectionClose, WebSocketStreamOutput.closeData(code, reason: reason))
        channel.eventLoop.scheduleTask(in: TimeAmount(streamCloseTimeout)) { channel.close(promise: nil) }
    }

    private func read(_ inbound: NIOAsyncChannelInboundStream<WebSocketFrame>, executor: EventLoopTaskExecutor) async {
        var partial: ByteBuffer?
        var discarding = false
        do {
            for try await frame in inbound {
                // A peer that does not read what it is sent is not read from either.
                await output.untilWritable()
                switch frame.opcode {
                case .text, .continuation:
                    if frame.opcode == .text {
                        guard partial == nil, !discarding else {
                            close(.protocolError, reason: "a text frame began before the previous message ended")
                            continue
                        }
                        partial = frame.unmaskedData
                    } else {
                        guard !discarding else {
                            if frame.fin { discarding = false }
                            continue
                        }
                        guard partial != nil else {
                            close(.protocolError, reason: "a continuation frame without a message to continue")
                            continue
                        }
                        var data = frame.unmaskedData
                        partial!.writeBuffer(&data)
                    }
                    if partial!.readableBytes > maximumMessageBytes {
                        close(.messageTooLarge, reason: "message larger than \(maximumMessageBytes) bytes (MAX_MESSAGE_BYTES plus the frame's fields)")
                        partial = nil
                        discarding = !frame.fin
                        continue
                    }
                    guard frame.fin, let message = partial else { continue }
                    partial = nil
                    await dispatch(message, executor: executor)
                case .binary:
                    close(.unacceptableData, reason: "binary frames are not accepted: send each JSON object as a text frame")
                case .ping:
                    _ = output.control(.pong, frame.unmaskedData)
                case .pong:
                    // Without a StreamPongWatcher in the pipeline (tests), pongs arrive here.
                    liveness.pongPending.store(false, ordering: .relaxed)
                case .connectionClose:
                    if !closeSent.load(ordering: .relaxed) {
                        // Echo the client's code, as RFC 6455 asks.
                        var data = frame.unmaskedData
                        var code = data.readWebSocketErrorCode() ?? .normalClosure
                        // Codes that must never be sent (1005, 1006, 1015, or outside 1000...4999
                        // or reserved) are answered with 1000.
                        let number = UInt16(webSocketErrorCode: code)
                        if !(1000...4999).contains(number) || [1004, 1005, 1006, 1015].contains(number) { code = .normalClosure }
                        close(code, reason: "")
                    }
                    return
                default:
                    close(.protocolError, reason: "unknown frame opcode")
                }
            }
        } catch {
            session.logger.debug("stream input ended with an error", metadata: ["error": "\(error)"])
        }
    }

    private func dispatch(_ message: ByteBuffer, executor: EventLoopTaskExecutor) async {
        // After our close frame, only the peer's close answer matters.
        guard !closeSent.load(ordering: .relaxed) else { return }
        do throws(StreamCommand.Refusal) {
            let command = try StreamCommand.parse(message, maximumBodyBytes: session.exchange.settings.maximumMessageBytes)
            startProcessor(executor)
            // The loop starts now; it finds room once the processor has granted the credit.
            if case .credit = command.operation { startDeliveries(executor) }
            await inbox.push(command)
        } catch {
            _ = output.write(StreamFrame.error(error))
            output.flush()
        }
    }

    /// Pings every interval; a peer that has not answered the previous ping by the next one is
    /// gone. A task scheduled on the event loop, not a Swift task: an idle stream stays small.
    private func startHeartbeat() -> RepeatedTask {
        let interval = TimeAmount(pingInterval)
        return channel.eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { task in
            if self.liveness.pongPending.load(ordering: .relaxed) {
                self.session.logger.info("stream closed: the client did not answer a ping", metadata: ["queue.name": "\(self.session.queue)"])
                self.close(.unexpectedServerError, reason: "no pong within \(self.pingInterval.milliseconds) ms")
                self.channel.close(promise: nil)
                task.cancel()
                return
            }
            self.liveness.pongPending.store(true, ordering: .relaxed)
            _ = self.output.control(.ping, ByteBuffer(string: "skiff"))
        }
    }
}
