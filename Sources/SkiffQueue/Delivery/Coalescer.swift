import NIOCore
import SkiffSupport
package import Synchronization

/// Merges concurrent operations on the same key into one storage call.
///
/// The first caller for a key leads: it yields once, so that callers already scheduled behind it
/// (on an event loop: the other requests of the same read) can join, then makes one call for the
/// whole batch and hands every member its share. Under light load a batch has one member and costs
/// one `Task.yield()`; under load one Redis script serves many requests, which is what makes a
/// single-message POST or GET cost Redis little more than the plain list command.
///
/// Members keep their arrival order, the leader first, so a merged send stores messages in the
/// order their requests arrived and a merged claim hands the oldest messages to the earliest callers.
/// A failed call fails every member (``Flush`` may decide otherwise per member).
///
/// Its code is inlinable: every backend uses it with its own key and item types from another
/// module, where unspecialized generic code would look up type metadata on every call.
package final class Coalescer<Key: Hashable & Sendable, Item: Sendable, Output: Sendable>: Sendable {
    /// Performs one merged call: `members[i]` are the items of the i-th member (the leader's first);
    /// returns one result per member.
    package typealias Flush = @Sendable (_ key: Key, _ members: [[Item]]) async -> [Result<[Output], any Error>]

    /// How a caller that found a batch open came out of joining it.
    @usableFromInline
    enum Joining: Sendable {
        /// The batch's leader ran the call: these are the caller's outputs.
        case served([Output])
        /// The batch was taken meanwhile: the caller leads a new one.
        case leads
        /// The batch has no room for the caller's items.
        case full
    }

    @usableFromInline
    struct Follower: Sendable {
        @usableFromInline let items: [Item]
        @usableFromInline let continuation: CheckedContinuation<Joining, any Error>

        @inlinable
        init(items: [Item], continuation: CheckedContinuation<Joining, any Error>) {
            self.items = items
            self.continuation = continuation
        }
    }

    @usableFromInline
    struct Batch: Sendable {
        @usableFromInline var followers: [Follower] = []
        @usableFromInline var itemCount: Int

        @inlinable
        init(itemCount: Int) {
            self.itemCount = itemCount
        }
    }

    @usableFromInline let batches = Mutex<[Key: Batch]>([:])
    @usableFromInline let maximumItems: Int
    @usableFromInline let isShielded: Bool
    @usableFromInline let flush: Flush

    /// - Parameters:
    ///   - maximumItems: a batch takes no more items than this (a caller with more runs alone).
    ///   - shielded: the merged call runs in a task of its own that no member's cancellation
    ///     reaches (one task per batch, not per member); members wait for their share regardless.
    ///     A cancelled member then decides what to do with what it got (a claim gives it back).
    package init(maximumItems: Int, shielded: Bool = false, flush: @escaping Flush) {
        self.maximumItems = maximumItems
        self.isShielded = shielded
        self.flush = flush
    }

    @inlinable
    func run(_ key: Key, _ members: [[Item]]) async -> [Result<[Output], any Error>] {
        guard isShielded else { return await flush(key, members) }
        let flush = self.flush
        return await Task(executorPreference: EventLoopTaskExecutor.current) { await flush(key, members) }.value
    }

    /// Runs `items` as part of a batch for `key`; returns this caller's outputs.
    @inlinable
    @_specialize(exported:true,where Key == QueueName, Item == ReceiveMode, Output == Delivery)
    @_specialize(exported:true,where Key == QueueName, Item == Receipt, Output == Bool)
    @_specialize(exported:true,where Key == SendMergeKey, Item == ByteBuffer, Output == SentMessage)
    package func submit(_ items: [Item], for key: Key) async throws -> [Output] {
        guard items.count < maximumItems else { return try await alone(items, key) }
        let leads = batches.withLock { batches -> Bool in
            guard batches[key] == nil else { return false }
            batches[key] = Batch(itemCount: items.count)
            return true
        }
        if !leads {
            let joining = try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Joining, any Error>) in
                let outcome = batches.withLock { batches -> Joining? in
                    // Taken out while it changes: a copy left in the dictionary would make every
                    // append copy the whole follower list.
                    guard var batch = batches.removeValue(forKey: key) else {
                        batches[key] = Batch(itemCount: items.count)
                        return .leads
                    }
                    defer { batches[key] = batch }
                    guard batch.itemCount + items.count <= maximumItems else { return .full }
                    batch.followers.append(Follower(items: items, continuation: continuation))
                    batch.itemCount += items.count
                    return nil
                }
                if let outcome { continuation.resume(returning: outcome) }
            }
            switch joining {
            case .served(let outputs): return outputs
            case .full: return try await alone(items, key)
            case .leads: break
            }
        }
        await Task.yield()
        let followers = batches.withLock { $0.removeValue(forKey: key)?.followers ?? [] }
        let results = await run(key, [items] + followers.map(\.items))
        for (index, follower) in followers.enumerated() {
            follower.continuation.resume(with: Self.result(results, index + 1).map { .served($0) })
        }
        return try Self.result(results, 0).get()
    }

    @inlinable
    func alone(_ items: [Item], _ key: Key) async throws -> [Output] {
        try await Self.result(run(key, [items]), 0).get()
    }

    @inlinable
    static func result(_ results: [Result<[Output], any Error>], _ index: Int) -> Result<[Output], any Error> {
        index < results.count ? results[index] : .failure(QueueError.internalError("a merged call returned \(results.count) results"))
    }
}

/// What concurrent sends must share to be stored by one merged call: the queue and the options
/// that apply to every message of the call.
package struct SendMergeKey: Hashable, Sendable {
    package let queue: QueueName
    package let delayMilliseconds: Int64?
    package let priority: Int

    package init(queue: QueueName, delayMilliseconds: Int64?, priority: Int) {
        self.queue = queue
        self.delayMilliseconds = delayMilliseconds
        self.priority = priority
    }
}
