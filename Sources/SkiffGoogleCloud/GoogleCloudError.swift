/// A failure talking to Google Cloud: the metadata server or a service (Cloud Storage) did not
/// answer, or answered something other than what it documents.
public struct GoogleCloudError: Error, Hashable, CustomStringConvertible, Sendable {
    private enum Code: Hashable, Sendable {
        case metadataUnavailable
        case unexpectedResponse
        case serviceUnavailable
        case notFound
        case requestRejected
    }

    private let code: Code
    /// A human-readable detail; not part of equality for matching.
    public let detail: String
    /// The HTTP status of the answer, when there was one; not part of equality.
    public let status: Int?

    private init(_ code: Code, _ detail: String, status: Int? = nil) {
        self.code = code
        self.detail = detail
        self.status = status
    }

    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }

    /// The metadata server could not be reached or did not answer in time (not on Google Cloud,
    /// or `GCE_METADATA_HOST` names nothing).
    public static func metadataUnavailable(_ detail: String) -> Self { Self(.metadataUnavailable, "metadata server unavailable: \(detail)") }
    /// An answer with a status other than 200, without `Metadata-Flavor: Google`, or a body that
    /// is not the documented JSON.
    public static func unexpectedResponse(_ detail: String) -> Self { Self(.unexpectedResponse, "unexpected metadata server response: \(detail)") }
    /// A service could not be reached, did not answer in time, answered 5xx, 408 or 429, or
    /// answered a body that is not the documented JSON (a proxy's error page): worth retrying later.
    public static func serviceUnavailable(_ detail: String, status: Int? = nil) -> Self {
        Self(.serviceUnavailable, "service unavailable: \(detail)", status: status)
    }
    /// The resource does not exist (404).
    public static func notFound(_ detail: String) -> Self { Self(.notFound, "not found: \(detail)", status: 404) }
    /// The service refused the request (another 4xx: credentials, permissions, a bad request);
    /// retrying the same request does not help.
    public static func requestRejected(_ detail: String, status: Int) -> Self {
        Self(.requestRejected, "request rejected with status \(status): \(detail)", status: status)
    }

    /// Whether the same request may succeed later (the server or the network failed, not the request).
    public var isRetryable: Bool { code == .metadataUnavailable || code == .serviceUnavailable }

    public var description: String { detail }
}
