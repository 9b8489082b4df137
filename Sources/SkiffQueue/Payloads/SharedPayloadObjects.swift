import NIOCore

/// The bodies of one topic publish kept in the payload store (docs/payloads.md, "Topics"): one
/// object per message, whatever the number of its copies, named after its id (tagged shared,
/// ``MessageID/isShared(_:)``: every copy carries that id), with a count of the copies that refer
/// to it kept by the backend (``QueueBackend/adjustPayloadReferences(of:by:keepFor:)``).
///
/// The count is never lower than the copies that exist, so no copy's deletion can delete a body
/// another copy still needs: before a fan-out the publisher raises it to the subscriptions the
/// message matched (more than or as many as the copies that fan-out can store), and after it
/// lowers it to the copies stored. Each copy deleted (acked, purged, expired) lowers it by one;
/// the deletion that brings it to zero deletes the object. A publish refused deletes its objects;
/// one whose outcome is unknown keeps them and their counts (an orphan for the sweep at worst,
/// never a lost body).
struct SharedPayloadObjects: Sendable {
    let queues: OffloadingQueues
    let offload: PayloadOffload
    /// The id of each offloaded message, by its index in the publish.
    let ids: [Int: String]
    /// What this publish has added to each message's count, by index.
    private var held: [Int: Int] = [:]

    /// Stores each of `bodies` over the service's threshold in the payload store, before any copy
    /// exists, and gives it a shared id in `ids` and its pointer in `stored`.
    /// - Returns: `nil` when no body went to the store (or there is no store).
    /// - Throws: ``QueueError`` `.unavailable` when the store failed (the objects already written
    ///   are deleted).
    static func store(
        _ bodies: [ByteBuffer], ids: inout [String], stored: inout [ByteBuffer], over queues: OffloadingQueues, nowMilliseconds: Int64
    ) async throws -> SharedPayloadObjects? {
        guard let offload = queues.offload, queues.offloadsAnyOf(bodies) else { return nil }
        let uploaded = try await queues.upload(
            bodies, over: offload.thresholdBytes, shared: true, nowMilliseconds: nowMilliseconds, ids: &ids, stored: &stored)
        return SharedPayloadObjects(queues: queues, offload: offload, ids: uploaded)
    }

    /// Before a fan-out: sets what this publish adds to each message's count to `copies[index]`
    /// (the subscriptions it matched; 0 when absent).
    /// - Throws: the backend's error; the caller then abandons the publish.
    mutating func hold(_ copies: [Int: Int]) async throws {
        for (index, id) in ids.sorted(by: { $0.key < $1.key }) {
            let wanted = copies[index] ?? 0
            let delta = wanted - (held[index] ?? 0)
            guard delta != 0 else { continue }
            _ = try await queues.inner.adjustPayloadReferences(of: id, by: delta, keepFor: offload.retention)
            held[index] = wanted
        }
    }

    /// After a fan-out (or instead of one): lowers each message's count to the copies that
    /// exist, `stored[index]` (0 when absent), and deletes the objects no copy refers to.
    mutating func settle(stored: [Int: Int]) async {
        var unreferenced: [PayloadKey] = []
        for (index, id) in ids.sorted(by: { $0.key < $1.key }) {
            let delta = (stored[index] ?? 0) - (held[index] ?? 0)
            var count: Int?
            if delta == 0 {
                count = held[index] ?? 0
            } else {
                do {
                    count = try await queues.inner.adjustPayloadReferences(of: id, by: delta, keepFor: offload.retention)
                    held[index] = stored[index] ?? 0
                } catch {
                    queues.logger.warning(
                        "could not count the copies of a shared payload object; it stays until it is swept",
                        metadata: ["message.id": "\(id)", "error": "\(error)"])
                }
            }
            if count == 0, let key = try? PayloadOffload.key(of: id) { unreferenced.append(key) }
        }
        await queues.deleteObjects(unreferenced, because: "no copy of their messages was stored")
    }
}

extension OffloadingQueues {
    /// Whether a topic publish of `bodies` puts any in the payload store: one over the service's
    /// threshold (a subscriber queue's own does not apply to the copies it is given).
    func offloadsAnyOf(_ bodies: [ByteBuffer]) -> Bool {
        guard let offload else { return false }
        return bodies.contains { $0.readableBytes > offload.thresholdBytes }
    }
}
