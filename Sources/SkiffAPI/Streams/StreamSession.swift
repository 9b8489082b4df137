import Logging
import NIOCore
import SkiffQueue
import SkiffSupport
import Synchronization

/// Where a stream's frames go: a WebSocket or an event stream. Writes happen in call order and
/// leave at the next ``flush()`` (a batch of frames in one system call); each future completes
/// once its bytes are in the socket (or fails if they never get there).
protocol StreamOutput: Sendable {
    func write(_ frame: ByteBuffer) -> EventLoopFuture<Void>
    /// A message frame; an event stream puts its receipt in the event's id.
    func writeMessage(_ frame: ByteBuffer, receipt: Receipt?) -> EventLoopFuture<Void>
    func flush()
    /// The connection's event loop (timers run there).
    var eventLoop: any EventLoop { get }
    /// Returns once the peer has read what was written (at once while it keeps up): a reader
    /// that stops reading stops the stream's work instead of growing its buffers.
    func untilWritable() async
    /// `false` while the peer reads slower than the stream writes: wait for the last write first.
    var isWritable: Bool { get }
}

extension StreamOutput {
    func writeMessage(_ frame: ByteBuffer, receipt: Receipt?) -> EventLoopFuture<Void> { write(frame) }
}

/// The last write of an output, for ``StreamOutput/untilWritable()``.
final class LastWrite: Sendable {
    private let last = Mutex<EventLoopFuture<Void>?>(nil)

    func record(_ write: EventLoopFuture<Void>) -> EventLoopFuture<Void> {
        last.withLock { $0 = write }
        return write
    }

    /// Waits for the last write while `isWritable` says the peer is behind.
    func wait(isWritable: () -> Bool, flush: () -> Void) async {
        guard !isWritable(), let pending = last.withLock({ $0 }) else { return }
        flush()
        try? await pending.get()
    }
}

/// What a stream asks for when it opens (`GET /api/{queue}/stream?credit=&visibility=&autoAck=`).
struct StreamParameters: Sendable, Equatable {
    var queue: QueueName
    /// The first credit (0: nothing is delivered until a `credit` frame).
    var credit = 0
    /// The visibility timeout of each delivered message (`nil`: the queue's).
    var visibilityTimeout: Duration?
    /// Messages are deleted once their frame is written, as a plain GET's are.
    var autoAck = false
    /// `payload=url`: offloaded bodies come as signed URLs (``DeliveryRequest/signedPayloadURLs``).
    var signedPayloadURLs = false

    var mode: ReceiveMode { autoAck ? .autoAcknowledge : .acknowledge(visibilityTimeout: visibilityTimeout) }

    /// Reads the query; the errors are the ones the HTTP route answers with (400). An event
    /// stream names its credit `prefetch` and has no `autoAck`.
    init(
        queue: QueueName,
        query: [(name: Substring, value: Substring)],
        creditName: Substring = "credit",
        credit: Int = 0,
        allowsAutoAck: Bool = true
    ) throws(APIError) {
        self.queue = queue
        self.credit = credit
        for (name, value) in query {
            switch name {
            case creditName:
                let minimum: Int64 = creditName == "credit" ? 0 : 1
                self.credit = Int(try Self.integer(value, name: String(creditName), range: minimum...Int64(StreamCommand.maximumCredit)))
            case "visibility":
                let milliseconds = try Self.integer(
                    value, name: "visibility",
                    range: QueueSettings.minimumReceiveVisibilityMilliseconds...QueueSettings.maximumVisibilityTimeoutMilliseconds)
                visibilityTimeout = .milliseconds(milliseconds)
            case "payload":
                switch value {
                case "bytes": signedPayloadURLs = false
                case "url": signedPayloadURLs = true
                default: throw APIError(.badRequest, "payload must be bytes or url")
                }
            case "autoAck" where allowsAutoAck:
                switch value {
                case "true", "1": autoAck = true
                case "false", "0": autoAck = false
                default: throw APIError(.badRequest, "autoAck must be true or false")
                }
            default:
                continue
            }
        }
        if autoAck, visibilityTimeout != nil {
            throw APIError(.badRequest, "visibility applies to acknowledged streams: leave it out with autoAck=true")
        }
        if autoAck, signedPayloadURLs {
            throw APIError(
                .badRequest, "payload=url needs an acknowledged stream: an autoAck stream deletes each message, and its stored body, once it is written")
        }
    }

    private static func integer(_ raw: Substring, name: String, range: ClosedRange<Int64>) throws(APIError) -> Int64 {
        guard !raw.isEmpty, raw.utf8.count <= 15, raw.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
            let value = Int64(raw), range.contains(value)
        else {
            throw APIError(.badRequest, "\(name) must be an integer from \(range.lowerBound) to \(range.upperBound)")
        }
        return value
    }
}

/// One open stream's queue side, whatever carries its frames: the delivery loop that keeps the
/// window full, the client's commands carried out in order, and the release of what it holds
/// when it ends. Every delivery goes through the one lifecycle (``QueueBackend/deliver(_:context:)``
/// and ``DeliveryLease``), as a GET's does.
final class StreamSession<Backend: QueueBackend>: Sendable {
    let parameters: StreamParameters
    let exchange: MessageExchange<Backend>
    /// The caller's grant (`nil`: the service runs open).
    let grant: AccessGrant?
    let rateLimiter: RateLimiter?
    let output: any StreamOutput
    let logger: Logger
    /// How often a full window asks storage which of its messages were settled elsewhere (an
    /// event stream's consumer acks over HTTP, maybe on another replica); `nil`: never.
    let reconcileInterval: Duration?

    private let window: Mutex<StreamWindow>
    private let wake: StreamWakeSignal
    private let lastMessageWrite = Mutex<EventLoopFuture<Void>?>(nil)
    private let counts = Mutex(Counts())
    /// Set when the stream stops delivering (its close frame is sent, or it drains): nothing more
    /// is written, and a lease not yet written is given back.
    private let stopped = Atomic<Bool>(false)
    /// Where the next reconcile starts in the held messages (it checks a slice at a time).
    private let reconcileCursor = Mutex(0)

    /// How many held messages one reconcile asks storage about (bounded Redis work per call).
    static var reconcileSlice: Int { 128 }

    func stop() {
        stopped.store(true, ordering: .relaxed)
        wake.signal()
    }

    var isStopped: Bool { stopped.load(ordering: .relaxed) }

    /// What the stream did, for its closing log line.
    struct Counts: Sendable, Equatable {
        var delivered = 0
        var published = 0
        var acked = 0
        var released = 0
    }

    /// The most messages one claim takes.
    static var maximumClaim: Int { 256 }
    /// How long one claim waits for a message before it looks at the window again.
    static var claimWait: Duration { .seconds(20) }

    init(
        parameters: StreamParameters,
        exchange: MessageExchange<Backend>,
        grant: AccessGrant?,
        rateLimiter: RateLimiter?,
        output: any StreamOutput,
        logger: Logger,
        reconcileInterval: Duration? = nil
    ) {
        self.reconcileInterval = reconcileInterval
        self.parameters = parameters
        self.exchange = exchange
        self.grant = grant
        self.rateLimiter = rateLimiter
        self.output = output
        self.logger = logger
        self.window = Mutex(StreamWindow(credit: parameters.credit))
        self.wake = StreamWakeSignal(eventLoop: output.eventLoop)
    }

    var queue: QueueName { parameters.queue }
    var summary: Counts { counts.withLock { $0 } }
    var credit: Int { window.withLock { $0.credit } }

    // MARK: Delivering

    /// Keeps the window full until the task is cancelled (the stream closes or drains). A claim
    /// in progress when it is cancelled gives its messages back.
    func runDeliveries() async {
        while !Task.isCancelled, !isStopped {
            let now = ContinuousClock.now
            let (count, expired, deadline) = window.withLock { window in
                let expired = window.expire(at: now)
                return (window.reserve(upTo: Self.maximumClaim), expired, window.nextDeadline)
            }
            for receipt in expired { _ = output.write(StreamFrame.expired(receipt)) }
            if !expired.isEmpty { output.flush() }
            guard count > 0 else {
                // Full: wait for credit, a settlement, or the next lease to end.
                var timeout = deadline.map { Swift.max(.milliseconds(1), $0 - now) } ?? .seconds(3600)
                if let reconcileInterval { timeout = Swift.min(timeout, reconcileInterval) }
                await wake.wait(timeout: timeout)
                if reconcileInterval != nil { await reconcile() }
                continue
            }
            do {
                let request = DeliveryRequest(
                    queue: queue,
                    max: count,
                    maxBytes: exchange.settings.maximumBatchBytes,
                    timeout: Self.claimWait,
                    mode: parameters.mode,
                    linger: .zero,
                    signedPayloadURLs: parameters.signedPayloadURLs
                )
                guard let lease = try await exchange.deliver(request, logger: logger) else {
                    window.withLock { $0.unreserve(count) }
                    continue
                }
                await handOut(lease, reserved: count)
            } catch is CancellationError {
                window.withLock { $0.unreserve(count) }
                return
            } catch {
                window.withLock { $0.unreserve(count) }
                let failure = APIError(from: error)
                logger.warning("a stream could not claim messages", metadata: ["queue.name": "\(queue)", "error": "\(error)"])
                _ = output.write(StreamFrame.error(status: Int(failure.status.code), message: failure.message, ref: nil))
                output.flush()
                // Storage is failing: look again in a second rather than spin.
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    /// Writes a lease's messages and settles it: auto-acknowledged ones are deleted once their
    /// frames are in the socket; acknowledged ones stay held until the client settles them.
    private func handOut(_ lease: DeliveryLease, reserved: Int) async {
        let deliveries = lease.deliveries
        window.withLock { $0.unreserve(reserved - deliveries.count) }
        // The fence before the write, as a GET's: a claim a stall lost is not ours to give.
        guard (try? await lease.isStillHeld()) == true else {
            window.withLock { $0.unreserve(deliveries.count) }
            return
        }
        if !parameters.autoAck {
            window.withLock { window in
                for delivery in deliveries { window.hold(delivery.receipt, until: delivery.claimedAt + delivery.lease) }
            }
        }
        // Stopped (a close frame went out) or cancelled since the claim: nothing may be written.
        if isStopped || Task.isCancelled {
            if !parameters.autoAck {
                window.withLock { window in for delivery in deliveries { _ = window.settle(delivery.receipt) } }
            } else {
                window.withLock { $0.unreserve(deliveries.count) }
            }
            await lease.release()
            return
        }
        var last: EventLoopFuture<Void>?
        for delivery in deliveries {
            // A reader slower than the flow: wait for the bytes already written to leave.
            if !output.isWritable, let pending = lastMessageWrite.withLock({ $0 }) {
                output.flush()
                try? await pending.get()
            }
            let write = output.writeMessage(StreamFrame.message(delivery), receipt: delivery.isAcknowledgedMode ? delivery.receipt : nil)
            lastMessageWrite.withLock { $0 = write }
            last = write
        }
        output.flush()
        do {
            try await last?.get()
        } catch {
            // The connection closed before the frames were written: nobody has them.
            if !parameters.autoAck {
                window.withLock { window in for delivery in deliveries { _ = window.settle(delivery.receipt) } }
            } else {
                window.withLock { $0.unreserve(deliveries.count) }
            }
            await lease.release()
            return
        }
        counts.withLock { $0.delivered += deliveries.count }
        let settle = exchange.written(lease)
        if parameters.autoAck {
            window.withLock { $0.unreserve(deliveries.count) }
            if let settlements = exchange.settlements {
                settlements.run(on: nil, settle)
            } else {
                await settle()
            }
        } else {
            await settle()
        }
    }

    /// Gives back every message the stream holds unacknowledged: visible again at once, at the
    /// head of the queue, its receive counted (the client had it). Not cancellable: a stream that
    /// closes because its task was cancelled must still give them back.
    func releaseHeld() async {
        let held = window.withLock { $0.takeAll() }
        guard !held.isEmpty else { return }
        let (backend, queue, logger) = (exchange.backend, queue, logger)
        let released = await Task {
            var released = 0
            for receipt in held {
                do {
                    if try await backend.changeVisibility(receipt, in: queue, timeout: .zero) { released += 1 }
                } catch {
                    logger.error(
                        "could not release a message a closed stream held; it comes back when its visibility timeout ends",
                        metadata: ["queue.name": "\(queue)", "message.id": "\(receipt.messageID)", "error": "\(error)"]
                    )
                }
            }
            return released
        }.value
        counts.withLock { $0.released += released }
    }

    /// Frees the places of held messages whose claims storage no longer holds (acked, nacked or
    /// made visible through another path).
    private func reconcile() async {
        let all = window.withLock { $0.heldInOrder }
        guard !all.isEmpty else { return }
        let held = reconcileCursor.withLock { cursor -> [Receipt] in
            if cursor >= all.count { cursor = 0 }
            let slice = Array(all[cursor..<Swift.min(all.count, cursor + Self.reconcileSlice)])
            cursor += slice.count
            return slice
        }
        do {
            let stillHeld = try await exchange.backend.claimsHeld(held, in: queue)
            window.withLock { window in
                for (receipt, isHeld) in zip(held, stillHeld) where !isHeld { _ = window.settle(receipt) }
            }
        } catch {
            logger.debug("a stream could not check its held messages", metadata: ["error": "\(error)"])
        }
    }

    /// Stops waiting for room: used when the stream stops delivering.
    func wakeDeliveries() { wake.signal() }

    // MARK: Commands

    /// Carries out commands in order. Consecutive publishes with the same options become one
    /// send and consecutive acks one ack call; every command still gets its own answer.
    func handle(_ commands: [StreamCommand]) async {
        var index = 0
        // The answers leave together once the batch is done.
        defer { output.flush() }
        while index < commands.count {
            // Answers the client does not read pile up here: wait for them to leave.
            await output.untilWritable()
            if isStopped { return }
            let command = commands[index]
            if let refusal = refusal(of: command) {
                _ = output.write(StreamFrame.error(refusal))
                index += 1
                continue
            }
            var end = index + 1
            switch command.operation {
            case .publish(let first, let options) where options.idempotencyKey == nil:
                // At most a batch's count and MAX_BATCH_BYTES per send, as over HTTP.
                var bytes = first.readableBytes
                while end < commands.count, end - index < QueueController<Backend>.maximumBatch, case .publish(let body, options) = commands[end].operation,
                    bytes + body.readableBytes <= exchange.settings.maximumBatchBytes, refusal(of: commands[end]) == nil
                {
                    bytes += body.readableBytes
                    end += 1
                }
                await publish(commands[index..<end], options: options)
            case .ack:
                while end < commands.count, end - index < QueueController<Backend>.maximumBatch, case .ack = commands[end].operation,
                    refusal(of: commands[end]) == nil
                {
                    end += 1
                }
                await acknowledge(commands[index..<end])
            default:
                await carryOut(command)
            }
            index = end
        }
    }

    /// Why `command` may not run: the key's scope, or the rate limit (a frame counts as a request).
    private func refusal(of command: StreamCommand) -> StreamCommand.Refusal? {
        let needed: APIKey.Scope
        if case .publish = command.operation { needed = .send } else { needed = .receive }
        if let grant, !grant.scopes.contains(needed) {
            return StreamCommand.Refusal(status: 403, message: "this API key lacks the '\(needed.rawValue)' scope needed here", ref: command.ref)
        }
        if let rateLimiter, case .limited(let retryAfterSeconds) = rateLimiter.take(key: grant?.keyName ?? "", queue: queue.rawValue) {
            let settings = rateLimiter.settings
            return StreamCommand.Refusal(
                status: 429,
                message:
                    "rate limit of \(settings.requestsPerSecond) requests per second (burst \(settings.burst)) reached; retry after \(retryAfterSeconds) s",
                ref: command.ref
            )
        }
        return nil
    }

    private func publish(_ commands: ArraySlice<StreamCommand>, options: SendOptions) async {
        let bodies = commands.map { command -> ByteBuffer in
            guard case .publish(let body, _) = command.operation else { preconditionFailure("a publish run holds publishes only") }
            return body
        }
        do {
            let sent = try await exchange.send(batch: bodies, to: queue, options: options)
            let stored = sent.filter { !$0.isDuplicate }.count
            if stored > 0 { exchange.metrics.messageEnqueued(queue: queue.rawValue, count: stored) }
            counts.withLock { $0.published += stored }
            for (command, message) in zip(commands, sent) { _ = output.write(StreamFrame.published(message, ref: command.ref)) }
        } catch let error as QueueError where commands.count > 1 && (error.kind == .queueFull || error.kind == .tooLarge) {
            // Sent together, all would not fit (the queue's depth, or one body past its
            // maxMessageBytes); sent alone, as many as fit are stored, as separate POSTs would be.
            for command in commands { await publish([command], options: options) }
        } catch {
            let failure = APIError(from: error)
            for command in commands {
                _ = output.write(StreamFrame.error(status: Int(failure.status.code), message: failure.message, ref: command.ref))
            }
        }
    }

    private func acknowledge(_ commands: ArraySlice<StreamCommand>) async {
        let receipts = commands.map { command -> Receipt in
            guard case .ack(let receipt) = command.operation else { preconditionFailure("an ack run holds acks only") }
            return receipt
        }
        do {
            let results = try await exchange.backend.acknowledge(receipts, in: queue)
            let acked = results.filter { $0 }.count
            if acked > 0 { exchange.metrics.messageAcked(queue: queue.rawValue, count: acked) }
            counts.withLock { $0.acked += acked }
            var freed = false
            for (command, (receipt, done)) in zip(commands, zip(receipts, results)) {
                if done {
                    freed = window.withLock { $0.settle(receipt) } || freed
                    _ = output.write(StreamFrame.settled("acked", receipt: receipt, ref: command.ref))
                } else {
                    _ = output.write(StreamFrame.error(status: 404, message: APIError.unknownReceiptMessage, ref: command.ref))
                }
            }
            if freed { wake.signal() }
        } catch {
            let failure = APIError(from: error)
            for command in commands {
                _ = output.write(StreamFrame.error(status: Int(failure.status.code), message: failure.message, ref: command.ref))
            }
        }
    }

    private func carryOut(_ command: StreamCommand) async {
        do {
            switch command.operation {
            case .publish(let body, let options):
                let sent = try await exchange.backend.send([body], to: queue, options: options)[0]
                if !sent.isDuplicate {
                    exchange.metrics.messageEnqueued(queue: queue.rawValue)
                    counts.withLock { $0.published += 1 }
                }
                _ = output.write(StreamFrame.published(sent, ref: command.ref))
            case .credit(let count):
                guard let credit = window.withLock({ $0.grant(count) }) else {
                    let current = window.withLock { $0.credit }
                    _ = output.write(
                        StreamFrame.error(
                            status: 400,
                            message: "credit would pass \(StreamCommand.maximumCredit) messages (it is \(current))",
                            ref: command.ref
                        )
                    )
                    return
                }
                wake.signal()
                _ = output.write(StreamFrame.credited(window: credit, ref: command.ref))
            case .ack:
                await acknowledge([command])
            case .nack(let receipt, let delay, let reason):
                guard try await exchange.backend.reject(receipt, in: queue, delay: delay, reason: reason) else {
                    _ = output.write(StreamFrame.error(status: 404, message: APIError.unknownReceiptMessage, ref: command.ref))
                    return
                }
                if window.withLock({ $0.settle(receipt) }) { wake.signal() }
                _ = output.write(StreamFrame.settled("nacked", receipt: receipt, ref: command.ref))
            case .extend(let receipt, let timeout):
                guard try await exchange.backend.changeVisibility(receipt, in: queue, timeout: timeout) else {
                    _ = output.write(StreamFrame.error(status: 404, message: APIError.unknownReceiptMessage, ref: command.ref))
                    return
                }
                if timeout == .zero {
                    // Visible again at once: no longer this stream's.
                    if window.withLock({ $0.settle(receipt) }) { wake.signal() }
                } else {
                    let deadline = ContinuousClock.now + timeout
                    window.withLock { $0.extend(receipt, until: deadline) }
                }
                _ = output.write(StreamFrame.settled("extended", receipt: receipt, ref: command.ref))
            }
        } catch {
            let failure = APIError(from: error)
            _ = output.write(StreamFrame.error(status: Int(failure.status.code), message: failure.message, ref: command.ref))
        }
    }
}
