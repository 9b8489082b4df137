import SkiffQueue
import SkiffRedis

extension RedisQueueBackend {
    /// One key per object, `<prefix>:payload-refs:{<id>}` (its own slot on a cluster), kept
    /// `keepFor` after its last change. A raise waits for Redis replicas when configured: a count
    /// lower than the copies that exist (its raise lost in a failover) would delete a body a copy
    /// still needs.
    public func adjustPayloadReferences(of id: String, by delta: Int, keepFor: Duration) async throws -> Int? {
        let key = "\(prefix):payload-refs:{\(id)}"
        let arguments: [RedisArgument] = [.integer(Int64(delta)), .integer(max(1, keepFor.milliseconds))]
        let script = RedisQueueScripts.payloadReferences
        let reply: RedisValue
        if delta > 0, configuration.replicaAcknowledgements > 0 {
            let (value, acknowledged) = try await mapErrors {
                try await client.evaluate(
                    script, keys: [key], arguments: arguments,
                    waitingForReplicas: configuration.replicaAcknowledgements, timeout: configuration.replicaTimeout
                )
            }
            guard acknowledged >= configuration.replicaAcknowledgements else {
                throw QueueError.unavailable(
                    "a payload object's reference count reached the primary but only \(acknowledged) of \(configuration.replicaAcknowledgements) replicas confirmed it in time"
                )
            }
            reply = value
        } else {
            reply = try await mapErrors { try await client.evaluate(script, keys: [key], arguments: arguments) }
        }
        guard let count = reply.integer else { throw QueueError.internalError("payload-references script returned \(reply)") }
        return count < 0 ? nil : Int(count)
    }
}
