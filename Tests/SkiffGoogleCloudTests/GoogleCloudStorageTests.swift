import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import SkiffQueue
import SkiffTestSupport
import Testing

@testable import SkiffGoogleCloud

#if canImport(Glibc)
import Glibc
#endif

/// The Cloud Storage client: names travel percent-encoded as one path segment, statuses become
/// the right errors, and an unreachable service is unavailable, never anything else. The
/// requests run against gcp-storage-emulator when the harness started one.
@Suite("GoogleCloudStorage client", .timeLimit(.minutes(1)))
struct GoogleCloudStorageTests {
    static let logger = Logger(label: "test")

    static func storage(_ baseURL: String, accessToken: (@Sendable () async throws -> String)? = nil) -> GoogleCloudStorage {
        GoogleCloudStorage(
            baseURL: baseURL, bucket: TestEnvironment.gcsBucket, accessToken: accessToken, requestTimeout: .seconds(5), logger: logger)
    }

    /// A loopback port nothing listens on: bound and never listened on, and held for the whole
    /// run, so that no server of another test can be given it (a connect is refused).
    static let boundPort: Int? = {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { return nil }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) == 0 && getsockname(descriptor, $0, &length) == 0 }
        }
        return bound ? Int(UInt16(bigEndian: address.sin_port)) : nil
    }()

    static func closedPort() throws -> Int { try #require(boundPort) }

    /// A body of the given chunks.
    struct Chunks: AsyncSequence, Sendable {
        typealias Element = ByteBuffer
        let chunks: [ByteBuffer]

        func makeAsyncIterator() -> AsyncIterator { AsyncIterator(remaining: chunks[...]) }

        struct AsyncIterator: AsyncIteratorProtocol {
            var remaining: ArraySlice<ByteBuffer>
            mutating func next() async -> ByteBuffer? { remaining.popFirst() }
        }
    }

    @Test func aNameIsOnePathSegmentAndAQueryValue() {
        #expect(GoogleCloudStorage.percentEncoded("q/01JD3Z") == "q%2F01JD3Z")
        #expect(GoogleCloudStorage.percentEncoded("a b?c#d%e&f=g+h") == "a%20b%3Fc%23d%25e%26f%3Dg%2Bh")
        #expect(GoogleCloudStorage.percentEncoded("ü~._-AZaz09") == "%C3%BC~._-AZaz09")
        #expect(GoogleCloudStorage.percentEncoded("") == "")
    }

    @Test func statusesBecomeTheirErrors() {
        #expect(GoogleCloudStorage.error(status: 404, detail: "") == .notFound(""))
        for status in [408, 429, 500, 502, 503, 504] {
            let error = GoogleCloudStorage.error(status: status, detail: "x")
            #expect(error == .serviceUnavailable("", status: status) && error.isRetryable && error.status == status)
        }
        for status in [400, 401, 403, 409, 412] {
            let error = GoogleCloudStorage.error(status: status, detail: "x")
            #expect(error == .requestRejected("", status: status) && !error.isRetryable && error.status == status)
        }
    }

    @Test func anUnreachableServiceIsUnavailable() async throws {
        let storage = Self.storage("http://127.0.0.1:\(try Self.closedPort())")
        let unavailable = GoogleCloudError.serviceUnavailable("")
        await #expect(throws: unavailable) { try await storage.upload(name: "a", body: Chunks(chunks: [ByteBuffer(string: "x")]), size: 1) }
        await #expect(throws: unavailable) { try await storage.download(name: "a") }
        await #expect(throws: unavailable) { try await storage.delete(name: "a") }
        await #expect(throws: unavailable) { try await storage.list(prefix: "a", pageToken: nil) }

        // Through the payload store: `unavailable`, what the server answers 503 for.
        let store = GoogleCloudStoragePayloadStore(storage: storage, logger: Self.logger)
        let key = try PayloadKey("q/m")
        let pointer = PayloadPointer(uri: "gs://\(TestEnvironment.gcsBucket)/q/m", size: 1, sha256: String(repeating: "0", count: 64))
        await #expect(throws: PayloadStoreError.unavailable()) { try await store.put(key: key, body: Chunks(chunks: [ByteBuffer(string: "x")]), size: 1) }
        await #expect(throws: PayloadStoreError.unavailable()) { try await store.get(pointer) }
        await #expect(throws: PayloadStoreError.unavailable()) { try await store.delete(key: key) }
        await #expect(throws: PayloadStoreError.unavailable()) { try await store.list(prefix: "q/", pageToken: nil, pageSize: 10) }
    }

    @Test func aTokenThatCannotBeHadMakesTheStoreUnavailable() async throws {
        struct NoToken: Error {}
        let storage = Self.storage("http://127.0.0.1:\(try Self.closedPort())", accessToken: { throw NoToken() })
        await #expect(throws: GoogleCloudError.serviceUnavailable("")) { try await storage.delete(name: "a") }
        let metadataDown = Self.storage("http://127.0.0.1:\(try Self.closedPort())", accessToken: { throw GoogleCloudError.metadataUnavailable("down") })
        await #expect(throws: GoogleCloudError.metadataUnavailable("")) { try await metadataDown.delete(name: "a") }
        let store = GoogleCloudStoragePayloadStore(storage: metadataDown, logger: Self.logger)
        await #expect(throws: PayloadStoreError.unavailable()) { try await store.delete(key: try PayloadKey("a")) }
    }

    @Test(.enabled(if: TestEnvironment.hasGCS)) func objectsWithAnyNameRoundTrip() async throws {
        let storage = Self.storage(TestEnvironment.gcsURL!, accessToken: { "ya29.test-token" })
        let prefix = TestEnvironment.uniqueName("client") + "/"
        // Characters that mean something in a path or a query.
        let name = prefix + "dir/a b?c#d%2Fe&f=g+h~ü"
        let chunks = [ByteBuffer(string: "hello, "), ByteBuffer(), ByteBuffer(string: "world")]
        let object = try await storage.upload(name: name, body: Chunks(chunks: chunks), size: 12)
        #expect(object.name == name && object.size == 12)
        #expect(abs(object.timeCreated.timeIntervalSinceNow) < 60)
        #expect(String(buffer: try await storage.download(name: name).collect(upTo: 100)) == "hello, world")
        let listed = try await storage.list(prefix: prefix + "dir/", pageToken: nil)
        #expect(listed.objects == [object])
        // A name that differs only in its encoding is another object.
        await #expect(throws: GoogleCloudError.notFound("")) { try await storage.download(name: prefix + "dir/a%20b") }
        try await storage.delete(name: name)
        await #expect(throws: GoogleCloudError.notFound("")) { try await storage.delete(name: name) }
        await #expect(throws: GoogleCloudError.notFound("")) { try await storage.download(name: name) }
        #expect(try await storage.list(prefix: prefix, pageToken: nil).objects.isEmpty)
    }

    @Test(.enabled(if: TestEnvironment.hasGCS)) func anUnknownBucketIsNotFound() async throws {
        let storage = GoogleCloudStorage(
            baseURL: TestEnvironment.gcsURL!, bucket: "no-such-bucket-\(UUID().uuidString.prefix(8).lowercased())", accessToken: nil, logger: Self.logger)
        await #expect(throws: GoogleCloudError.notFound("")) { try await storage.list(prefix: "", pageToken: nil) }
    }
}
