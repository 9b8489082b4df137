import SkiffQueue
import Testing

/// The links of a filesystem store's objects: a link is valid for its one object, size, digest
/// and expiry under the secret that signed it, and for nothing else.
@Suite("Payload URL signer")
struct PayloadURLSignerTests {
    static let secret = Array("0123456789abcdef0123456789abcdef".utf8)
    static let sha256 = String(repeating: "ab", count: 32)

    /// The query values of a path the signer made.
    static func parts(_ path: String) -> (key: String, values: [String: String]) {
        let (route, query) = (path.split(separator: "?", maxSplits: 1)[0], path.split(separator: "?", maxSplits: 1)[1])
        var values: [String: String] = [:]
        for pair in query.split(separator: "&") {
            let item = pair.split(separator: "=", maxSplits: 1)
            values[String(item[0])] = String(item[1])
        }
        return (String(route.dropFirst(PayloadURLSigner.pathPrefix.count)), values)
    }

    static func verify(
        _ signer: PayloadURLSigner, _ key: String, _ values: [String: String], now: Int64, changing field: String? = nil, to value: String = ""
    ) -> PayloadURLSigner.Verdict {
        var values = values
        var key = key
        if let field {
            if field == "key" { key = value } else { values[field] = value }
        }
        return signer.verify(
            key: key, size: values["size"] ?? "", sha256: values["sha256"] ?? "", expires: values["expires"] ?? "",
            signature: values["signature"] ?? "", nowMilliseconds: now)
    }

    @Test func aLinkIsValidForItsObjectUntilItExpires() throws {
        let signer = PayloadURLSigner(secret: Self.secret)
        let path = signer.path(key: try PayloadKey("m/G1ABC"), size: 300_000, sha256: Self.sha256, expiresAtMilliseconds: 1_000_000)
        #expect(path.hasPrefix("/payloads/m/G1ABC?size=300000&sha256=\(Self.sha256)&expires=1000000&signature="))
        let (key, values) = Self.parts(path)
        #expect(Self.verify(signer, key, values, now: 999_999) == .valid(key: try PayloadKey("m/G1ABC"), size: 300_000, sha256: Self.sha256))
        // Its expiry is the first instant it is refused.
        #expect(Self.verify(signer, key, values, now: 1_000_000) == .expired)
    }

    @Test(arguments: [
        ("key", "m/G1ABD"), ("size", "300001"), ("sha256", String(repeating: "cd", count: 32)), ("expires", "2000000"),
        ("signature", String(repeating: "0", count: 64)), ("signature", ""), ("signature", "zz"), ("size", "-1"), ("key", "../m/G1ABC"),
    ])
    func anyChangeToALinkVoidsIt(field: String, value: String) throws {
        let signer = PayloadURLSigner(secret: Self.secret)
        let (key, values) = Self.parts(signer.path(key: try PayloadKey("m/G1ABC"), size: 300_000, sha256: Self.sha256, expiresAtMilliseconds: 1_000_000))
        #expect(Self.verify(signer, key, values, now: 0, changing: field, to: value) == .invalid)
    }

    @Test func anotherSecretsLinkIsNotValid() throws {
        let path = PayloadURLSigner(secret: Self.secret).path(key: try PayloadKey("m/G1ABC"), size: 1, sha256: Self.sha256, expiresAtMilliseconds: 10)
        let (key, values) = Self.parts(path)
        let other = PayloadURLSigner(secret: Array("another secret of at least 32 bytes".utf8))
        #expect(Self.verify(other, key, values, now: 0) == .invalid)
    }
}
