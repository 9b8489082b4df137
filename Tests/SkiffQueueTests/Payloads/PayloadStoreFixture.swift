import Foundation
import Logging
import NIOCore
import SkiffGoogleCloud
import SkiffQueue
import SkiffTestSupport
import Testing

/// A payload store under test, in a place of its own (a fresh directory; a fresh key prefix in
/// the emulator's bucket), with the back doors the contract needs: writing an object behind the
/// store's back, and seeing everything left under a key.
struct PayloadStoreFixture: Sendable {
    enum Kind: String, Sendable, CustomTestStringConvertible {
        case fileSystem, cloudStorage
        var testDescription: String { rawValue }
    }

    /// Filesystem always; Cloud Storage when the harness started its emulator.
    static var kinds: [Kind] { [.fileSystem] + (TestEnvironment.hasGCS ? [.cloudStorage] : []) }

    let kind: Kind
    let store: any PayloadStore
    /// Every key a test uses starts with this, so tests never see each other's objects.
    let prefix: String
    private let directory: String?
    private let storage: GoogleCloudStorage?

    /// Runs `body` with a fresh store of `kind`; removes the filesystem store's directory after.
    static func with<T>(_ kind: Kind, _ body: (PayloadStoreFixture) async throws -> T) async throws -> T {
        let prefix = TestEnvironment.uniqueName("t") + "/"
        switch kind {
        case .fileSystem:
            let directory = NSTemporaryDirectory() + TestEnvironment.uniqueName("skiff-payloads")
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let store = try FileSystemPayloadStore(root: directory)
            return try await body(PayloadStoreFixture(kind: kind, store: store, prefix: prefix, directory: directory, storage: nil))
        case .cloudStorage:
            let storage = cloudStorage(baseURL: TestEnvironment.gcsURL!)
            let store = GoogleCloudStoragePayloadStore(storage: storage, logger: Logger(label: "test"))
            return try await body(PayloadStoreFixture(kind: kind, store: store, prefix: prefix, directory: nil, storage: storage))
        }
    }

    static func cloudStorage(baseURL: String) -> GoogleCloudStorage {
        GoogleCloudStorage(baseURL: baseURL, bucket: TestEnvironment.gcsBucket, accessToken: nil, requestTimeout: .seconds(60), logger: Logger(label: "test"))
    }

    func key(_ name: String) throws -> PayloadKey { try PayloadKey(prefix + name) }

    /// Whether a listing's pages hold at most the size asked for. gcp-storage-emulator ignores
    /// `maxResults` and answers every object in one page (real Cloud Storage pages).
    var honorsPageSize: Bool { kind == .fileSystem }

    /// Whether the store can hold an empty object. gcp-storage-emulator fails a media upload
    /// with no bytes (its handler takes the empty body for none); real Cloud Storage stores it.
    var storesEmptyObjects: Bool { kind == .fileSystem }

    /// Replaces the object under `key` with `bytes`, as a disk fault or another writer would.
    func overwrite(_ key: PayloadKey, with bytes: ByteBuffer) async throws {
        switch kind {
        case .fileSystem:
            let path = (store as! FileSystemPayloadStore).path(of: key)
            guard FileManager.default.createFile(atPath: path, contents: Data(bytes.readableBytesView)) else {
                throw CocoaError(.fileWriteUnknown)
            }
        case .cloudStorage:
            _ = try await storage!.upload(name: key.rawValue, body: TestBody(bytes), size: bytes.readableBytes)
        }
    }

    /// Everything there is at `key` or beside it with its name: the object, and for the
    /// filesystem temporary files (`.name.tmp-...`).
    func leftovers(_ key: PayloadKey) async throws -> [String] {
        switch kind {
        case .fileSystem:
            let path = (store as! FileSystemPayloadStore).path(of: key)
            let parent = (path as NSString).deletingLastPathComponent
            let name = (path as NSString).lastPathComponent
            let names = (try? FileManager.default.contentsOfDirectory(atPath: parent)) ?? []
            return names.filter { $0 == name || $0.hasPrefix(".\(name).") }
        case .cloudStorage:
            return try await storage!.list(prefix: key.rawValue, pageToken: nil).objects.map(\.name).filter { $0 == key.rawValue }
        }
    }
}
