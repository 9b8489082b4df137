/// One API key from `SKIFF_API_KEYS` / `SKIFF_API_KEYS_FILE`: a secret, the scopes it grants and
/// an optional queue-name prefix it is confined to.
///
/// The secret is never printed: `description` names the key by its `name` (or its index in the
/// document), and it is compared only through ``AccessPolicy/constantTimeEquals(_:_:)``.
public struct APIKey: Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    /// What a key may do. Routes map to scopes in ``AccessPolicy/requirement(method:path:metricsRequireAuth:)``.
    public enum Scope: String, Sendable, Hashable, CaseIterable, Comparable {
        /// Enqueue: `POST /api/{queue}`, `POST /api/{queue}/batch`.
        case send
        /// Consume and settle: receive, ack, nack, visibility, and `GET /api/{queue}/stats`.
        case receive
        /// Manage queues: config, redrive, purge, delete, stats, `GET /queues`, and `/metrics` when it requires auth.
        case admin

        public static func < (lhs: Scope, rhs: Scope) -> Bool { lhs.rawValue < rhs.rawValue }
    }

    let secret: [UInt8]
    /// What the key grants, without the secret: safe to keep in a request context or log.
    public let grant: AccessGrant

    /// - Parameters:
    ///   - secret: the bearer token clients send.
    ///   - name: how logs and metrics refer to the key (never the secret itself).
    public init(secret: String, name: String, scopes: Set<Scope>, queuePrefix: String? = nil) {
        self.secret = Array(secret.utf8)
        self.grant = AccessGrant(keyName: name, scopes: scopes, queuePrefix: queuePrefix)
    }

    public var description: String {
        let scopes = grant.scopes.sorted().map(\.rawValue).joined(separator: ",")
        return "APIKey(\(grant.keyName), scopes: \(scopes)\(grant.queuePrefix.map { ", queuePrefix: \($0)" } ?? ""))"
    }

    public var debugDescription: String { description }
}

/// What an authenticated request may do: the scopes and queue prefix of its key, without the secret.
///
/// Handlers read it from ``SkiffRequestContext/accessGrant`` (`nil` when the service runs open);
/// `GET /queues` uses ``permits(queue:)`` to list only the queues a prefixed key can reach.
public struct AccessGrant: Sendable, Hashable {
    /// The key's `name`, or `#<index>` in the keys document when it has none.
    public let keyName: String
    public let scopes: Set<APIKey.Scope>
    /// When set, the key reaches only queues whose names start with it.
    public let queuePrefix: String?

    public init(keyName: String, scopes: Set<APIKey.Scope>, queuePrefix: String?) {
        self.keyName = keyName
        self.scopes = scopes
        self.queuePrefix = queuePrefix
    }

    /// Whether the key's queue prefix admits `queue` (always, without a prefix).
    public func permits(queue: some StringProtocol) -> Bool {
        guard let queuePrefix else { return true }
        return queue.hasPrefix(queuePrefix)
    }
}
