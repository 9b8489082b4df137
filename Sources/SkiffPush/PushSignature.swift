import Crypto
import Foundation
public import NIOCore
import SkiffSupport

/// The signature on every push: `Skiff-Signature: v1=<hex>`, the HMAC-SHA256 under the
/// subscription's secret of `<Skiff-Timestamp>.<body>` (the timestamp in Unix seconds, a dot,
/// then the body's bytes exactly as sent). A receiver computes the same, compares in constant
/// time, and refuses a timestamp far from its clock (docs/topics.md has a sample), so a captured
/// push cannot be replayed later.
public enum PushSignature {
    public static let version = "v1"

    /// `v1=<64 lowercase hex digits>`.
    public static func header(secret: String, timestampSeconds: Int64, body: ByteBuffer) -> String {
        var code = HMAC<SHA256>(key: SymmetricKey(data: Array(secret.utf8)))
        code.update(data: Array("\(timestampSeconds).".utf8))
        body.withUnsafeReadableBytes { code.update(data: $0) }
        return version + "=" + Hex.encode(code.finalize())
    }

    /// Whether `header` is the signature of `body` at `timestampSeconds` (constant time).
    public static func verify(_ header: String, secret: String, timestampSeconds: Int64, body: ByteBuffer) -> Bool {
        let expected = Array(self.header(secret: secret, timestampSeconds: timestampSeconds, body: body).utf8)
        let given = Array(header.utf8)
        guard expected.count == given.count else { return false }
        return zip(expected, given).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
    }
}
