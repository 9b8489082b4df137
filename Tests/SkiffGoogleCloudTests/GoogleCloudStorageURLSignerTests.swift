import AsyncHTTPClient
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import SkiffQueue
import SkiffTestSupport
import Synchronization
import Testing
import _CryptoExtras

@testable import SkiffGoogleCloud

/// V4 signed URLs, held to what Google's own Python library (google-cloud-storage 2.18.2) made
/// for the same key, object and instant (Fixtures/gcs-v4-signed-urls.json), signed directly and
/// through a fake IAM Credentials `signBlob`; and a signed URL that reads the object back from
/// the emulator.
@Suite("Cloud Storage signed URLs", .timeLimit(.minutes(1)))
struct GoogleCloudStorageURLSignerTests {
    struct Vector: Decodable {
        let endpoint: String
        let bucket: String
        let object: String
        let expiresSeconds: Int
        let timestamp: String
        let url: String
    }

    struct Fixture: Decodable {
        let clientEmail: String
        let privateKey: String
        let vectors: [Vector]
    }

    static let fixture: Fixture = {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/gcs-v4-signed-urls.json")
        return try! JSONDecoder().decode(Fixture.self, from: Data(contentsOf: path))
    }()

    /// RSA-SHA256 (PKCS #1 v1.5) with the fixture's key, as a service account's key signs.
    static func sign(_ bytes: [UInt8]) throws -> [UInt8] {
        let key = try _RSA.Signing.PrivateKey(pemRepresentation: fixture.privateKey)
        return Array(try key.signature(for: SHA256.hash(data: bytes), padding: .insecurePKCS1v1_5).rawRepresentation)
    }

    static func date(of timestamp: String) throws -> Date {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        return try #require(formatter.date(from: timestamp))
    }

    @Test(arguments: fixture.vectors.indices)
    func aURLIsWhatGooglesLibrarySigns(index: Int) async throws {
        let vector = Self.fixture.vectors[index]
        let signer = GoogleCloudStorageURLSigner(serviceAccount: Self.fixture.clientEmail, baseURL: vector.endpoint) { try Self.sign($0) }
        let url = try await signer.signedURL(
            bucket: vector.bucket, object: vector.object, expiresInSeconds: vector.expiresSeconds, at: try Self.date(of: vector.timestamp))
        #expect(url == vector.url)
    }

    @Test func anExpiryIsKeptWithinGooglesLimits() async throws {
        let vector = Self.fixture.vectors[0]
        let signer = GoogleCloudStorageURLSigner(serviceAccount: Self.fixture.clientEmail) { try Self.sign($0) }
        let date = try Self.date(of: vector.timestamp)
        #expect(try await signer.signedURL(bucket: "b", object: "m/x", expiresInSeconds: 10_000_000, at: date).contains("X-Goog-Expires=604800&"))
        #expect(try await signer.signedURL(bucket: "b", object: "m/x", expiresInSeconds: 0, at: date).contains("X-Goog-Expires=1&"))
    }

    /// What the fake IAM Credentials service saw.
    final class SignBlobRequests: Sendable {
        let seen = Mutex<[(path: String, authorization: String?, body: String)]>([])
    }

    @Test func signaturesComeFromIAMCredentialsSignBlobAsTheServiceAccount() async throws {
        let vector = Self.fixture.vectors[0]
        let requests = SignBlobRequests()
        let router = Router()
        router.post("/v1/projects/-/serviceAccounts/*") { request, _ -> Response in
            // An account this caller may not sign as.
            if request.uri.path.hasSuffix("/refused:signBlob") { return Response(status: .forbidden) }
            let body = try await request.body.collect(upTo: 1 << 20)
            requests.seen.withLock { $0.append((request.uri.path, request.headers[.authorization], String(buffer: body))) }
            struct Payload: Decodable { let payload: String }
            let payload = try JSONDecoder().decode(Payload.self, from: Data(body.readableBytesView))
            let signature = try Self.sign(Array(try #require(Data(base64Encoded: payload.payload))))
            let answer = #"{"keyId":"k1","signedBlob":"\#(Data(signature).base64EncodedString())"}"#
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: answer)))
        }
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { client in
            let port = try #require(client.port)
            let signer = GoogleCloudStorageURLSigner.iamCredentials(
                serviceAccount: Self.fixture.clientEmail, accessToken: { "ya29.signer" }, baseURL: "http://127.0.0.1:\(port)",
                logger: Logger(label: "test"))
            let url = try await signer.signedURL(
                bucket: vector.bucket, object: vector.object, expiresInSeconds: vector.expiresSeconds, at: try Self.date(of: vector.timestamp))
            #expect(url == vector.url)
            let seen = try #require(requests.seen.withLock { $0.first })
            #expect(seen.path == "/v1/projects/-/serviceAccounts/skiff-test%40example-project.iam.gserviceaccount.com:signBlob")
            #expect(seen.authorization == "Bearer ya29.signer")
            // A refusal (no signBlob permission) is the service's error, which the store reports as unavailable.
            let refused = GoogleCloudStorageURLSigner.iamCredentials(
                serviceAccount: "refused", accessToken: { "ya29.signer" }, baseURL: "http://127.0.0.1:\(port)", logger: Logger(label: "test"))
            await #expect(throws: GoogleCloudError.requestRejected("", status: 403)) {
                try await refused.signedURL(bucket: "b", object: "m/x", expiresInSeconds: 30, at: Date())
            }
        }
    }

    /// The store signs a URL of its object, valid until the given instant, that the emulator
    /// (which serves path-style GETs and does not check signatures) answers with the bytes.
    @Test(.enabled(if: TestEnvironment.hasGCS)) func aStoresSignedURLReadsItsObject() async throws {
        let baseURL = try #require(TestEnvironment.gcsURL)
        let storage = GoogleCloudStorage(baseURL: baseURL, bucket: TestEnvironment.gcsBucket, accessToken: nil, logger: Logger(label: "test"))
        let signer = GoogleCloudStorageURLSigner(serviceAccount: Self.fixture.clientEmail, baseURL: baseURL) { try Self.sign($0) }
        let store = GoogleCloudStoragePayloadStore(storage: storage, urlSigner: signer, logger: Logger(label: "test"))
        #expect(store.signsURLs)
        let key = try PayloadKey(TestEnvironment.uniqueName("signed") + "/m/body")
        let body = ByteBuffer(string: #"{"large":"enough"}"#)
        let pointer = try await store.put(key: key, body: GoogleCloudStorageTests.Chunks(chunks: [body]), size: body.readableBytes)
        let expiresAt = MessageID.currentMilliseconds() + 30_000
        let url = try await store.signedURL(for: pointer, expiresAtMilliseconds: expiresAt)
        #expect(url.hasPrefix("\(baseURL)/\(TestEnvironment.gcsBucket)/\(key.rawValue)?X-Goog-Algorithm=GOOG4-RSA-SHA256&"))
        let expires = try #require(URLComponents(string: url)?.queryItems?.first { $0.name == "X-Goog-Expires" }?.value.flatMap(Int.init))
        #expect((29...31).contains(expires))
        let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: url), timeout: .seconds(5))
        #expect(response.status == .ok)
        #expect(try await response.body.collect(upTo: 1024) == body)
        try await store.delete(key: key)
        // Without a signer the store says so.
        let unsigned = GoogleCloudStoragePayloadStore(storage: storage, logger: Logger(label: "test"))
        #expect(!unsigned.signsURLs)
        await #expect(throws: PayloadStoreError.unsupported()) { try await unsigned.signedURL(for: pointer, expiresAtMilliseconds: expiresAt) }
    }
}
