import AsyncHTTPClient
import Foundation
public import Logging
public import NIOCore
public import SkiffQueue
import Synchronization

/// A payload store in a Cloud Storage bucket: key `q/id` is the object `q/id`, its URI
/// `gs://bucket/q/id`.
///
/// Uploads and downloads stream through ``GoogleCloudStorage``; the body is counted and hashed as
/// it passes. Errors become ``PayloadStoreError``s: a 404 is ``PayloadStoreError/notFound(_:)``,
/// every other failure of the service (unreachable, timed out, 5xx, refused credentials, no token)
/// is ``PayloadStoreError/unavailable(_:)``, since the store cannot be used either way and the
/// detail says why.
public struct GoogleCloudStoragePayloadStore: PayloadStore {
    public let storage: GoogleCloudStorage
    /// Bodies larger than this are refused (``PayloadStoreError/tooLarge(_:)``).
    public let maximumBodyBytes: Int
    /// Signs `payload=url` links (`PAYLOADS_GCS_SIGNING_ACCOUNT`); `nil`: no signed URLs.
    public let urlSigner: GoogleCloudStorageURLSigner?
    private let logger: Logger
    private let uriPrefix: String

    public init(
        storage: GoogleCloudStorage, maximumBodyBytes: Int = GoogleCloudStoragePayloadStore.defaultMaximumBodyBytes,
        urlSigner: GoogleCloudStorageURLSigner? = nil, logger: Logger
    ) {
        self.storage = storage
        self.maximumBodyBytes = maximumBodyBytes
        self.urlSigner = urlSigner
        self.logger = logger
        self.uriPrefix = "gs://\(storage.bucket)/"
    }

    public var signsURLs: Bool { urlSigner != nil }

    /// A V4 signed URL of the object, valid from now until `expiresAtMilliseconds` (rounded up
    /// to a second, at most 7 days).
    // Not optimized: Swift 6.3.1's release build crashes (signal 11, "While splitting coroutine")
    // on this function otherwise. It runs once per link, beside a round trip to IAM.
    @_optimize(none)
    public func signedURL(for pointer: PayloadPointer, expiresAtMilliseconds: Int64) async throws -> String {
        guard let urlSigner else { throw PayloadStoreError.unsupported("signed URLs of a gs:// store need PAYLOADS_GCS_SIGNING_ACCOUNT") }
        let key = try key(of: pointer)
        // In whole milliseconds, rounded up to a second: no floating-point conversion that could trap.
        let nowMilliseconds = MessageID.currentMilliseconds()
        let seconds = Int((max(expiresAtMilliseconds - nowMilliseconds, 0) + 999) / 1000)
        let now = Date(timeIntervalSince1970: Double(nowMilliseconds) / 1000)
        do {
            return try await urlSigner.signedURL(bucket: storage.bucket, object: key.rawValue, expiresInSeconds: seconds, at: now)
        } catch {
            throw PayloadStoreError.unavailable("signing a URL of \(key): \(error)")
        }
    }

    public func key(of pointer: PayloadPointer) throws -> PayloadKey {
        guard pointer.uri.hasPrefix(uriPrefix) else {
            throw PayloadStoreError.invalidKey("\(pointer.uri) is not in \(uriPrefix)")
        }
        return try PayloadKey(String(pointer.uri.dropFirst(uriPrefix.count)))
    }

    public func put<Body: AsyncSequence & Sendable>(key: PayloadKey, body: Body, size: Int) async throws -> PayloadPointer
    where Body.Element == ByteBuffer {
        guard size >= 0 else { throw PayloadStoreError.sizeMismatch("a negative size (\(size))") }
        guard size <= maximumBodyBytes else {
            throw PayloadStoreError.tooLarge("\(size) bytes, more than \(maximumBodyBytes)")
        }
        let digest = SharedDigest()
        let counted = DigestingBody(base: body, size: size, digest: digest)
        let object: GoogleCloudStorage.Object
        do {
            object = try await storage.upload(name: key.rawValue, body: counted, size: size)
        } catch {
            // Real Cloud Storage commits nothing short of `size` bytes, but an answer lost after
            // the commit leaves an object nobody points to, and emulators store what arrived:
            // remove it now (the orphan sweep catches what this misses).
            let (storage, logger) = (storage, logger)
            Task {
                do {
                    try await storage.delete(name: key.rawValue)
                } catch let error as GoogleCloudError where error == .notFound("") {
                } catch {
                    logger.debug("cannot delete after a failed upload", metadata: ["payload.key": "\(key)", "error": "\(error)"])
                }
            }
            throw Self.storeError(error)
        }
        let (sent, sha256) = digest.withLock { ($0.size, $0.hexDigest()) }
        guard sent == size, object.size == size else {
            throw PayloadStoreError.unavailable("Cloud Storage stored \(object.size) bytes of the \(sent) sent for \(key)")
        }
        return PayloadPointer(uri: uriPrefix + key.rawValue, size: size, sha256: sha256)
    }

    public func get(_ pointer: PayloadPointer) async throws -> PayloadBody {
        let key = try key(of: pointer)
        let body: HTTPClientResponse.Body
        do {
            body = try await storage.download(name: key.rawValue)
        } catch {
            throw Self.storeError(error)
        }
        // Any failure while the body arrives (a reset, the client's read timeout) is the service's.
        return PayloadBody(body, verifying: pointer) { error in
            error is CancellationError ? error : PayloadStoreError.unavailable("reading \(pointer.uri): \(error)")
        }
    }

    public func delete(key: PayloadKey) async throws {
        do {
            try await storage.delete(name: key.rawValue)
        } catch let error as GoogleCloudError where error == .notFound("") {
            // Already gone: deleting is idempotent.
        } catch {
            throw Self.storeError(error)
        }
    }

    public func list(prefix: String, pageToken: String?, pageSize: Int) async throws -> PayloadPage {
        try PayloadKey.validatePrefix(prefix)
        let page: GoogleCloudStorage.ObjectPage
        do {
            page = try await storage.list(prefix: prefix, pageToken: pageToken, maxResults: pageSize)
        } catch {
            throw Self.storeError(error)
        }
        // Objects that are no key (written by something else into the bucket) are not the store's.
        let objects = page.objects.compactMap { object in
            (try? PayloadKey(object.name)).map { PayloadObject(key: $0, size: object.size, createdAt: object.timeCreated) }
        }
        return PayloadPage(objects: objects, nextPageToken: page.nextPageToken)
    }

    /// The store's error for a failure of the client; the caller's own errors (a body stream's,
    /// a size mismatch, a cancellation) pass as they are.
    static func storeError(_ error: any Error) -> any Error {
        switch error {
        case let error as GoogleCloudError where error == .notFound(""): return PayloadStoreError.notFound(error.detail)
        case let error as GoogleCloudError: return PayloadStoreError.unavailable(error.detail)
        default: return error
        }
    }
}

/// An upload's body, counted and hashed as Cloud Storage reads it, refusing to run past or stop
/// short of its declared size (so a wrong size never reaches the service as a short object).
private struct DigestingBody<Base: AsyncSequence & Sendable>: AsyncSequence, Sendable where Base.Element == ByteBuffer {
    typealias Element = ByteBuffer
    let base: Base
    let size: Int
    let digest: SharedDigest

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(base: base.makeAsyncIterator(), size: size, digest: digest) }

    struct AsyncIterator: AsyncIteratorProtocol {
        var base: Base.AsyncIterator
        let size: Int
        let digest: SharedDigest

        mutating func next() async throws -> ByteBuffer? {
            guard let chunk = try await base.next() else {
                let seen = digest.withLock { $0.size }
                guard seen == size else {
                    throw PayloadStoreError.sizeMismatch("the body ended after \(seen) of its declared \(size) bytes")
                }
                return nil
            }
            let seen = digest.withLock { digest in
                digest.update(chunk)
                return digest.size
            }
            guard seen <= size else { throw PayloadStoreError.sizeMismatch("the body goes past its declared \(size) bytes") }
            return chunk
        }
    }
}

/// The digest of an upload, updated by the task that sends the body and read after the answer.
private final class SharedDigest: Sendable {
    private let state = Mutex(PayloadDigest())

    func withLock<Result: Sendable>(_ body: (inout PayloadDigest) -> Result) -> Result { state.withLock { body(&$0) } }
}
