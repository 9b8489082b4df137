/// How a replica proves itself to Redis on every new connection (`REDIS_AUTH`).
public enum RedisAuthentication: Sendable, Equatable {
    /// The fixed password of `REDIS_PASSWORD` or the URL, if any (Memorystore for Redis AUTH,
    /// a local Redis with `requirepass` or ACL users).
    case password
    /// Memorystore's IAM authentication (Redis Cluster, Valkey): the service account's access
    /// token, from the metadata server at `metadataHost`, is the password of each new connection.
    case googleIAM(metadataHost: String)
}
