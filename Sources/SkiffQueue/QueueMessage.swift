public import NIOCore

/// A stored message as a consumer receives it.
public struct QueueMessage: Sendable {
    public let id: String
    /// The body exactly as it was posted.
    public let body: ByteBuffer
    /// When the message entered this queue, in Unix milliseconds by the backend's clock (Redis
    /// `TIME`). For a dead letter, when it was moved; for a redriven message, when it came back.
    public let enqueuedAtMilliseconds: Int64
    /// How many times the message has been handed to a consumer of this queue, this delivery
    /// included. A release (the consumer never got it) takes one back.
    public let receiveCount: Int
    /// 0 to 9; higher is delivered first.
    public let priority: Int
    /// The reason given by the last nack, if it gave one.
    public let lastError: String?
    /// For a dead letter: where it came from and what happened there.
    public let deadLetter: DeadLetterHistory?
    /// Only in a peek: why the body, kept in the payload store, could not be read back (missing,
    /// not what was stored, larger than this replica reads); ``body`` is then empty. A receive
    /// never hands such a message out: it nacks it.
    public let unreadableBody: String?
    /// The producer's trace context, if its send carried one.
    public let traceContext: MessageTraceContext?
    /// Only for a receive that asked for signed URLs (``DeliveryRequest/signedPayloadURLs``):
    /// where the offloaded body is to be fetched; ``body`` is then empty.
    public let payloadLink: PayloadLink?

    public init(
        id: String,
        body: ByteBuffer,
        enqueuedAtMilliseconds: Int64,
        receiveCount: Int,
        priority: Int = 0,
        lastError: String? = nil,
        deadLetter: DeadLetterHistory? = nil,
        unreadableBody: String? = nil,
        traceContext: MessageTraceContext? = nil,
        payloadLink: PayloadLink? = nil
    ) {
        self.id = id
        self.body = body
        self.enqueuedAtMilliseconds = enqueuedAtMilliseconds
        self.receiveCount = receiveCount
        self.priority = priority
        self.lastError = lastError
        self.deadLetter = deadLetter
        self.unreadableBody = unreadableBody
        self.traceContext = traceContext
        self.payloadLink = payloadLink
    }
}

/// What a message went through before it was moved to a dead-letter queue.
public struct DeadLetterHistory: Sendable, Equatable {
    /// The queue it failed in.
    public let sourceQueue: QueueName
    /// Receives in the source queue.
    public let receiveCount: Int
    public let firstReceivedAtMilliseconds: Int64
    public let lastReceivedAtMilliseconds: Int64
    /// The reason of the last nack, if it gave one.
    public let lastError: String?

    public init(sourceQueue: QueueName, receiveCount: Int, firstReceivedAtMilliseconds: Int64, lastReceivedAtMilliseconds: Int64, lastError: String?) {
        self.sourceQueue = sourceQueue
        self.receiveCount = receiveCount
        self.firstReceivedAtMilliseconds = firstReceivedAtMilliseconds
        self.lastReceivedAtMilliseconds = lastReceivedAtMilliseconds
        self.lastError = lastError
    }
}

/// Identifies one delivery of one message: `<message id>.<claim token>`. A receipt from an earlier
/// delivery never matches a later one, so it cannot ack or change a message redelivered since.
public struct Receipt: Hashable, Sendable, LosslessStringConvertible {
    public let messageID: String
    public let claimToken: Int
    /// The partition of a partitioned queue the message is stored in (0 for any other queue).
    public let partition: Int

    public init(messageID: String, claimToken: Int, partition: Int = 0) {
        self.messageID = messageID
        self.claimToken = claimToken
        self.partition = partition
    }

    /// Parses `<id>.<token>`, or `<id>~<partition>.<token>` for a partitioned queue's message;
    /// `nil` for anything else (never a valid receipt).
    public init?(_ description: String) {
        guard let dot = description.utf8.lastIndex(of: UInt8(ascii: ".")) else { return nil }
        var id = description[..<dot]
        let token = description[description.index(after: dot)...]
        var partition = 0
        if let tilde = id.utf8.firstIndex(of: UInt8(ascii: "~")) {
            let digits = id[id.index(after: tilde)...]
            guard let index = Int(digits), (1..<QueueName.maximumPartitions).contains(index), String(index) == digits else { return nil }
            partition = index
            id = id[..<tilde]
        }
        guard (1...64).contains(id.utf8.count), id.utf8.allSatisfy({ $0.isASCIIAlphanumeric }),
            (1...18).contains(token.utf8.count), token.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let value = Int(token), value > 0
        else { return nil }
        self.messageID = String(id)
        self.claimToken = value
        self.partition = partition
    }

    public var description: String { partition == 0 ? "\(messageID).\(claimToken)" : "\(messageID)~\(partition).\(claimToken)" }
}

extension UInt8 {
    fileprivate var isASCIIAlphanumeric: Bool {
        (0x30...0x39).contains(self) || (0x41...0x5A).contains(self) || (0x61...0x7A).contains(self)
    }
}

/// How a receive settles its messages.
public enum ReceiveMode: Sendable, Equatable {
    /// The PRD's GET: the message is deleted once its response was handed to the client.
    case autoAcknowledge
    /// The consumer acks, nacks or extends by receipt; unacked messages come back after the
    /// visibility timeout (`nil`: the queue's ``QueueSettings/visibilityTimeoutMilliseconds``).
    case acknowledge(visibilityTimeout: Duration?)
}

/// A message claimed for one consumer and not yet settled.
///
/// In auto-acknowledge mode, exactly one of ``QueueBackend/complete(_:)`` (the response reached
/// the client's connection) or ``QueueBackend/release(_:)`` (it did not) should follow. If neither
/// does, because the replica died, the lease expires and the message returns to the head of its
/// queue. In acknowledged mode the consumer settles it by ``receipt``; ``QueueBackend/release(_:)``
/// still returns it when it never reached the consumer.
public struct Delivery: Sendable {
    public let queue: QueueName
    public let message: QueueMessage
    /// Identifies this delivery of the message; a later delivery of the same message has another.
    public let claimToken: Int
    /// When the claim was sent, by this process's monotonic clock: never later than the moment
    /// the backend started the lease, so local elapsed time never underestimates the lease's age.
    public let claimedAt: ContinuousClock.Instant
    /// The claim lease (auto-acknowledge) or the visibility timeout (acknowledged).
    public let lease: Duration
    public let isAcknowledgedMode: Bool

    public init(
        queue: QueueName,
        message: QueueMessage,
        claimToken: Int,
        claimedAt: ContinuousClock.Instant,
        lease: Duration,
        isAcknowledgedMode: Bool = false
    ) {
        self.queue = queue
        self.message = message
        self.claimToken = claimToken
        self.claimedAt = claimedAt
        self.lease = lease
        self.isAcknowledgedMode = isAcknowledgedMode
    }

    public var receipt: Receipt { Receipt(messageID: message.id, claimToken: claimToken, partition: queue.partitionIndex) }

    /// True once half the lease has passed locally: check the claim with the backend before
    /// handing the message out, because it may have been recovered and delivered elsewhere.
    public var needsFenceCheck: Bool {
        ContinuousClock.now - claimedAt > lease / 2
    }
}

/// Options of a send.
public struct SendOptions: Sendable, Equatable {
    /// Invisible until this delay has passed; `nil`: the queue's ``QueueSettings/delayMilliseconds``.
    /// At most the queue's retention period.
    public var delay: Duration?
    /// 0 to 9; higher is delivered first, FIFO within a priority.
    public var priority: Int
    /// A repeat with the same key inside the queue's dedup window stores nothing and answers the
    /// original message ids, marked as duplicates.
    public var idempotencyKey: String?
    /// The ids the messages get, one per body, instead of fresh ones: for ``OffloadingQueues``,
    /// which names a body's object after its message before the message exists. Each must be a
    /// fresh ``MessageID`` (a reused id would give two messages one identity). A send with ids is
    /// never merged with other sends.
    public var messageIDs: [String]?
    /// Stored with every message of the send and handed back with each delivery. A send with one
    /// is never merged with other sends.
    public var traceContext: MessageTraceContext?

    public init(
        delay: Duration? = nil, priority: Int = 0, idempotencyKey: String? = nil, messageIDs: [String]? = nil,
        traceContext: MessageTraceContext? = nil
    ) {
        self.delay = delay
        self.priority = priority
        self.idempotencyKey = idempotencyKey
        self.messageIDs = messageIDs
        self.traceContext = traceContext
    }

    public static let maximumPriority = 9
    public static let maximumIdempotencyKeyLength = 256

    /// - Throws: ``QueueError`` `.invalidArgument` for a priority outside 0...9, a negative delay,
    ///   or an idempotency key that is empty or longer than 256 bytes.
    public func validate() throws(QueueError) {
        guard (0...Self.maximumPriority).contains(priority) else {
            throw .invalidArgument("priority must be an integer from 0 to \(Self.maximumPriority)")
        }
        if let delay, delay < .zero { throw .invalidArgument("delay must not be negative") }
        if let idempotencyKey, !(1...Self.maximumIdempotencyKeyLength).contains(idempotencyKey.utf8.count) {
            throw .invalidArgument("Idempotency-Key must be 1 to \(Self.maximumIdempotencyKeyLength) bytes")
        }
    }

    /// ``validate()``, and for a send of `bodies` bodies, that ``messageIDs`` (if given) names
    /// each once with a 26-character id.
    public func validate(bodies: Int) throws(QueueError) {
        try validate()
        guard let messageIDs else { return }
        guard messageIDs.count == bodies, Set(messageIDs).count == bodies, messageIDs.allSatisfy({ $0.utf8.count == 26 }) else {
            throw .internalError("a send of \(bodies) bodies was given \(messageIDs.count) message ids, not one fresh id each")
        }
    }
}

/// The answer to a successful send.
public struct SentMessage: Sendable, Equatable {
    public let id: String
    public let queue: QueueName
    public let enqueuedAtMilliseconds: Int64
    /// True when an earlier send with the same idempotency key stored this message, and this one
    /// stored nothing.
    public let isDuplicate: Bool

    public init(id: String, queue: QueueName, enqueuedAtMilliseconds: Int64, isDuplicate: Bool = false) {
        self.id = id
        self.queue = queue
        self.enqueuedAtMilliseconds = enqueuedAtMilliseconds
        self.isDuplicate = isDuplicate
    }
}
