import Synchronization

/// One message in a ``Worker``'s handler, with the state of its lease.
public final class WorkerJob: Sendable {
    public let message: ReceivedMessage
    private let lost = Atomic<Bool>(false)

    init(message: ReceivedMessage) {
        self.message = message
    }

    /// `true` once the worker could not renew the message's visibility (the server said the
    /// receipt is stale): the message may be with another consumer already. The handler's task is
    /// cancelled at that moment too, and its ack will be refused by the server; a handler with
    /// side effects should check this before committing them.
    public var isLeaseLost: Bool { lost.load(ordering: .acquiring) }

    func markLeaseLost() { lost.store(true, ordering: .releasing) }
}
