public import Logging
public import NIOCore
import SkiffSupport
import Synchronization

/// How a replica uses its payload store (docs/payloads.md).
public struct PayloadOffload: Sendable {
    public var store: any PayloadStore
    /// Bodies larger than this go to the store; Redis keeps a pointer in their place.
    public var thresholdBytes: Int
    /// The largest body read back from the store: a pointer to a larger one is refused before
    /// anything is read, so a replica's memory stays bounded whatever the pointer says.
    public var maximumBodyBytes: Int
    /// Bytes of bodies read back that a replica holds at once, from the read until the delivery
    /// is settled: past it a receive gives its message back at once and answers 503 (one message
    /// is always read when nothing else is held).
    public var maximumHeldBytes: Int
    /// The largest body the inner backend keeps (`MAX_MESSAGE_BYTES`): no queue's
    /// `offloadThresholdBytes` may pass it.
    public var maximumInlineBytes: Int
    /// How long an object is kept at most (`PAYLOADS_RETENTION_MS`, the sweep's rule): the count
    /// of the copies sharing one (a topic publish's) is kept as long.
    public var retention: Duration

    public init(
        store: any PayloadStore, thresholdBytes: Int = PayloadOffload.defaultThresholdBytes, maximumBodyBytes: Int,
        maximumHeldBytes: Int = PayloadOffload.defaultMaximumHeldBytes, maximumInlineBytes: Int = 1 << 20,
        retention: Duration = PayloadOffload.defaultRetention
    ) {
        self.store = store
        self.thresholdBytes = thresholdBytes
        self.maximumBodyBytes = maximumBodyBytes
        self.maximumHeldBytes = maximumHeldBytes
        self.maximumInlineBytes = maximumInlineBytes
        self.retention = retention
    }

    /// 30 days.
    public static var defaultRetention: Duration { .seconds(30 * 24 * 3600) }

    /// 256 MiB: eight 32 MiB bodies.
    public static var defaultMaximumHeldBytes: Int { 256 << 20 }

    /// 256 KiB, where SQS's Extended Client offloads.
    public static var defaultThresholdBytes: Int { 256 * 1024 }

    /// The object of the offloaded message `id`: `m/<id>`. Named after the message, which keeps
    /// its id through nacks, dead-lettering and redrives, so whoever settles a receipt knows the
    /// object without reading the message.
    public static func key(of id: some StringProtocol) throws(PayloadStoreError) -> PayloadKey {
        try PayloadKey("m/\(id)")
    }
}

/// Message bodies too large for Redis kept in a ``PayloadStore``, over any backend, with every
/// receive path none the wiser (docs/payloads.md):
/// - A send stores each body over the threshold in the store first, under the key its message's
///   id names (``PayloadOffload/key(of:)``; the id is tagged, ``MessageID/isOffloaded(_:)``), then
///   sends a ``PayloadPointer`` in its place. A send refused by the queue (full, too many
///   queues...) deletes its objects; one whose outcome is unknown (storage timed out) keeps them,
///   since the message may exist: an orphan costs storage, a deleted body would lose a message.
/// - A delivery reads each pointer's object back, verified against its size and SHA-256, before
///   anything is handed out. A store that cannot be reached gives the message back at once
///   (503); an object missing or corrupted is a ``QueueError/payloadUnreadable(_:)`` (502) and
///   its message is nacked with that reason, so it retries and in the end goes to its dead-letter
///   queue instead of blocking its queue's head. A batch still delivers the rest, and stops at
///   its byte limit counting the bodies read back.
/// - An object is deleted after its message: after an ack, or the deletion that follows a plain
///   GET's response. Nacks, dead-lettering and redrives keep it.
/// - Without a store, sends pass through; a pointer that still turns up (written while a store
///   was configured) is never handed out as a body.
/// - Each queue's `maxMessageBytes` and `offloadThresholdBytes` apply to every send, within the
///   replica's own limits (``limits(of:)``), read at most a second ago.
public final class OffloadingQueues: QueueBackend {
    public let inner: any QueueBackend
    public let offload: PayloadOffload?
    /// The largest body a send may carry on this replica (`MAX_MESSAGE_BYTES`, or
    /// `PAYLOADS_MAX_MESSAGE_BYTES` with a store); `nil`: no limit of its own here.
    public let maximumMessageBytes: Int?
    /// Each queue's size settings, read at most a second ago.
    private let sizeSettings = RecentlyRead<QueueSizeSettings>(refreshInterval: .seconds(1))
    let logger: Logger
    /// Bytes of bodies read back and not yet settled (``PayloadOffload/maximumHeldBytes``).
    private let heldBytes = Mutex(0)
    /// Object deletes under way in the background (``deleteObjects(ofMessages:)``).
    private let pendingDeletes = Mutex(0)

    /// Where objects of deleted messages are deleted, so that shutdown waits for them (`nil`: on
    /// tasks of their own).
    private let settlements: SettlementTasks?

    public init(
        _ inner: any QueueBackend, offload: PayloadOffload?, maximumMessageBytes: Int? = nil, settlements: SettlementTasks? = nil, logger: Logger
    ) {
        self.inner = inner
        self.offload = offload
        self.maximumMessageBytes = maximumMessageBytes
        self.settlements = settlements
        self.logger = logger
    }

    // MARK: Limits

    /// The size limits of sends to `queue`: its settings within this replica's limits.
    public func limits(of queue: QueueName) async throws -> MessageLimits {
        let own = try await sizeSettings.value(of: queue) {
            QueueSizeSettings(try await inner.settings(of: queue))
        } check: { sizes in
            // Stored by a newer version or by hand: refused rather than trusted.
            for value in [sizes.maxMessageBytes, sizes.offloadThresholdBytes].compactMap({ $0 })
            where !(1...QueueSettings.maximumMessageBytesLimit).contains(value) {
                throw QueueError.internalError("queue \(queue) has a stored size setting of \(value), outside 1...\(QueueSettings.maximumMessageBytesLimit)")
            }
        }
        var limits = MessageLimits(maximumBytes: maximumMessageBytes ?? .max)
        if let bytes = own.maxMessageBytes, bytes < limits.maximumBytes {
            limits.maximumBytes = bytes
            limits.setBy = "queue \(queue)'s maxMessageBytes"
        }
        if let offload {
            limits.offloadThresholdBytes = min(own.offloadThresholdBytes ?? offload.thresholdBytes, offload.maximumInlineBytes)
        }
        return limits
    }

    /// A queue's size settings must fit this replica: a threshold needs a store and must keep
    /// inline bodies within what the backend keeps; a message limit cannot pass the replica's.
    private func checkSizes(_ settings: QueueSettings) throws {
        if let threshold = settings.offloadThresholdBytes {
            guard let offload else {
                throw QueueError.invalidArgument(
                    "offloadThresholdBytes needs a payload store (PAYLOADS_STORE): this service keeps every message body in the queue")
            }
            guard threshold <= offload.maximumInlineBytes else {
                throw QueueError.invalidArgument(
                    "offloadThresholdBytes must be at most \(offload.maximumInlineBytes) (MAX_MESSAGE_BYTES, the largest body kept in the queue)")
            }
        }
        if let bytes = settings.maxMessageBytes, let maximumMessageBytes, bytes > maximumMessageBytes {
            let source =
                offload == nil
                ? "MAX_MESSAGE_BYTES; a payload store (PAYLOADS_STORE) raises the ceiling to 32 MiB" : "PAYLOADS_MAX_MESSAGE_BYTES"
            throw QueueError.invalidArgument("maxMessageBytes must be at most \(maximumMessageBytes) on this service (\(source))")
        }
    }

    // MARK: Send

    public func send(_ bodies: [ByteBuffer], to queue: QueueName, options: SendOptions) async throws -> [SentMessage] {
        let limits = try await limits(of: queue)
        if let index = bodies.firstIndex(where: { $0.readableBytes > limits.maximumBytes }) {
            let which = bodies.count == 1 ? "message" : "message \(index)"
            throw QueueError.tooLarge("\(which) is larger than \(limits.setBy) (\(limits.maximumBytes) bytes)")
        }
        guard offload != nil, let threshold = limits.offloadThresholdBytes, bodies.contains(where: { $0.readableBytes > threshold }) else {
            return try await inner.send(bodies, to: queue, options: options)
        }
        try options.validate()
        let now = MessageID.currentMilliseconds()
        var ids = bodies.map { _ in MessageID.make(nowMilliseconds: now) }
        var stored = bodies
        let uploaded = try await upload(bodies, over: threshold, shared: false, nowMilliseconds: now, ids: &ids, stored: &stored)
        var options = options
        options.messageIDs = ids
        return try await enqueue(stored, objects: uploaded.values.compactMap { try? PayloadOffload.key(of: $0) }, to: queue, options: options)
    }

    /// Writes each of `bodies` larger than `threshold` to the store under a tagged id made for it
    /// (``PayloadOffload/key(of:)``), before any message exists: that id replaces its entry in
    /// `ids`, and its pointer the body in `stored`.
    /// - Returns: the id of each body written, by its index.
    /// - Throws: the store's failure as a queue error (``writeError(_:)``), after deleting the
    ///   objects already written: nothing refers to them.
    func upload(
        _ bodies: [ByteBuffer], over threshold: Int, shared: Bool, nowMilliseconds: Int64, ids: inout [String], stored: inout [ByteBuffer]
    ) async throws -> [Int: String] {
        guard let offload else { throw QueueError.internalError("an upload needs a payload store") }
        var uploaded: [Int: String] = [:]
        for (index, body) in bodies.enumerated() where body.readableBytes > threshold {
            let id = MessageID.make(nowMilliseconds: nowMilliseconds, offloaded: true, shared: shared)
            do {
                let key = try PayloadOffload.key(of: id)
                stored[index] = try await offload.store.put(key: key, body: BufferChunks(body), size: body.readableBytes).encode()
                ids[index] = id
                uploaded[index] = id
            } catch {
                await deleteObjects(uploaded.values.compactMap { try? PayloadOffload.key(of: $0) }, because: "the send failed before its messages were stored")
                throw Self.writeError(error)
            }
        }
        return uploaded
    }

    /// Sends one message whose body, `size` bytes, arrives as a stream: it goes to the store as it
    /// arrives (a replica holds a chunk or two of it, never the whole), then its pointer is sent.
    /// `body` may check what passes and throw to give up (the HTTP layer validates the JSON
    /// there): its error is rethrown as it is, and nothing is stored.
    public func send<Body: AsyncSequence & Sendable>(
        streaming body: Body, size: Int, to queue: QueueName, options: SendOptions
    ) async throws -> SentMessage where Body.Element == ByteBuffer {
        guard let offload else { throw QueueError.internalError("a streamed send needs a payload store") }
        try options.validate()
        let limits = try await limits(of: queue)
        guard size <= limits.maximumBytes else {
            throw QueueError.tooLarge("message is larger than \(limits.setBy) (\(limits.maximumBytes) bytes)")
        }
        let id = MessageID.make(offloaded: true)
        let key = try PayloadOffload.key(of: id)
        let pointer: PayloadPointer
        do {
            pointer = try await offload.store.put(key: key, body: body, size: size)
        } catch {
            throw Self.writeError(error)
        }
        var options = options
        options.messageIDs = [id]
        guard let sent = try await enqueue([pointer.encode()], objects: [key], to: queue, options: options).first else {
            throw QueueError.internalError("a send of one message returned no id")
        }
        return sent
    }

    /// Sends `stored` (bodies and pointers to `objects`, already written) with their ids in `options`.
    private func enqueue(_ stored: [ByteBuffer], objects keys: [PayloadKey], to queue: QueueName, options: SendOptions) async throws -> [SentMessage] {
        let sent: [SentMessage]
        do {
            sent = try await inner.send(stored, to: queue, options: options)
        } catch let error as QueueError where Self.refusedWithoutStoring(error) {
            await deleteObjects(keys, because: "the queue refused the send")
            throw error
        }
        // A repeat of an idempotent send stored nothing: its messages are the first send's.
        if sent.contains(where: \.isDuplicate) { await deleteObjects(keys, because: "the send repeated an earlier one") }
        return sent
    }

    /// Errors after which a send has certainly stored nothing. Any other (a timeout, a lost
    /// connection, cancellation) leaves the outcome unknown.
    static func refusedWithoutStoring(_ error: QueueError) -> Bool {
        switch error.kind {
        case .queueFull, .tooManyQueues, .invalidArgument, .conflict, .tooLarge, .unsupported, .insufficientStorage: true
        case .unavailable, .payloadUnreadable, .internalError: false
        }
    }

    // MARK: Deliver

    public func deliver(_ request: DeliveryRequest, context: DeliveryContext) async throws -> DeliveryLease? {
        guard let lease = try await inner.deliver(request, context: context) else { return nil }
        guard lease.deliveries.contains(where: { PayloadPointer.decode($0.message.body) != nil }) else { return lease }
        return try await resolve(lease, maximumBytes: request.maxBytes, signedURLs: request.signedPayloadURLs, logger: context.logger)
    }

    /// The lease with every pointer replaced by its body (see the type's notes for failures).
    /// With `signedURLs`, acknowledged deliveries carry a signed URL of each object instead of its
    /// body (nothing is read).
    private func resolve(_ lease: DeliveryLease, maximumBytes: Int?, signedURLs: Bool, logger: Logger) async throws -> DeliveryLease? {
        var kept = ClaimedMessages(deliveries: [])
        var dropped: [Delivery] = []
        var failure: (any Error)?
        var bytes = 0
        // Bytes of bodies read back that this lease holds, until it is settled.
        var reserved = 0
        // Signed up front, several at once: one at a time, a slow signer (Cloud Storage's is a
        // round trip to IAM) would spend a large batch's visibility timeout.
        let links = signedURLs ? await signLinks(lease.deliveries) : [:]
        for (index, delivery) in lease.deliveries.enumerated() {
            let pointer = PayloadPointer.decode(delivery.message.body)
            let linked = signedURLs && delivery.isAcknowledgedMode && pointer != nil
            // A link is a few hundred bytes of the reply, whatever the body's size.
            let size = linked ? Self.linkBytes : pointer?.size ?? delivery.message.body.readableBytes
            // Past the byte limit (one message always fits), the rest go back, in order; so do
            // they after the store failed or the replica's read budget ran out.
            if kept.stoppedAtByteLimit || (maximumBytes.map { !kept.deliveries.isEmpty && bytes + size > $0 } ?? false) {
                kept.stoppedAtByteLimit = true
                dropped.append(delivery)
                continue
            }
            if let failure, (failure as? QueueError)?.kind != .payloadUnreadable {
                dropped.append(delivery)
                continue
            }
            guard let pointer else {
                kept.deliveries.append(delivery)
                bytes += size
                continue
            }
            if linked {
                switch links[index] {
                case .success(let link)?:
                    kept.deliveries.append(delivery.replacingBody(ByteBuffer(), link: link))
                    bytes += size
                case .failure(let error)?:
                    dropped.append(delivery)
                    if failure == nil {
                        logger.error(
                            "the payload store could not sign a URL; the messages went back",
                            metadata: ["queue.name": "\(lease.queue)", "message.id": "\(delivery.message.id)", "error": "\(error)"])
                    }
                    failure = failure ?? Self.signingError(error)
                case nil:
                    dropped.append(delivery)
                }
                continue
            }
            guard reserve(pointer.size) else {
                dropped.append(delivery)
                failure =
                    failure
                    ?? QueueError.unavailable(
                        "this replica holds its limit of bodies read back from the payload store (PAYLOADS_MAX_READ_BYTES); the message went back to its queue, retry"
                    )
                continue
            }
            reserved += pointer.size
            do {
                let body = try await read(pointer, of: delivery.message.id)
                kept.deliveries.append(delivery.replacingBody(body))
                bytes += size
            } catch let error as QueueError where error.kind == .payloadUnreadable {
                unreserve(pointer.size)
                reserved -= pointer.size
                logger.error(
                    "a message body in the payload store is unreadable; the message is nacked",
                    metadata: ["queue.name": "\(lease.queue)", "message.id": "\(delivery.message.id)", "error": "\(error.message)"]
                )
                do {
                    _ = try await inner.reject(delivery.receipt, in: lease.queue, delay: nil, reason: error.message)
                } catch {
                    dropped.append(delivery)
                }
                failure = failure ?? error
            } catch {
                unreserve(pointer.size)
                reserved -= pointer.size
                dropped.append(delivery)
                failure = failure ?? error
            }
        }
        // More may be ready where the claim stopped at its own byte limit.
        kept.stoppedAtByteLimit = kept.stoppedAtByteLimit || lease.stoppedAtByteLimit
        let held = reserved
        let resolved = await lease.replaced(
            by: kept, releasing: dropped,
            afterDeletion: { deleted in self.deleteObjects(ofMessages: deleted.map(\.message.id)) },
            onSettled: { self.unreserve(held) }
        )
        if resolved == nil, let failure { throw failure }
        return resolved
    }

    /// What a link counts against a batch's byte limit: a Cloud Storage V4 URL is about 830
    /// bytes, with the JSON around it about 1 KB.
    static var linkBytes: Int { 1200 }

    /// Signs at most this many links at once.
    static var concurrentSignings: Int { 16 }

    /// A signed URL (or the failure) for each acknowledged delivery of an offloaded body, by its
    /// index in `deliveries`.
    private func signLinks(_ deliveries: [Delivery]) async -> [Int: Result<PayloadLink, any Error>] {
        let wanted = deliveries.enumerated().compactMap { index, delivery -> (Int, PayloadPointer, Delivery)? in
            guard delivery.isAcknowledgedMode, let pointer = PayloadPointer.decode(delivery.message.body) else { return nil }
            return (index, pointer, delivery)
        }
        return await withTaskGroup(of: (Int, Result<PayloadLink, any Error>).self) { group in
            var results: [Int: Result<PayloadLink, any Error>] = [:]
            for (offset, (index, pointer, delivery)) in wanted.enumerated() {
                // At most `concurrentSignings` under way: past that, one ends before the next starts.
                if offset >= Self.concurrentSignings, let (done, result) = await group.next() { results[done] = result }
                group.addTask { (index, await self.signedLink(to: pointer, of: delivery)) }
            }
            for await (done, result) in group { results[done] = result }
            return results
        }
    }

    /// ``link(to:of:)`` or its failure. (A child task that built its `(index, result)` around a
    /// `do`/`catch` of its own came out of Swift 6.3.1's release optimizer with a garbage index.)
    private func signedLink(to pointer: PayloadPointer, of delivery: Delivery) async -> Result<PayloadLink, any Error> {
        do {
            return .success(try await link(to: pointer, of: delivery))
        } catch {
            return .failure(error)
        }
    }

    /// A signed URL of `pointer`'s object, valid until `delivery`'s lease ends.
    private func link(to pointer: PayloadPointer, of delivery: Delivery) async throws -> PayloadLink {
        guard let offload else { throw PayloadStoreError.unsupported("this replica has no payload store (PAYLOADS_STORE)") }
        let remaining = max(.zero, delivery.lease - (ContinuousClock.now - delivery.claimedAt))
        let expiresAt = MessageID.currentMilliseconds() + remaining.milliseconds
        let url = try await offload.store.signedURL(for: pointer, expiresAtMilliseconds: expiresAt)
        return PayloadLink(url: url, size: pointer.size, sha256: pointer.sha256, expiresAtMilliseconds: expiresAt)
    }

    /// A store's failure to sign, as the queue failure a transport answers: the message went back.
    static func signingError(_ error: any Error) -> any Error {
        guard let error = error as? PayloadStoreError else { return error }
        switch error {
        case .unavailable():
            // The detail (a service account, the signer's answer) is logged, not answered.
            return QueueError.unavailable("the payload store could not sign a URL; the message went back to its queue, retry")
        case .unsupported(): return QueueError.unsupported(error.message)
        default: return QueueError.internalError("the payload store could not sign a URL: \(error.message)")
        }
    }

    /// Takes `bytes` of the read budget: `false` when that would pass it, unless nothing is held
    /// (a message larger than the budget is still delivered, alone).
    private func reserve(_ bytes: Int) -> Bool {
        guard let offload else { return true }
        return heldBytes.withLock { held in
            guard held == 0 || held + bytes <= offload.maximumHeldBytes else { return false }
            held += bytes
            return true
        }
    }

    private func unreserve(_ bytes: Int) {
        guard bytes > 0 else { return }
        heldBytes.withLock { $0 -= bytes }
    }

    /// The body `pointer` names, verified. Any failure but an unreachable store (or a cancelled
    /// caller) is ``QueueError/payloadUnreadable(_:)``: retrying would not help. Messages name the
    /// message and its key, never the store's path or bucket.
    private func read(_ pointer: PayloadPointer, of id: String) async throws -> ByteBuffer {
        let object = "the body of message \(id) (object m/\(id))"
        guard let offload else {
            throw QueueError.payloadUnreadable("\(object) is in a payload store, and this replica has none configured (PAYLOADS_STORE)")
        }
        do {
            return try await offload.store.bytes(of: pointer, upTo: offload.maximumBodyBytes)
        } catch let error as PayloadStoreError {
            switch error {
            case .unavailable(): throw QueueError.unavailable("the payload store: \(error.message)")
            case .notFound(): throw QueueError.payloadUnreadable("\(object) is missing from the payload store")
            case .corrupted(): throw QueueError.payloadUnreadable("\(object) is not what was stored (another size or SHA-256)")
            case .tooLarge():
                throw QueueError.payloadUnreadable("\(object) is \(pointer.size) bytes, more than this replica reads (PAYLOADS_MAX_MESSAGE_BYTES)")
            default: throw QueueError.payloadUnreadable("\(object) cannot be read: \(error.message)")
            }
        }
    }

    /// A store's failure to write a body, as the queue failure a transport answers; any other
    /// error as it is (a streamed body's own). Nothing was read, so no failure here is an
    /// unreadable payload: what the store refused for another reason is the server's fault.
    static func writeError(_ error: any Error) -> any Error {
        guard let error = error as? PayloadStoreError else { return error }
        switch error {
        case .unavailable(): return QueueError.unavailable(error.message)
        case .tooLarge(): return QueueError.tooLarge(error.message)
        case .sizeMismatch(): return QueueError.invalidArgument(error.message)
        default: return QueueError.internalError("the payload store refused the body: \(error.message)")
        }
    }

    // MARK: Settle

    public func acknowledge(_ receipts: [Receipt], in queue: QueueName) async throws -> [Bool] {
        let acknowledged = try await inner.acknowledge(receipts, in: queue)
        let deleted = zip(receipts, acknowledged).filter { $0.1 && MessageID.isOffloaded($0.0.messageID) }.map(\.0.messageID)
        if !deleted.isEmpty { deleteObjects(ofMessages: deleted) }
        return acknowledged
    }

    /// Deletes the objects of deleted messages in the background: an ack never waits on the
    /// store, and a store outage costs acks nothing.
    private func deleteObjects(ofMessages ids: [String]) {
        let ids = ids.filter { MessageID.isOffloaded($0) }
        guard !ids.isEmpty else { return }
        // Bounded: past it (a long store outage), the objects are left to the sweep.
        let admitted = pendingDeletes.withLock { pending in
            guard pending + ids.count <= Self.maximumPendingDeletes else { return false }
            pending += ids.count
            return true
        }
        guard admitted else {
            logger.warning("too many payload deletes under way; these objects are left to the sweep", metadata: ["payload.count": "\(ids.count)"])
            return
        }
        let delete: @Sendable () async -> Void = {
            await self.deleteObjects(self.unreferenced(ids), because: "their messages were deleted")
            self.pendingDeletes.withLock { $0 -= ids.count }
        }
        if let settlements { settlements.run(on: nil, delete) } else { Task { await delete() } }
    }

    /// Object deletes that may be under way in the background at once.
    static var maximumPendingDeletes: Int { 10_000 }

    /// Deletes the objects of messages purged, deleted with their queue or expired, from the
    /// backend's graveyard (``QueueBackend/takeBuriedPayloads(max:)``), a page at a time.
    /// - Returns: how many objects it was asked to delete (they are gone unless the store failed:
    ///   then they are left to the sweep).
    @discardableResult
    public func deleteBuriedPayloads(max: Int = 1000) async throws -> Int {
        guard offload != nil else { return 0 }
        let ids = try await inner.takeBuriedPayloads(max: max)
        await deleteObjects(
            await unreferenced(ids.filter { MessageID.isOffloaded($0) }), because: "their messages were purged, deleted with their queue or expired")
        return ids.count
    }

    /// The objects of deleted messages (`ids`, offloaded) that no other message refers to: each
    /// one's own, and a shared one (a topic publish's) once the last copy's deletion brings its
    /// count to zero. A count that cannot be lowered (Redis failed) or is not there keeps its
    /// object for the sweep.
    func unreferenced(_ ids: [String]) async -> [PayloadKey] {
        var keys: [PayloadKey] = []
        for id in ids {
            if MessageID.isShared(id) {
                guard let offload else { continue }
                do {
                    guard try await inner.adjustPayloadReferences(of: id, by: -1, keepFor: offload.retention) == 0 else { continue }
                } catch {
                    logger.warning(
                        "could not count a deleted copy of a shared payload object; it stays until it is swept",
                        metadata: ["message.id": "\(id)", "error": "\(error)"])
                    continue
                }
            }
            if let key = try? PayloadOffload.key(of: id) { keys.append(key) }
        }
        return keys
    }

    /// Deletes waiting on one object store request at once.
    static var deleteWidth: Int { 8 }

    /// Best effort: an object left behind is an orphan for the sweep, never a lost message.
    func deleteObjects(_ keys: [PayloadKey], because reason: String) async {
        guard !keys.isEmpty else { return }
        guard let offload else {
            logger.warning("cannot delete payload objects: no payload store is configured", metadata: ["payload.keys": "\(keys)"])
            return
        }
        let (store, logger) = (offload.store, self.logger)
        await withTaskGroup(of: Void.self) { group in
            for (index, key) in keys.enumerated() {
                if index >= Self.deleteWidth { await group.next() }
                group.addTask {
                    do {
                        try await store.delete(key: key)
                    } catch {
                        logger.warning(
                            "could not delete a payload object; it stays until it is swept",
                            metadata: ["payload.key": "\(key)", "reason": "\(reason)", "error": "\(error)"]
                        )
                    }
                }
            }
        }
    }

    // MARK: Passed through

    public func claimsHeld(_ receipts: [Receipt], in queue: QueueName) async throws -> [Bool] {
        try await inner.claimsHeld(receipts, in: queue)
    }

    public func reject(_ receipt: Receipt, in queue: QueueName, delay: Duration?, reason: String?) async throws -> Bool {
        try await inner.reject(receipt, in: queue, delay: delay, reason: reason)
    }

    public func changeVisibility(_ receipt: Receipt, in queue: QueueName, timeout: Duration) async throws -> Bool {
        try await inner.changeVisibility(receipt, in: queue, timeout: timeout)
    }

    public func settings(of queue: QueueName) async throws -> QueueSettings { try await inner.settings(of: queue) }

    public func updateSettings(_ settings: QueueSettings, of queue: QueueName) async throws {
        try checkSizes(settings)
        try await inner.updateSettings(settings, of: queue)
        sizeSettings.remember(QueueSizeSettings(settings), of: queue)
    }

    public func redrive(into queue: QueueName, max: Int) async throws -> Int { try await inner.redrive(into: queue, max: max) }

    public func stats(of queue: QueueName) async throws -> QueueStats { try await inner.stats(of: queue) }

    public func queues() async throws -> [QueueSummary] { try await inner.queues() }

    /// The inner backend's peek with each pointer replaced by its body, stopping before the
    /// bodies read back would pass `maximumBytes` (one message always fits). A body that cannot
    /// be read back is no reason to hide the others, least of all in the dead-letter queue where
    /// such messages end: the message comes with an empty body and the reason
    /// (``QueueMessage/unreadableBody``). An unreachable store fails the peek (503).
    public func peek(_ queue: QueueName, limit: Int, maximumBytes: Int) async throws -> [QueueMessage] {
        let messages = try await inner.peek(queue, limit: limit, maximumBytes: maximumBytes)
        var peeked: [QueueMessage] = []
        var bytes = 0
        for message in messages {
            let pointer = PayloadPointer.decode(message.body)
            let size = pointer?.size ?? message.body.readableBytes
            if !peeked.isEmpty, bytes + size > maximumBytes { break }
            guard let pointer else {
                peeked.append(message)
                bytes += size
                continue
            }
            do {
                peeked.append(message.replacingBody(try await read(pointer, of: message.id)))
                bytes += size
            } catch let error as QueueError where error.kind == .payloadUnreadable {
                peeked.append(message.replacingBody(ByteBuffer(), unreadable: error.message))
            }
        }
        return peeked
    }

    /// An offloaded body is read back as a peek reads it: unreadable, it is `unreadableBody`.
    public func lookUp(_ id: String, in queue: QueueName) async throws -> MessageLookup {
        let lookup = try await inner.lookUp(id, in: queue)
        guard case .found(let message, let state) = lookup, let pointer = PayloadPointer.decode(message.body) else { return lookup }
        do {
            return .found(message.replacingBody(try await read(pointer, of: message.id)), state)
        } catch let error as QueueError where error.kind == .payloadUnreadable {
            return .found(message.replacingBody(ByteBuffer(), unreadable: error.message), state)
        }
    }

    public func recordHistory(_ sample: QueueHistorySample, of queue: QueueName, interval: Duration) async throws {
        try await inner.recordHistory(sample, of: queue, interval: interval)
    }

    public func history(of queue: QueueName) async throws -> [QueueHistorySample] { try await inner.history(of: queue) }

    public func takeBuriedPayloads(max: Int) async throws -> [String] { try await inner.takeBuriedPayloads(max: max) }

    public func adjustPayloadReferences(of id: String, by delta: Int, keepFor: Duration) async throws -> Int? {
        try await inner.adjustPayloadReferences(of: id, by: delta, keepFor: keepFor)
    }

    @discardableResult
    public func purge(_ queue: QueueName) async throws -> Int { try await inner.purge(queue) }

    @discardableResult
    public func delete(_ queue: QueueName) async throws -> Bool {
        defer { sizeSettings.forget(queue) }
        return try await inner.delete(queue)
    }

    public func health() async -> BackendHealth { await inner.health() }

    public func isKnownEmpty(_ queue: QueueName) -> Bool { inner.isKnownEmpty(queue) }
}

extension QueueMessage {
    func replacingBody(_ body: ByteBuffer, unreadable: String? = nil, link: PayloadLink? = nil) -> QueueMessage {
        QueueMessage(
            id: id, body: body, enqueuedAtMilliseconds: enqueuedAtMilliseconds, receiveCount: receiveCount, priority: priority,
            lastError: lastError, deadLetter: deadLetter, unreadableBody: unreadable, traceContext: traceContext, payloadLink: link
        )
    }
}

extension Delivery {
    func replacingBody(_ body: ByteBuffer, link: PayloadLink? = nil) -> Delivery {
        Delivery(
            queue: queue, message: message.replacingBody(body, link: link), claimToken: claimToken, claimedAt: claimedAt, lease: lease,
            isAcknowledgedMode: isAcknowledgedMode
        )
    }
}

/// A body in memory as the chunked stream ``PayloadStore/put(key:body:size:)`` takes (slices,
/// no copies).
struct BufferChunks: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let buffer: ByteBuffer
    static let chunkBytes = 1 << 20

    init(_ buffer: ByteBuffer) { self.buffer = buffer }

    struct AsyncIterator: AsyncIteratorProtocol {
        var rest: ByteBuffer
        mutating func next() async -> ByteBuffer? {
            guard rest.readableBytes > 0 else { return nil }
            return rest.readSlice(length: Swift.min(BufferChunks.chunkBytes, rest.readableBytes))
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(rest: buffer) }
}
