/// A Lua script run with `EVALSHA`, falling back to `EVAL` when the server does not know it
/// (`NOSCRIPT`: after a restart, a failover or `SCRIPT FLUSH`).
public struct RedisScript: Sendable, Hashable {
    /// A short name for logs and metrics; unique among the scripts one client runs (it keys the
    /// cache of loaded hashes).
    public let name: String
    public let source: String

    public init(name: String, source: String) {
        self.name = name
        self.source = source
    }
}
