/// A Lua script run with `EVALSHA`, falling back to `EVAL` when the server does not know it
/// (`NOSCRIPT`: after a restart, a failover or `SCRIPT FLUSH`).
public struct RedisScript: Sendable, Hashable {
    /// A short name for logs and metrics; unique among the scripts one client runs (it keys the
    /// cache of loaded hashes).
    public let name: String
    public let source: String
    /// On a Redis Cluster: the script reads every key it may reach before its first write, so a
    /// key that Redis refuses (a slot half-way through a migration: "Script attempted to access a
    /// non local key") means it wrote nothing, and the client may run it again once the slot has
    /// moved. A script without this is never run again after such a refusal.
    public let touchesEveryKeyFirst: Bool

    public init(name: String, source: String, touchesEveryKeyFirst: Bool = false) {
        self.name = name
        self.source = source
        self.touchesEveryKeyFirst = touchesEveryKeyFirst
    }
}
