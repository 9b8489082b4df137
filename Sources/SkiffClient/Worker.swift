public import Logging
public import Metrics
public import ServiceLifecycle
import Synchronization

/// Consumes a queue with a handler: S3Queue's and BullMQ's worker, with their known failures
/// designed out.
///
/// - Up to ``WorkerConfiguration/concurrency`` handlers run at once; receives ask for as many
///   messages as there are free handlers (in batches), in acknowledged mode.
/// - While a handler runs, its message's visibility is renewed at half its length (the
///   heartbeat), so a slow handler keeps its message. If a renewal is refused (the receipt went
///   stale: the worker stalled past the timeout and the message may be with another consumer),
///   the job is marked (``WorkerJob/isLeaseLost``) and its handler's task is cancelled; its ack
///   is then refused by the server rather than silently succeeding.
/// - A handler that returns acks its message; one that throws nacks it (the queue's backoff, or
///   ``WorkerConfiguration/retryDelay``).
/// - As a swift-service-lifecycle `Service`, it shuts down gracefully: it stops receiving (a
///   receive under way is cancelled, and the server gives back what it claimed), lets running
///   handlers finish within ``WorkerConfiguration/shutdownDeadline``, then cancels the rest and
///   gives their messages back at once. A worker killed outright loses nothing either: its
///   messages come back after their visibility timeout.
///
/// ```swift
/// let worker = Worker(client: client, configuration: WorkerConfiguration(queue: "orders", concurrency: 8)) { job in
///     let order = try job.message.decode(Order.self)
///     try await ship(order)
/// }
/// try await ServiceGroup(services: [worker], gracefulShutdownSignals: [.sigterm], logger: logger).run()
/// ```
public final class Worker: Service, Sendable {
    public typealias Handler = @Sendable (WorkerJob) async throws -> Void

    public let configuration: WorkerConfiguration
    private let client: SkiffClient
    private let handler: Handler
    private let metrics: WorkerMetrics
    private let logger: Logger
    private let state: Mutex<State>

    private struct State {
        var stopping = false
        var free: Int
        var slotWaiter: CheckedContinuation<Int, Never>?
        var receive: Task<[ReceivedMessage], any Error>?
        var handlers: [Int: Task<Void, any Error>] = [:]
        var nextHandler = 0
        /// A receive the server refused for good (a bad queue name, a key without the scope).
        var refusal: SkiffClientError?
    }

    public init(
        client: SkiffClient,
        configuration: WorkerConfiguration,
        logger: Logger = Logger(label: "skiff.worker"),
        metricsFactory: any MetricsFactory = MetricsSystem.factory,
        handler: @escaping Handler
    ) {
        self.client = client
        self.configuration = configuration
        self.handler = handler
        self.metrics = WorkerMetrics(queue: configuration.queue, factory: metricsFactory)
        var logger = logger
        logger[metadataKey: "queue.name"] = "\(configuration.queue)"
        self.logger = logger
        self.state = Mutex(State(free: configuration.concurrency))
    }

    /// Runs until a graceful shutdown or ``stop()``. Cancelling the task that runs it stops at once:
    /// running handlers are cancelled and their messages given back. A handler that ignores
    /// cancellation is waited for (its message's lease keeps being renewed meanwhile).
    /// - Throws: the ``SkiffClientError`` of a receive the server refused for good (a `4xx`: a bad
    ///   queue name, a key without the receive scope), after the running handlers finished.
    public func run() async throws {
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await self.consume()
            } onGracefulShutdown: {
                self.stop()
            }
        } onCancel: {
            self.stop()
            self.cancelHandlers()
        }
        if let refusal = state.withLock({ $0.refusal }) { throw refusal }
    }

    /// Stops receiving; running handlers finish (within the shutdown deadline) and ``run()``
    /// returns.
    public func stop() {
        let (receive, waiter) = state.withLock { state in
            state.stopping = true
            defer { state.slotWaiter = nil }
            return (state.receive, state.slotWaiter)
        }
        receive?.cancel()
        waiter?.resume(returning: 0)
    }

    private var isStopping: Bool { state.withLock { $0.stopping } }

    private func consume() async {
        var deadline: Task<Void, Never>?
        await withDiscardingTaskGroup { group in
            while true {
                let free = await freeHandlers()
                guard free > 0 else { break }
                let batch: [ReceivedMessage]
                do {
                    batch = try await receive(max: min(free, configuration.batchSize))
                } catch {
                    if isStopping { break }
                    if let refusal = error as? SkiffClientError, !refusal.isTransient {
                        logger.error("the server refuses to hand out this queue's messages; the worker stops", metadata: ["error": "\(refusal)"])
                        state.withLock { $0.refusal = refusal }
                        stop()
                        break
                    }
                    logger.warning("could not receive; trying again", metadata: ["error": "\(error)"])
                    try? await Task.sleep(for: .seconds(1))
                    continue
                }
                if isStopping {
                    // Received as the worker stopped: given back at once, unhandled.
                    for message in batch { await giveBack(message, reason: "the worker is stopping") }
                    break
                }
                for message in batch {
                    state.withLock { $0.free -= 1 }
                    group.addTask {
                        await self.process(message)
                        self.handlerDone()
                    }
                }
            }
            let limit = configuration.shutdownDeadline
            deadline = Task {
                try? await Task.sleep(for: limit)
                guard !Task.isCancelled else { return }
                self.cancelHandlers()
            }
        }
        deadline?.cancel()
    }

    /// Waits for a free handler; 0 once the worker is stopping.
    private func freeHandlers() async -> Int {
        await withCheckedContinuation { continuation in
            let ready = state.withLock { state -> Int? in
                if state.stopping { return 0 }
                if state.free > 0 { return state.free }
                state.slotWaiter = continuation
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    private func handlerDone() {
        let waiter = state.withLock { state -> (CheckedContinuation<Int, Never>, Int)? in
            state.free += 1
            guard let waiter = state.slotWaiter else { return nil }
            state.slotWaiter = nil
            return (waiter, state.stopping ? 0 : state.free)
        }
        if let (continuation, free) = waiter { continuation.resume(returning: free) }
    }

    /// One receive, cancelled by ``stop()``: the server gives back what it had claimed for it.
    private func receive(max: Int) async throws -> [ReceivedMessage] {
        let (client, configuration) = (self.client, self.configuration)
        let task = Task {
            try await client.receiveBatch(
                from: configuration.queue, max: max, wait: configuration.receiveWait, visibility: configuration.visibilityTimeout)
        }
        let stopping = state.withLock { state in
            state.receive = task
            return state.stopping
        }
        if stopping { task.cancel() }
        defer { state.withLock { $0.receive = nil } }
        return try await task.value
    }

    private func cancelHandlers() {
        let running = state.withLock { Array($0.handlers.values) }
        if !running.isEmpty {
            logger.warning(
                "handlers still running at the shutdown deadline are cancelled; their messages are given back", metadata: ["handlers": "\(running.count)"])
        }
        for task in running { task.cancel() }
    }

    // MARK: One message

    private func process(_ message: ReceivedMessage) async {
        guard let receipt = message.receipt else { return }
        let job = WorkerJob(message: message)
        metrics.running.increment()
        defer { metrics.running.decrement() }
        let started = ContinuousClock.now
        let handler = self.handler
        let work = Task { try await handler(job) }
        let id = state.withLock { state in
            defer { state.nextHandler += 1 }
            state.handlers[state.nextHandler] = work
            return state.nextHandler
        }
        let heartbeat = Task { await self.heartbeat(job, work: work) }
        let result = await work.result
        heartbeat.cancel()
        state.withLock { _ = $0.handlers.removeValue(forKey: id) }
        let elapsed = ContinuousClock.now - started
        metrics.duration.recordNanoseconds(elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000)
        // Settled on a task of its own: a worker being cancelled must still ack or give back.
        await Task { await self.settle(job, receipt: receipt, result: result) }.value
    }

    private func settle(_ job: WorkerJob, receipt: String, result: Result<Void, any Error>) async {
        let message = job.message
        var metadata: Logger.Metadata = ["message.id": "\(message.id)", "message.receive_count": "\(message.receiveCount)"]
        do {
            switch result {
            case .success:
                // Even after a lost lease the ack is sent: the server refuses a stale receipt,
                // which is how the handler's result is known not to count.
                if try await client.ack(receipt, in: configuration.queue) {
                    metrics.processed.increment()
                } else {
                    metrics.failed.increment()
                    logger.warning("the server refused the ack: the message's lease was lost and it may run again", metadata: metadata)
                }
            case .failure(let error):
                metadata["error"] = "\(error)"
                metrics.failed.increment()
                if job.isLeaseLost {
                    logger.warning("the handler was cancelled: its lease was lost", metadata: metadata)
                } else if error is CancellationError, isStopping {
                    await giveBack(message, reason: "the worker stopped before the handler finished")
                } else {
                    try await client.nack(receipt, in: configuration.queue, delay: configuration.retryDelay, reason: "\(error)")
                    logger.info("the handler failed; the message will be retried", metadata: metadata)
                }
            }
        } catch {
            metadata["error"] = "\(error)"
            logger.error("could not settle a message; it comes back after its visibility timeout", metadata: metadata)
        }
    }

    /// Renews the visibility at half its length until cancelled; a refusal (stale receipt) marks
    /// the lease lost and cancels the handler.
    private func heartbeat(_ job: WorkerJob, work: Task<Void, any Error>) async {
        guard let receipt = job.message.receipt else { return }
        let visibility = configuration.visibilityTimeout
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: visibility / 2)
            } catch {
                return
            }
            do {
                guard try await client.extendVisibility(receipt, in: configuration.queue, by: visibility) else {
                    job.markLeaseLost()
                    work.cancel()
                    logger.warning(
                        "the message's lease was lost (its visibility could not be renewed); its handler is cancelled",
                        metadata: ["message.id": "\(job.message.id)"])
                    return
                }
            } catch is CancellationError {
                return
            } catch {
                // A renewal that failed for now is tried again at the next beat, within the lease.
                logger.warning("could not renew a message's visibility", metadata: ["message.id": "\(job.message.id)", "error": "\(error)"])
            }
        }
    }

    /// Makes a message visible again at once (it was never handled, or its handler was stopped),
    /// on a task of its own so that a cancelled worker still does it.
    private func giveBack(_ message: ReceivedMessage, reason: String) async {
        guard let receipt = message.receipt else { return }
        let (client, queue) = (self.client, configuration.queue)
        do {
            _ = try await Task { try await client.nack(receipt, in: queue, delay: .zero, reason: reason) }.value
        } catch {
            logger.warning(
                "could not give a message back; it comes back after its visibility timeout", metadata: ["message.id": "\(message.id)", "error": "\(error)"])
        }
    }
}
