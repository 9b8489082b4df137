import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// Queues in this process's memory: the self-contained default when no Redis is configured.
///
/// Same contract as ``RedisQueueBackend``, for one replica. Messages do not survive a restart.
public final class MemoryQueueBackend: QueueBackend, Service {
    private struct StoredMessage {
        let sequence: UInt64
        let id: String
        let body: ByteBuffer
        let enqueuedAtMilliseconds: Int64
        var receiveCount: Int
        /// Claims so far; never decreases, so it identifies one delivery (the claim token).
        var claims: Int
    }

    private struct Claim {
        var message: StoredMessage
        let leaseExpiry: ContinuousClock.Instant
    }

    private struct QueueState {
        var ready = CircularBuffer<StoredMessage>()
        var inFlight: [String: Claim] = [:]

        /// Back near the head, after messages put back earlier that were enqueued before it (as
        /// the Redis backend's `requeue`).
        mutating func requeue(_ message: StoredMessage) {
            var position = 0
            while position < ready.count, position < 1000, ready[ready.index(ready.startIndex, offsetBy: position)].sequence < message.sequence {
                position += 1
            }
            ready.insert(message, at: ready.index(ready.startIndex, offsetBy: position))
        }
    }

    private struct State {
        var queues: [QueueName: QueueState] = [:]
        var sequence: UInt64 = 0
        var isShuttingDown = false
    }

    private let state = Mutex(State())
    private let waiters: WaiterRegistry
    private let claimLease: Duration
    private let logger: Logger

    /// - Parameter claimLease: how long a claimed message may stay unsettled before it returns to
    ///   its queue.
    public init(eventLoop: any EventLoop, claimLease: Duration = .seconds(30), logger: Logger = Logger(label: "skiff.memory")) {
        self.waiters = WaiterRegistry(eventLoop: eventLoop)
        self.claimLease = claimLease
        self.logger = logger
    }

    public func send(_ body: ByteBuffer, to queue: QueueName) async throws -> SentMessage {
        let now = MessageID.currentMilliseconds()
        let id = MessageID.make(nowMilliseconds: now)
        state.withLock { state in
            state.sequence += 1
            let message = StoredMessage(sequence: state.sequence, id: id, body: body, enqueuedAtMilliseconds: now, receiveCount: 0, claims: 0)
            state.queues[queue, default: QueueState()].ready.append(message)
        }
        dispatch(queue)
        return SentMessage(id: id, queue: queue, enqueuedAtMilliseconds: now)
    }

    public func receive(from queue: QueueName, timeout: Duration) async throws -> Delivery? {
        if let delivery = claim(queue) { return delivery }
        let shuttingDown = state.withLock { $0.isShuttingDown }
        if timeout <= .zero || shuttingDown { return nil }
        let outcome = await waiters.wait(on: queue, timeout: timeout) { self.dispatch(queue) }
        return try await outcome.delivery { try await self.release($0) }
    }

    @discardableResult
    public func complete(_ delivery: Delivery) async throws -> Bool {
        state.withLock { state in
            guard let claim = state.queues[delivery.queue]?.inFlight[delivery.message.id],
                claim.message.claims == delivery.claimToken
            else { return false }
            state.queues[delivery.queue]?.inFlight[delivery.message.id] = nil
            Self.dropIfEmpty(delivery.queue, in: &state)
            return true
        }
    }

    public func release(_ delivery: Delivery) async throws {
        let released = state.withLock { state -> Bool in
            guard var claim = state.queues[delivery.queue]?.inFlight[delivery.message.id],
                claim.message.claims == delivery.claimToken
            else { return false }
            state.queues[delivery.queue]?.inFlight[delivery.message.id] = nil
            // It never reached a consumer: this receive does not count.
            claim.message.receiveCount = max(0, claim.message.receiveCount - 1)
            state.queues[delivery.queue]?.requeue(claim.message)
            return true
        }
        if released { dispatch(delivery.queue) }
    }

    public func confirm(_ delivery: Delivery) async throws -> Bool {
        guard delivery.needsFenceCheck else { return true }
        let now = ContinuousClock.now
        return state.withLock { state in
            guard let claim = state.queues[delivery.queue]?.inFlight[delivery.message.id], claim.message.claims == delivery.claimToken
            else { return false }
            state.queues[delivery.queue]?.inFlight[delivery.message.id] = Claim(message: claim.message, leaseExpiry: now + claimLease)
            return true
        }
    }

    public func health() async -> BackendHealth {
        let (queues, ready, inFlight) = state.withLock { state in
            (state.queues.count, state.queues.values.reduce(0) { $0 + $1.ready.count }, state.queues.values.reduce(0) { $0 + $1.inFlight.count })
        }
        return BackendHealth(
            isHealthy: true,
            backend: "memory",
            details: ["queues": "\(queues)", "messages.ready": "\(ready)", "messages.inFlight": "\(inFlight)", "waiters": "\(waiters.totalCount)"]
        )
    }

    /// Ends waits with "no message" and refuses new ones: the first step of a graceful shutdown.
    public func beginShutdown() {
        state.withLock { $0.isShuttingDown = true }
        waiters.resolveAll(with: .timedOut)
    }

    /// Recovers claims whose lease expired, once a second, until shutdown.
    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: min(.seconds(1), self.claimLease / 4))
                self.recoverExpiredClaims()
            }
        }
        beginShutdown()
    }

    /// Returns messages whose claim lease passed to the head of their queues, oldest first.
    public func recoverExpiredClaims() {
        let now = ContinuousClock.now
        let queues = state.withLock { state -> [QueueName] in
            var touched: [QueueName] = []
            for (name, var queue) in state.queues {
                let expired = queue.inFlight.values.filter { $0.leaseExpiry <= now }
                guard !expired.isEmpty else { continue }
                for claim in expired.sorted(by: { $0.message.sequence < $1.message.sequence }) {
                    queue.inFlight[claim.message.id] = nil
                    queue.requeue(claim.message)
                }
                state.queues[name] = queue
                touched.append(name)
            }
            return touched
        }
        if !queues.isEmpty { logger.warning("recovered expired claims", metadata: ["queue.count": "\(queues.count)"]) }
        for queue in queues { dispatch(queue) }
    }

    /// Claims the head of `queue` if there is one.
    private func claim(_ queue: QueueName) -> Delivery? {
        let claimedAt = ContinuousClock.now
        return state.withLock { state in Self.claim(queue, in: &state, at: claimedAt, lease: claimLease) }
    }

    private static func claim(_ queue: QueueName, in state: inout State, at claimedAt: ContinuousClock.Instant, lease: Duration) -> Delivery? {
        guard var message = state.queues[queue]?.ready.popFirst() else { return nil }
        message.receiveCount += 1
        message.claims += 1
        state.queues[queue]?.inFlight[message.id] = Claim(message: message, leaseExpiry: claimedAt + lease)
        return Delivery(
            queue: queue,
            message: QueueMessage(
                id: message.id,
                body: message.body,
                enqueuedAtMilliseconds: message.enqueuedAtMilliseconds,
                receiveCount: message.receiveCount
            ),
            claimToken: message.claims,
            claimedAt: claimedAt,
            lease: lease
        )
    }

    /// Hands ready messages to waiters, oldest message to oldest waiter.
    private func dispatch(_ queue: QueueName) {
        while true {
            let claimedAt = ContinuousClock.now
            let handOff = state.withLock { state -> (WaiterRegistry.TakenWaiter, Delivery)? in
                guard state.queues[queue]?.ready.isEmpty == false, let waiter = waiters.takeOldest(queue),
                    let delivery = Self.claim(queue, in: &state, at: claimedAt, lease: claimLease)
                else { return nil }
                return (waiter, delivery)
            }
            guard let (waiter, delivery) = handOff else { return }
            waiter.resume(.delivered(delivery))
        }
    }

    private static func dropIfEmpty(_ queue: QueueName, in state: inout State) {
        if let current = state.queues[queue], current.ready.isEmpty, current.inFlight.isEmpty {
            state.queues[queue] = nil
        }
    }
}
