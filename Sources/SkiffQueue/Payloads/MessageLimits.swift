/// The size limits of sends to one queue (``OffloadingQueues/limits(of:)``): its own settings
/// within the replica's limits.
public struct MessageLimits: Sendable, Equatable {
    /// The largest body a send may carry.
    public var maximumBytes: Int
    /// What sets ``maximumBytes``, for a 413's message.
    public var setBy: String
    /// Bodies larger than this go to the payload store; `nil`: no store, every body stays in the queue.
    public var offloadThresholdBytes: Int?

    public init(maximumBytes: Int, setBy: String = "the largest message", offloadThresholdBytes: Int? = nil) {
        self.maximumBytes = maximumBytes
        self.setBy = setBy
        self.offloadThresholdBytes = offloadThresholdBytes
    }
}

/// The settings behind a queue's ``MessageLimits``, as remembered between reads.
struct QueueSizeSettings: Sendable {
    var maxMessageBytes: Int?
    var offloadThresholdBytes: Int?

    init(_ settings: QueueSettings) {
        self.maxMessageBytes = settings.maxMessageBytes
        self.offloadThresholdBytes = settings.offloadThresholdBytes
    }
}
