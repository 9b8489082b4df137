import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import SkiffAPI
import SkiffQueue
import SkiffTestSupport
import Testing

/// `payload=url` (issue 23): an acknowledged receive of an offloaded message gets a signed link
/// to its body instead of the bytes, valid for its visibility timeout, which a replica serves
/// (filesystem store) to anyone holding it, verified; and nothing else.
@Suite("Signed payload links", .timeLimit(.minutes(3)))
struct PayloadLinkTests {
    static let secret = "a shared secret of more than 32 bytes, for the tests"

    private func withLinks<T>(
        _ kind: BackendKind, secret: String? = PayloadLinkTests.secret, _ body: (SkiffApplication, String) async throws -> T
    )
        async throws -> T
    {
        let directory = NSTemporaryDirectory() + TestEnvironment.uniqueName("skiff-payload-links")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let app = try makeApplication(kind) {
            var payloads = PayloadSettings(location: .directory(directory))
            payloads.urlSecret = secret.map { Array($0.utf8) }
            $0.usePayloadStore(payloads)
            $0.keyPrefix = TestEnvironment.uniqueName("links")
        }
        return try await body(app, directory)
    }

    private static func json(_ size: Int) -> ByteBuffer {
        ByteBuffer(string: "\"" + String(repeating: "z", count: size - 2) + "\"")
    }

    private static func object(_ buffer: ByteBuffer) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(buffer.readableBytesView)) as? [String: Any])
    }

    private static func sha256(_ buffer: ByteBuffer) -> String {
        SHA256.hash(data: Data(buffer.readableBytesView)).map { String(format: "%02x", $0) }.joined()
    }

    @Test(arguments: BackendKind.available)
    func anAcknowledgedReceiveGetsALinkThatServesTheVerifiedBody(kind: BackendKind) async throws {
        try await withLinks(kind) { app, directory in
            try await app.test(.live) { client in
                let queue = TestEnvironment.uniqueName("linked")
                let body = Self.json(400_000)
                #expect(try await client.execute(uri: "/api/\(queue)", method: .post, body: body).status == .created)
                let before = MessageID.currentMilliseconds()
                let received = try await client.execute(uri: "/api/\(queue)?timeout=0&visibility=60000&payload=url", method: .get)
                let after = MessageID.currentMilliseconds()
                #expect(received.status == .ok)
                #expect(received.headers[HTTPField.Name("Skiff-Payload")!] == "url")
                let link = try Self.object(received.body)
                let url = try #require(link["url"] as? String)
                #expect(url.hasPrefix("/payloads/m/"))
                #expect(link["size"] as? Int == body.readableBytes && link["sha256"] as? String == Self.sha256(body))
                // Valid for the visibility timeout.
                let formatter = ISO8601DateFormatter()
                formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
                let expiresAt = try #require((link["expiresAt"] as? String).flatMap(formatter.date(from:)))
                // Until the end of the lease: at most 60 s after the claim, which was between the two.
                let expiresAtMilliseconds = Int64((expiresAt.timeIntervalSince1970 * 1000).rounded())
                #expect((before + 59_000...after + 60_000).contains(expiresAtMilliseconds))
                // Fetched without a key, byte for byte.
                let fetched = try await client.execute(uri: url, method: .get)
                #expect(fetched.status == .ok && fetched.body == body)
                #expect(fetched.headers[.cacheControl] == "private, no-store")
                // Any change to it is refused; so is a HEAD-less other method.
                let tampered = url.replacingOccurrences(of: "size=400000", with: "size=400001")
                #expect(try await client.execute(uri: tampered, method: .get).status == .forbidden)
                #expect(try await client.execute(uri: url.replacingOccurrences(of: "/m/G", with: "/m/H"), method: .get).status == .forbidden)
                #expect(try await client.execute(uri: url, method: .delete).status == .methodNotAllowed)
                // The ack deletes the object: the link then finds nothing.
                let receipt = try #require(received.headers[HTTPField.Name("Skiff-Receipt")!])
                #expect(try await client.execute(uri: "/api/\(queue)/messages/\(receipt)", method: .delete).status == .noContent)
                try await eventually { try await client.execute(uri: url, method: .get).status == .notFound }
                #expect(((try? FileManager.default.contentsOfDirectory(atPath: directory + "/m")) ?? []).filter { !$0.hasPrefix(".") }.isEmpty)
            }
        }
    }

    @Test(arguments: BackendKind.available)
    func aBatchCarriesLinksForOffloadedBodiesAndBytesForTheRest(kind: BackendKind) async throws {
        try await withLinks(kind) { app, _ in
            try await app.test(.router) { client in
                let queue = TestEnvironment.uniqueName("linked-batch")
                let large = String(repeating: "q", count: 300_000)
                let posted = try await client.execute(uri: "/api/\(queue)/batch", method: .post, body: ByteBuffer(string: #"["small","\#(large)"]"#))
                #expect(posted.status == .created)
                let received = try await client.execute(uri: "/api/\(queue)/batch?max=10&timeout=0&visibility=30000&payload=url", method: .get)
                let items = try #require(try JSONSerialization.jsonObject(with: Data(received.body.readableBytesView)) as? [[String: Any]])
                #expect(items.count == 2)
                #expect(items[0]["body"] as? String == "small" && items[0]["payloadUrl"] == nil)
                #expect(items[1]["body"] == nil && items[1]["offloaded"] as? Bool == true)
                let link = try #require(items[1]["payloadUrl"] as? [String: Any])
                let fetched = try await client.execute(uri: try #require(link["url"] as? String), method: .get)
                #expect(String(buffer: fetched.body) == "\"\(large)\"")
            }
        }
    }

    @Test func aStreamAskingForLinksGetsThemInItsMessageFrames() async throws {
        let directory = NSTemporaryDirectory() + TestEnvironment.uniqueName("skiff-stream-links")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try await withReplica(.memory) {
            var payloads = PayloadSettings(location: .directory(directory))
            payloads.urlSecret = Array(Self.secret.utf8)
            $0.usePayloadStore(payloads)
        } _: { port, _ in
            let queue = TestEnvironment.uniqueName("ws-links")
            let probe = Probe(port: port)
            #expect(try await probe.post(queue, String(buffer: Self.json(300_000))).status == .created)
            let refused = try await RawWebSocket.connect(port: port, path: "/api/\(queue)/stream?autoAck=true&payload=url")
            #expect(refused.status == 400)
            let socket = try await RawWebSocket.connect(port: port, path: "/api/\(queue)/stream?credit=1&payload=url")
            #expect(socket.status == 101)
            let message = try await frame(socket, op: "message")
            #expect(message["body"] == nil && message["offloaded"] as? Bool == true)
            let link = try #require(message["payloadUrl"] as? [String: any Sendable])
            let fetched = try await probe.request(.get, try #require(link["url"] as? String))
            #expect(fetched.body == Self.json(300_000))
            await socket.abort()
        }
    }

    @Test func linksAreRefusedWhereTheyCannotWork() async throws {
        try await withLinks(.memory, secret: nil) { app, _ in
            try await app.test(.router) { client in
                let queue = TestEnvironment.uniqueName("unlinked")
                let unsigned = try await client.execute(uri: "/api/\(queue)?timeout=0&visibility=1000&payload=url", method: .get)
                #expect(unsigned.status == .badRequest && unsigned.text.contains("PAYLOADS_URL_SECRET"))
                // No link route without a secret.
                #expect(try await client.execute(uri: "/payloads/m/G1ABC?size=1", method: .get).status == .notFound)
            }
        }
        try await withLinks(.memory) { app, _ in
            try await app.test(.router) { client in
                let queue = TestEnvironment.uniqueName("plain")
                let plain = try await client.execute(uri: "/api/\(queue)?timeout=0&payload=url", method: .get)
                #expect(plain.status == .badRequest && plain.text.contains("acknowledged receive"))
                let other = try await client.execute(uri: "/api/\(queue)/batch?timeout=0&visibility=1000&payload=link", method: .get)
                #expect(other.status == .badRequest && other.text.contains("payload must be bytes or url"))
                // A link past its expiry, signed with the service's secret.
                let signer = PayloadURLSigner(secret: Array(Self.secret.utf8))
                let expired = signer.path(
                    key: try PayloadKey("m/G1ABC"), size: 1, sha256: String(repeating: "0", count: 64),
                    expiresAtMilliseconds: MessageID.currentMilliseconds() - 1)
                let late = try await client.execute(uri: expired, method: .get)
                #expect(late.status == .forbidden && late.text.contains("expired"))
                // A link that was never signed.
                let forged =
                    "/payloads/m/G1ABC?size=1&sha256=\(String(repeating: "0", count: 64))&expires=99999999999999&signature=\(String(repeating: "1", count: 64))"
                #expect(try await client.execute(uri: forged, method: .get).status == .forbidden)
            }
        }
    }

    @Test func theSecretIsCheckedWithTheStore() throws {
        let directory = NSTemporaryDirectory() + TestEnvironment.uniqueName("skiff-link-settings")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        #expect(throws: ConfigurationError.self) {
            try SkiffConfiguration.fromEnvironment(["PAYLOADS_STORE": "file://\(directory)", "PAYLOADS_URL_SECRET": "short"])
        }
        #expect(throws: ConfigurationError.self) { try SkiffConfiguration.fromEnvironment(["PAYLOADS_URL_SECRET": Self.secret]) }
        #expect(throws: ConfigurationError.self) {
            try SkiffConfiguration.fromEnvironment(["PAYLOADS_STORE": "gs://bucket-name", "PAYLOADS_URL_SECRET": Self.secret])
        }
        #expect(throws: ConfigurationError.self) {
            try SkiffConfiguration.fromEnvironment(["PAYLOADS_STORE": "gs://bucket-name", "PAYLOADS_GCS_SIGNING_ACCOUNT": "not-an-email"])
        }
        let file = try SkiffConfiguration.fromEnvironment(["PAYLOADS_STORE": "file://\(directory)", "PAYLOADS_URL_SECRET": Self.secret])
        #expect(file.payloads?.urlSecret == Array(Self.secret.utf8))
        let bucket = try SkiffConfiguration.fromEnvironment([
            "PAYLOADS_STORE": "gs://bucket-name", "PAYLOADS_GCS_SIGNING_ACCOUNT": "skiff@project.iam.gserviceaccount.com",
        ])
        #expect(bucket.payloads?.signingServiceAccount == "skiff@project.iam.gserviceaccount.com")
    }
}
