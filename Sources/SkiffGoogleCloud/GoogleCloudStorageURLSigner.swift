public import AsyncHTTPClient
import Crypto
public import Foundation
public import Logging
import NIOCore
import SkiffSupport

/// Cloud Storage V4 signed URLs (`GOOG4-RSA-SHA256`) for reading one object: whoever holds one
/// may `GET` that object, with no credentials of their own, until it expires (at most 7 days).
///
/// The string to sign is Google's canonical request for a `GET` with only the `host` header
/// signed and an unsigned payload; its RSA-SHA256 signature comes from `signBlob`: in production
/// IAM Credentials' `signBlob` as the service account (``iamCredentials(serviceAccount:accessToken:httpClient:requestTimeout:baseURL:logger:)``;
/// Cloud Run holds no private key), which needs `iam.serviceAccounts.signBlob` on that account
/// (terraform grants a custom role of that one permission, on the account itself).
public struct GoogleCloudStorageURLSigner: Sendable {
    /// Google's limit on `X-Goog-Expires`.
    public static let maximumExpirySeconds = 604_800

    /// The service account the URLs are signed as (its email).
    public let serviceAccount: String
    /// Where the URLs point: ``GoogleCloudStorage/productionBaseURL``, or an emulator's.
    public let baseURL: String
    private let signBlob: @Sendable ([UInt8]) async throws -> [UInt8]

    /// - Parameter signBlob: the RSA-SHA256 (PKCS #1 v1.5) signature of its bytes by the
    ///   service account's key.
    public init(
        serviceAccount: String, baseURL: String = GoogleCloudStorage.productionBaseURL, signBlob: @escaping @Sendable ([UInt8]) async throws -> [UInt8]
    ) {
        self.serviceAccount = serviceAccount
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.signBlob = signBlob
    }

    /// A signer whose signatures come from IAM Credentials' `signBlob`
    /// (`POST /v1/projects/-/serviceAccounts/<email>:signBlob`), authorized by `accessToken`.
    /// Its failures are ``GoogleCloudError``s, as ``GoogleCloudStorage``'s are.
    public static func iamCredentials(
        serviceAccount: String,
        accessToken: @escaping @Sendable () async throws -> String,
        httpClient: HTTPClient = .shared,
        requestTimeout: Duration = .seconds(10),
        baseURL: String = "https://iamcredentials.googleapis.com",
        logger: Logger
    ) -> Self {
        let url = "\(baseURL)/v1/projects/-/serviceAccounts/\(GoogleCloudStorage.percentEncoded(serviceAccount)):signBlob"
        return Self(serviceAccount: serviceAccount) { bytes in
            var request = HTTPClientRequest(url: url)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: #"{"payload":""# + Data(bytes).base64EncodedString() + #""}"#))
            let operation = "signBlob as \(serviceAccount)"
            let response = try await GoogleCloudStorage.send(
                request, operation: operation, accessToken: accessToken, httpClient: httpClient, timeout: requestTimeout, logger: logger)
            let signed = try await GoogleCloudStorage.decode(SignBlobResponse.self, from: response, operation: operation)
            guard let signature = Data(base64Encoded: signed.signedBlob), !signature.isEmpty else {
                throw GoogleCloudError.serviceUnavailable("\(operation): signedBlob is not base64")
            }
            return Array(signature)
        }
    }

    private struct SignBlobResponse: Decodable {
        let signedBlob: String
    }

    /// A URL reading `object` of `bucket` from `date` for `expiresInSeconds` (1 to 7 days' worth).
    public func signedURL(bucket: String, object: String, expiresInSeconds: Int, at date: Date) async throws -> String {
        let expires = min(max(expiresInSeconds, 1), Self.maximumExpirySeconds)
        let request = canonicalRequest(bucket: bucket, object: object, expiresInSeconds: expires, at: date)
        let signature = try await signBlob(Array(request.stringToSign.utf8))
        return baseURL + request.resource + "?" + request.query + "&X-Goog-Signature=" + Hex.encode(signature)
    }

    /// The parts of a signed URL before its signature.
    struct CanonicalRequest {
        var resource: String
        var query: String
        var stringToSign: String
    }

    func canonicalRequest(bucket: String, object: String, expiresInSeconds: Int, at date: Date) -> CanonicalRequest {
        let (datestamp, timestamp) = Self.stamps(of: date)
        let scope = "\(datestamp)/auto/storage/goog4_request"
        let host = URL(string: baseURL).map { url in url.host.map { host in url.port.map { "\(host):\($0)" } ?? host } ?? "" } ?? ""
        // Path-style, the object's `/` kept as the path's.
        let resource =
            "/" + bucket + "/"
            + object.split(separator: "/", omittingEmptySubsequences: false).map { GoogleCloudStorage.percentEncoded(String($0)) }
            .joined(separator: "/")
        let parameters = [
            ("X-Goog-Algorithm", "GOOG4-RSA-SHA256"), ("X-Goog-Credential", "\(serviceAccount)/\(scope)"), ("X-Goog-Date", timestamp),
            ("X-Goog-Expires", String(expiresInSeconds)), ("X-Goog-SignedHeaders", "host"),
        ]
        let query = parameters.map { GoogleCloudStorage.percentEncoded($0.0) + "=" + GoogleCloudStorage.percentEncoded($0.1) }.sorted().joined(separator: "&")
        let canonical = ["GET", resource, query, "host:\(host)\n", "host", "UNSIGNED-PAYLOAD"].joined(separator: "\n")
        let digest = Hex.encode(SHA256.hash(data: Array(canonical.utf8)))
        let stringToSign = ["GOOG4-RSA-SHA256", timestamp, scope, digest].joined(separator: "\n")
        return CanonicalRequest(resource: resource, query: query, stringToSign: stringToSign)
    }

    /// `20261207` and `20261207T123456Z` (UTC) of `date`.
    static func stamps(of date: Date) -> (date: String, timestamp: String) {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let parts = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        func two(_ value: Int?) -> String { value.map { $0 < 10 ? "0\($0)" : "\($0)" } ?? "00" }
        let day = String(parts.year ?? 1970) + two(parts.month) + two(parts.day)
        return (day, day + "T" + two(parts.hour) + two(parts.minute) + two(parts.second) + "Z")
    }
}
