import Crypto
public import NIOCore
import SkiffSupport

/// Counts and hashes (SHA-256) a body as its chunks pass, so that neither an upload nor a
/// download has to hold the body to describe it.
public struct PayloadDigest: Sendable {
    private var hasher = SHA256()
    /// The bytes seen so far.
    public private(set) var size = 0

    public init() {}

    public mutating func update(_ chunk: ByteBuffer) {
        size += chunk.readableBytes
        chunk.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
    }

    /// The SHA-256 of every byte seen, in lowercase hexadecimal.
    public func hexDigest() -> String {
        Hex.encode(hasher.finalize())
    }
}
