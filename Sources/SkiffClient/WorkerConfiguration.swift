/// How a ``Worker`` consumes its queue.
public struct WorkerConfiguration: Sendable {
    public var queue: String
    /// Handlers running at once, at most.
    public var concurrency: Int
    /// Messages one receive asks for at most (never more than the free handlers).
    public var batchSize: Int
    /// The visibility timeout of each message; renewed at half its length while its handler runs.
    public var visibilityTimeout: Duration
    /// How long one receive waits for messages (a long-poll).
    public var receiveWait: Duration
    /// On shutdown, how long running handlers may take to finish; then they are cancelled and
    /// their messages given back at once.
    public var shutdownDeadline: Duration
    /// The nack delay after a handler throws (`nil`: the queue's backoff).
    public var retryDelay: Duration?

    public init(
        queue: String,
        concurrency: Int = 10,
        batchSize: Int = 10,
        visibilityTimeout: Duration = .seconds(30),
        receiveWait: Duration = .seconds(20),
        shutdownDeadline: Duration = .seconds(25),
        retryDelay: Duration? = nil
    ) {
        self.queue = queue
        self.concurrency = max(1, concurrency)
        self.batchSize = min(max(1, batchSize), 1000)
        self.visibilityTimeout = max(visibilityTimeout, .milliseconds(100))
        self.receiveWait = receiveWait
        self.shutdownDeadline = shutdownDeadline
        self.retryDelay = retryDelay
    }
}
