/// Where an offloaded message body is and what it must be: the store's URI of the object
/// (`gs://bucket/key`, `file:///absolute/path`), its size in bytes and its SHA-256 (64 lowercase
/// hexadecimal digits). Redis keeps this in place of the body (``encode()``); a read is verified
/// against it.
public struct PayloadPointer: Codable, Hashable, Sendable {
    public let uri: String
    /// The body's length in bytes.
    public let size: Int
    /// The body's SHA-256, lowercase hexadecimal.
    public let sha256: String

    public init(uri: String, size: Int, sha256: String) {
        self.uri = uri
        self.size = size
        self.sha256 = sha256
    }

    /// Whether `sha256` is 64 lowercase hexadecimal digits.
    static func isDigest(_ text: String) -> Bool {
        text.utf8.count == 64
            && text.utf8.allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains($0) }
    }
}
