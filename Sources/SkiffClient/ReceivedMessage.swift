public import Foundation
public import NIOCore

/// A message as a receive handed it out.
public struct ReceivedMessage: Sendable {
    public let queue: String
    public let id: String
    /// The body exactly as it was sent (JSON).
    public let body: ByteBuffer
    /// Present in acknowledged mode: ack, nack or extend the message with it. A receipt names one
    /// delivery; after a redelivery the earlier one is stale and the server refuses it.
    public let receipt: String?
    /// 1 for the first delivery, then 2, 3...
    public let receiveCount: Int
    public let priority: Int
    /// As the server wrote it (ISO 8601, UTC).
    public let enqueuedAt: String?
    /// Only from a peek: why a body kept in the server's payload store cannot be read back;
    /// ``body`` is then JSON `null`.
    public let unreadableBody: String?

    public init(
        queue: String, id: String, body: ByteBuffer, receipt: String?, receiveCount: Int, priority: Int, enqueuedAt: String?,
        unreadableBody: String? = nil
    ) {
        self.queue = queue
        self.id = id
        self.body = body
        self.receipt = receipt
        self.receiveCount = receiveCount
        self.priority = priority
        self.enqueuedAt = enqueuedAt
        self.unreadableBody = unreadableBody
    }

    /// The body as UTF-8 text.
    public var text: String { String(buffer: body) }

    /// The body decoded as `type`.
    public func decode<T: Decodable>(_ type: T.Type, using decoder: JSONDecoder = JSONDecoder()) throws -> T {
        try decoder.decode(type, from: Data(body.readableBytesView))
    }
}

/// What the server answered to a send.
public struct SentMessage: Sendable, Equatable {
    public let id: String
    /// A repeat of an earlier send with the same idempotency key: nothing was stored now.
    public let isDuplicate: Bool

    public init(id: String, isDuplicate: Bool) {
        self.id = id
        self.isDuplicate = isDuplicate
    }
}

/// How a message is sent.
public struct SendOptions: Sendable, Equatable {
    /// Invisible this long after the send (`nil`: the queue's default delay).
    public var delay: Duration?
    /// 0 to 9; higher is delivered first.
    public var priority: Int?
    /// A repeat with the same key inside the queue's dedup window stores nothing. When `nil`, the
    /// client makes one up per call, so that its own retries are deduplicated.
    public var idempotencyKey: String?

    public init(delay: Duration? = nil, priority: Int? = nil, idempotencyKey: String? = nil) {
        self.delay = delay
        self.priority = priority
        self.idempotencyKey = idempotencyKey
    }
}
