/// A call that did not succeed: the server's answer (its status and `error` message), or why
/// there was none.
public struct SkiffClientError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The server answered with an error status (``status``, its message in ``message``).
        case server
        /// No answer: the server could not be reached or the connection failed (``message``).
        case connection
        /// No answer within the request's timeout.
        case timeout
        /// An answer the client cannot read.
        case unexpectedAnswer
        /// A call the client refuses before sending it (a bad argument).
        case invalidArgument
    }

    public let kind: Kind
    /// The HTTP status, for ``Kind/server``.
    public let status: Int?
    public let message: String
    /// The server's `Retry-After`, when it sent one.
    public let retryAfter: Duration?
    /// Whether the request may have been carried out by the server (an answer was lost): a
    /// plain receive in that state may have taken a message, and is never retried.
    public let mayHaveRun: Bool

    init(kind: Kind, status: Int? = nil, message: String, retryAfter: Duration? = nil, mayHaveRun: Bool = false) {
        self.kind = kind
        self.status = status
        self.message = message
        self.retryAfter = retryAfter
        self.mayHaveRun = mayHaveRun
    }

    /// Whether trying again can help: `503`, `429`, or no answer.
    public var isTransient: Bool {
        switch kind {
        case .server: status == 503 || status == 429
        case .connection, .timeout: true
        case .unexpectedAnswer, .invalidArgument: false
        }
    }

    public var description: String {
        switch kind {
        case .server: "the server answered \(status ?? 0): \(message)"
        case .connection, .timeout, .unexpectedAnswer, .invalidArgument: message
        }
    }
}
