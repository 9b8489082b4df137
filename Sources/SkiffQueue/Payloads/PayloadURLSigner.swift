import Crypto
import SkiffSupport

/// Signs and checks the URLs of a filesystem store's objects, which every replica serves at
/// `GET /payloads/<key>?size=&sha256=&expires=&signature=` (docs/payloads.md): an HMAC-SHA256
/// of the key, the size and digest the replica verifies the bytes against, and the expiry, under
/// a secret all replicas share (`PAYLOADS_URL_SECRET`). Whoever holds the URL may read that one
/// object until it expires, and nothing else.
public struct PayloadURLSigner: Sendable {
    private let key: SymmetricKey

    /// Where the replicas serve the objects.
    public static let pathPrefix = "/payloads/"
    /// The shortest secret taken: 32 bytes, SHA-256's own size.
    public static let minimumSecretBytes = 32

    public init(secret: some Sequence<UInt8>) {
        self.key = SymmetricKey(data: Array(secret))
    }

    /// What a URL asks for once its signature is checked.
    public enum Verdict: Equatable, Sendable {
        case valid(key: PayloadKey, size: Int, sha256: String)
        /// Signed, but past its expiry.
        case expired
        /// Not signed by this secret, or malformed.
        case invalid
    }

    /// `/payloads/<key>?size=…&sha256=…&expires=…&signature=…`, relative to the service's address.
    public func path(key: PayloadKey, size: Int, sha256: String, expiresAtMilliseconds: Int64) -> String {
        let signature = sign(key: key.rawValue, size: String(size), sha256: sha256, expires: String(expiresAtMilliseconds))
        return Self.pathPrefix + key.rawValue + "?size=\(size)&sha256=\(sha256)&expires=\(expiresAtMilliseconds)&signature=\(signature)"
    }

    /// Checks a request for `key` with the query's values; the signature is compared in constant time.
    public func verify(key: String, size: String, sha256: String, expires: String, signature: String, nowMilliseconds: Int64) -> Verdict {
        guard let payloadKey = try? PayloadKey(key), let bytes = Int(size), bytes >= 0, PayloadPointer.isDigest(sha256),
            let expiresAt = Int64(expires), signature.utf8.count == 64, let code = Hex.decode(signature)
        else { return .invalid }
        let message = Self.message(key: key, size: size, sha256: sha256, expires: expires)
        guard HMAC<SHA256>.isValidAuthenticationCode(code, authenticating: Array(message.utf8), using: self.key) else { return .invalid }
        guard nowMilliseconds < expiresAt else { return .expired }
        return .valid(key: payloadKey, size: bytes, sha256: sha256)
    }

    private func sign(key: String, size: String, sha256: String, expires: String) -> String {
        let code = HMAC<SHA256>.authenticationCode(for: Array(Self.message(key: key, size: size, sha256: sha256, expires: expires).utf8), using: self.key)
        return Hex.encode(code)
    }

    /// The signed text: every value the URL carries, each on its own line (none may hold one).
    private static func message(key: String, size: String, sha256: String, expires: String) -> String {
        "skiff-payload-url/1\n\(key)\n\(size)\n\(sha256)\n\(expires)"
    }
}
