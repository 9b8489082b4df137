import Crypto
public import NIOCore

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
        let digits = Array("0123456789abcdef".utf8)
        var text = [UInt8]()
        text.reserveCapacity(64)
        for byte in hasher.finalize() {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}
