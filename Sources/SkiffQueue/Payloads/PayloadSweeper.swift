public import Foundation
public import Logging
public import ServiceLifecycle

/// Deletes the payload store's message objects (`m/...`) older than the retention period: the
/// objects no message refers to any more, because their send crashed between the upload and the
/// enqueue or ended with an unknown outcome, or because their message was purged, deleted with its
/// queue or expired. An acked message's object is deleted at once (``OffloadingQueues``); this is
/// the sweep for the rest, the same rule as the Cloud Storage bucket's lifecycle (terraform/).
///
/// The retention must outlast every message's life: a message's body is read from its object
/// until the message is gone, and dead-lettering and redriving restart a message's retention
/// (docs/payloads.md says how to choose it). Every replica sweeps on its own timer, with jitter;
/// deleting is idempotent, so two replicas sweeping at once only repeat each other's deletes.
public struct PayloadSweeper: Service {
    public let store: any PayloadStore
    /// Objects older than this are deleted.
    public let retention: Duration
    /// Time between rounds (each waits a random extra of up to a tenth of it).
    public let interval: Duration
    private let now: @Sendable () -> Date
    private let logger: Logger

    /// Objects listed per page.
    static let pageSize = 1_000

    public init(
        store: any PayloadStore, retention: Duration, interval: Duration, logger: Logger, now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.store = store
        self.retention = retention
        self.interval = interval
        self.logger = logger
        self.now = now
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                let jitter = Double.random(in: 0...0.1)
                try? await Task.sleep(for: interval + interval * jitter)
                if Task.isCancelled { break }
                do {
                    let deleted = try await sweep()
                    if deleted > 0 { logger.info("payload sweep deleted objects past their retention", metadata: ["payload.deleted": "\(deleted)"]) }
                } catch {
                    logger.warning("payload sweep failed; the next round tries again", metadata: ["error": "\(error)"])
                }
            }
        }
    }

    /// One round: lists every message object and deletes those past the retention.
    /// - Returns: how many it deleted.
    /// - Throws: the store's error when a listing fails (a failed delete is logged and skipped).
    @discardableResult
    public func sweep() async throws -> Int {
        let cutoff = now().addingTimeInterval(-Double(retention.components.seconds) - Double(retention.components.attoseconds) / 1e18)
        var deleted = 0
        var token: String?
        repeat {
            let page = try await store.list(prefix: "m/", pageToken: token, pageSize: Self.pageSize)
            for object in page.objects where object.createdAt < cutoff {
                do {
                    try await store.delete(key: object.key)
                    deleted += 1
                } catch {
                    logger.warning("could not delete a payload object past its retention", metadata: ["payload.key": "\(object.key)", "error": "\(error)"])
                }
            }
            token = page.nextPageToken
        } while token != nil && !Task.isCancelled
        return deleted
    }
}
