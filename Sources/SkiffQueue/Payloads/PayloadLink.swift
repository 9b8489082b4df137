/// What a consumer that asked for signed URLs (`payload=url`) gets instead of an offloaded body:
/// where to fetch it, until when, and what it must be (``QueueMessage/payloadLink``).
public struct PayloadLink: Sendable, Equatable {
    /// A Cloud Storage V4 signed URL, or a path the replicas serve (filesystem store), relative
    /// to the service's address.
    public var url: String
    public var size: Int
    /// The body's SHA-256 in lowercase hexadecimal, for the consumer to check what it fetched.
    public var sha256: String
    /// The end of the receive's visibility timeout (Unix milliseconds): the URL is refused after it.
    public var expiresAtMilliseconds: Int64

    public init(url: String, size: Int, sha256: String, expiresAtMilliseconds: Int64) {
        self.url = url
        self.size = size
        self.sha256 = sha256
        self.expiresAtMilliseconds = expiresAtMilliseconds
    }
}
