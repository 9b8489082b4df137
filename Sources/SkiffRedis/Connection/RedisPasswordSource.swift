/// Where a new connection's `AUTH` password comes from when it is not fixed: an IAM access token
/// that expires within the hour (Memorystore for Redis Cluster and for Valkey with IAM
/// authentication). Every connection asks it once, just before its `AUTH`; a connection that has
/// authenticated stays authenticated after the token expires, so nothing is re-sent on open ones.
///
/// Equal only to itself: two configurations with the same source share its cached token.
public final class RedisPasswordSource: Sendable, Equatable, CustomStringConvertible {
    /// What the source is, for logs and errors (`gcp-iam`, never the password).
    public let name: String
    private let fetch: @Sendable () async throws -> String

    /// - Parameter password: returns a password valid now; it may wait (a token refresh) and
    ///   should be bounded in time, since a connection attempt waits for it.
    public init(name: String, password: @escaping @Sendable () async throws -> String) {
        self.name = name
        self.fetch = password
    }

    /// The password for the connection being opened now.
    ///
    /// - Throws: ``RedisClientError/unavailable(_:)`` naming the source, whatever the source threw.
    public func password() async throws -> String {
        do {
            return try await fetch()
        } catch let error as RedisClientError where error == .cancelled {
            throw error
        } catch {
            throw RedisClientError.unavailable("no password from \(name): \(error)")
        }
    }

    public var description: String { "RedisPasswordSource(\(name))" }

    public static func == (lhs: RedisPasswordSource, rhs: RedisPasswordSource) -> Bool { lhs === rhs }
}
