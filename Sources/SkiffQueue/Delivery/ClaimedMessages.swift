/// What one claim of ready messages took: the deliveries, oldest first, and whether a byte limit
/// ended it before `max` (more may be ready; a consumer that got fewer than it asked for for
/// that reason must not conclude the queue is empty).
public struct ClaimedMessages: Sendable {
    public var deliveries: [Delivery]
    public var stoppedAtByteLimit: Bool

    public init(deliveries: [Delivery], stoppedAtByteLimit: Bool = false) {
        self.deliveries = deliveries
        self.stoppedAtByteLimit = stoppedAtByteLimit
    }
}
