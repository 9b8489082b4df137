/// A failure talking to Google Cloud: the metadata server did not answer, or answered something
/// that is not what it documents.
public struct GoogleCloudError: Error, Hashable, CustomStringConvertible, Sendable {
    private enum Code: Hashable, Sendable {
        case metadataUnavailable
        case unexpectedResponse
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

    /// The metadata server could not be reached or did not answer in time (not on Google Cloud,
    /// or `GCE_METADATA_HOST` names nothing).
    public static func metadataUnavailable(_ detail: String) -> Self { Self(.metadataUnavailable, "metadata server unavailable: \(detail)") }
    /// An answer with a status other than 200, without `Metadata-Flavor: Google`, or a body that
    /// is not the documented JSON.
    public static func unexpectedResponse(_ detail: String) -> Self { Self(.unexpectedResponse, "unexpected metadata server response: \(detail)") }

    public var description: String { detail }
}
