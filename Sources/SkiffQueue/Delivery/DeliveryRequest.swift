/// What a transport asks for when it wants messages to hand out: a plain GET, a batch GET, and
/// later a stream's credit or a push subscription's next message.
public struct DeliveryRequest: Sendable, Equatable {
    public var queue: QueueName
    /// Messages at most (1 or more).
    public var max: Int
    /// Body bytes the lease holds at most; the first message always fits (`nil`: no limit).
    /// Only a batch (`max` > 1) can reach it.
    public var maxBytes: Int?
    /// How long to wait for a first message when none is ready (zero: answer at once).
    public var timeout: Duration
    public var mode: ReceiveMode
    /// A batch whose first message had to be waited for waits this much longer for more: a burst
    /// of sends then arrives in one batch instead of a batch of one and a batch of the rest.
    public var linger: Duration
    /// Offloaded bodies are not read back: each such message carries a signed URL of its object,
    /// valid for its visibility timeout, instead (``QueueMessage/payloadLink``). Acknowledged
    /// mode only: a plain receive deletes the message, and its object, once it is written.
    public var signedPayloadURLs: Bool

    public init(
        queue: QueueName, max: Int = 1, maxBytes: Int? = nil, timeout: Duration = .zero, mode: ReceiveMode = .autoAcknowledge,
        linger: Duration = .milliseconds(5), signedPayloadURLs: Bool = false
    ) {
        self.queue = queue
        self.max = Swift.max(1, max)
        self.maxBytes = maxBytes
        self.timeout = timeout
        self.mode = mode
        self.linger = linger
        self.signedPayloadURLs = signedPayloadURLs
    }
}

/// What a transport learns while a delivery is prepared, for its metrics.
public protocol DeliveryObserver: Sendable {
    /// A request with a timeout began to wait for a message; ``waitFinished()`` follows.
    func waitStarted()
    func waitFinished()
}
