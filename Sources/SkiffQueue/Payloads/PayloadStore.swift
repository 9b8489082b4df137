public import NIOCore

/// Where message bodies too large for Redis go: objects under caller-chosen keys, written as a
/// stream and read back verified. Redis keeps a ``PayloadPointer`` in place of the body.
///
/// Implementations: ``FileSystemPayloadStore`` (one host: `make run`, the local cluster, tests)
/// and `GoogleCloudStoragePayloadStore` in SkiffGoogleCloud. Failures are
/// ``PayloadStoreError``s; a store that cannot be reached is ``PayloadStoreError/unavailable(_:)``,
/// never another case.
public protocol PayloadStore: Sendable {
    /// Stores `body` under `key`, replacing any object there, and describes what was stored.
    ///
    /// The body is streamed (counted and hashed as it passes), never held whole. An object
    /// appears under `key` only complete: if `body` throws, is shorter or longer than `size`, or
    /// the store fails, nothing is left under `key` and the error is rethrown (the body's own
    /// error as it is; ``PayloadStoreError/sizeMismatch(_:)``; ``PayloadStoreError/unavailable(_:)``).
    /// - Parameter size: the body's length in bytes; more than the store's limit is
    ///   ``PayloadStoreError/tooLarge(_:)`` before anything is read.
    func put<Body: AsyncSequence & Sendable>(key: PayloadKey, body: Body, size: Int) async throws -> PayloadPointer
    where Body.Element == ByteBuffer

    /// The object `pointer` names, as a stream verified against the pointer's size and SHA-256
    /// (see ``PayloadBody``).
    /// - Throws: ``PayloadStoreError/notFound(_:)`` when there is no object,
    ///   ``PayloadStoreError/invalidKey(_:)`` when the URI names another store; the stream throws
    ///   ``PayloadStoreError/corrupted(_:)`` or ``PayloadStoreError/unavailable(_:)``.
    func get(_ pointer: PayloadPointer) async throws -> PayloadBody

    /// Deletes the object under `key`; deleting an absent object succeeds.
    func delete(key: PayloadKey) async throws

    /// One page of the objects whose keys start with `prefix` (a string prefix, as Cloud Storage
    /// has it: `q/` lists queue `q`'s objects), in key order.
    /// - Parameters:
    ///   - pageToken: nil for the first page, then the previous page's ``PayloadPage/nextPageToken``.
    ///   - pageSize: at most this many objects.
    func list(prefix: String, pageToken: String?, pageSize: Int) async throws -> PayloadPage

    /// The key `pointer`'s URI names in this store, if it names this store.
    func key(of pointer: PayloadPointer) throws -> PayloadKey

    /// Whether ``signedURL(for:expiresAtMilliseconds:)`` can sign (a store configured for it).
    var signsURLs: Bool { get }

    /// A URL where anyone holding it can read the object `pointer` names, without credentials of
    /// their own, until `expiresAtMilliseconds` (since 1970): a V4 signed URL of Cloud Storage, or
    /// a path the replicas serve for the filesystem store, relative to the service's address. It
    /// does not look at the object: one missing is the URL's 404 later.
    /// - Throws: ``PayloadStoreError/unsupported(_:)`` when the store does not sign URLs,
    ///   ``PayloadStoreError/unavailable(_:)`` when signing needs a service that cannot be reached.
    func signedURL(for pointer: PayloadPointer, expiresAtMilliseconds: Int64) async throws -> String
}

extension PayloadStore {
    public var signsURLs: Bool { false }

    public func signedURL(for pointer: PayloadPointer, expiresAtMilliseconds: Int64) async throws -> String {
        throw PayloadStoreError.unsupported("this payload store does not sign URLs")
    }
}

extension PayloadStore {
    /// The bodies the stores accept at most: 32 MiB.
    public static var defaultMaximumBodyBytes: Int { 32 * 1024 * 1024 }

    /// The object `pointer` names, collected and verified before it is returned.
    /// - Parameter maximumBytes: a pointer to a larger body is ``PayloadStoreError/tooLarge(_:)``
    ///   before anything is read, so memory stays bounded whatever the pointer says.
    public func bytes(of pointer: PayloadPointer, upTo maximumBytes: Int) async throws -> ByteBuffer {
        guard pointer.size <= maximumBytes else {
            throw PayloadStoreError.tooLarge("\(pointer.uri) is \(pointer.size) bytes, more than \(maximumBytes)")
        }
        var collected = ByteBuffer()
        collected.reserveCapacity(pointer.size)
        for try await var chunk in try await get(pointer) {
            collected.writeBuffer(&chunk)
        }
        return collected
    }
}
