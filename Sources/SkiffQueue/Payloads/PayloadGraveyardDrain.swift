public import Logging
public import ServiceLifecycle

/// Deletes the stored bodies of messages deleted for good without an ack (purged, deleted with
/// their queue, expired) soon after: every `interval` it empties the backend's graveyard, where
/// the step that deleted the messages set their ids aside (``OffloadingQueues/deleteBuriedPayloads(max:)``).
/// Every replica runs one; each id is taken by one of them. What a replica takes and then fails to
/// delete (it died, the store is down) is left to the ``PayloadSweeper``.
public struct PayloadGraveyardDrain: Service {
    let queues: OffloadingQueues
    let interval: Duration
    let logger: Logger

    public init(queues: OffloadingQueues, interval: Duration = .seconds(5), logger: Logger) {
        self.queues = queues
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while (try? await Task.sleep(for: interval)) != nil, !Task.isCancelled {
                await drain()
            }
        }
    }

    /// Pages until the graveyard is empty (or a page fails).
    /// - Returns: how many ids it took.
    @discardableResult
    public func drain() async -> Int {
        var total = 0
        do {
            while true {
                let taken = try await queues.deleteBuriedPayloads(max: 1000)
                total += taken
                if taken < 1000 { break }
            }
        } catch {
            if !(error is CancellationError) {
                logger.warning("could not read the payload graveyard", metadata: ["error": "\(error)"])
            }
        }
        return total
    }
}
