/// A failure on the client side of a Redis conversation: the connection, the protocol or a deadline.
///
/// Server `-ERR` replies are a different type, ``RedisServerError``.
public struct RedisClientError: Error, Hashable, CustomStringConvertible, Sendable {
    private enum Code: Hashable, Sendable {
        case connectionClosed
        case timeout
        case protocolError
        case unavailable
        case cancelled
        case invalidConfiguration
        case unexpectedReply
        case poolClosed
    }

    private let code: Code
    /// A human-readable detail; not part of equality for matching.
    public let detail: String

    private init(_ code: Code, _ detail: String) {
        self.code = code
        self.detail = detail
    }

    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }

    /// The connection closed before the reply arrived. The command may or may not have run.
    public static let connectionClosed = Self(.connectionClosed, "connection to Redis closed")
    /// The command's deadline passed. The command may or may not have run; the connection was closed.
    public static let timeout = Self(.timeout, "Redis command timed out")
    /// The bytes from the server were not valid RESP. The connection was closed.
    public static func protocolError(_ detail: String) -> Self { Self(.protocolError, "protocol error: \(detail)") }
    /// No connection to Redis could be established (or one is backing off after a failure).
    public static func unavailable(_ detail: String) -> Self { Self(.unavailable, "Redis unavailable: \(detail)") }
    public static let cancelled = Self(.cancelled, "Redis command cancelled")
    public static func invalidConfiguration(_ detail: String) -> Self { Self(.invalidConfiguration, "invalid Redis configuration: \(detail)") }
    public static func unexpectedReply(_ detail: String) -> Self { Self(.unexpectedReply, "unexpected reply: \(detail)") }
    public static let poolClosed = Self(.poolClosed, "Redis client is shut down")

    public var description: String { detail }

    /// Whether the failure means Redis could not be reached, answered too late, or the connection
    /// broke (as opposed to a bug): the command may or may not have run.
    public var isConnectivityFailure: Bool {
        switch code {
        case .connectionClosed, .timeout, .unavailable, .poolClosed, .protocolError: return true
        default: return false
        }
    }
}

/// An error reply (`-ERR ...`, `-NOSCRIPT ...`, `-OOM ...`) sent by the Redis server.
public struct RedisServerError: Error, Hashable, CustomStringConvertible, Sendable {
    /// The full error line as the server sent it, e.g. `NOSCRIPT No matching script`.
    public let message: String

    public init(message: String) { self.message = message }

    /// The error prefix (`ERR`, `NOSCRIPT`, `OOM`, `WRONGTYPE`, `READONLY`, `BUSY`...).
    public var prefix: Substring { message.prefix { $0 != " " } }

    public var isNoScript: Bool { prefix == "NOSCRIPT" }
    /// Redis refused a write because `maxmemory` is reached under `noeviction`.
    public var isOutOfMemory: Bool { prefix == "OOM" || message.contains("OOM command not allowed") }
    /// The server cannot serve for now and says so: loading its dataset after a restart, a
    /// replica without its primary, a busy script, a cluster reconfiguring. Worth retrying.
    public var isTemporary: Bool { ["LOADING", "MASTERDOWN", "TRYAGAIN", "BUSY", "READONLY"].contains(prefix) }
    public var description: String { "Redis error: \(message)" }
}
