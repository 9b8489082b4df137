import Crypto
import Foundation
import NIOCore
import SkiffTestSupport
import Testing

@testable import SkiffQueue

/// What every payload store promises, on the filesystem always and on Cloud Storage (the
/// emulator) when the harness started one: bodies come back byte for byte or not at all, a
/// changed object is detected, nothing half-written is ever visible, and keys stay inside the store.
@Suite("PayloadStore contract", .timeLimit(.minutes(2)))
struct PayloadStoreContractTests {
    static let sizes = [0, 1, 256 * 1024, 1024 * 1024, 10 * 1024 * 1024, 32 * 1024 * 1024]

    static func sha256(_ bytes: ByteBuffer) -> String {
        SHA256.hash(data: Data(bytes.readableBytesView)).map { String(format: "%02x", $0) }.joined()
    }

    @Test(arguments: PayloadStoreFixture.kinds, sizes)
    func aBodyComesBackByteForByte(kind: PayloadStoreFixture.Kind, size: Int) async throws {
        try await PayloadStoreFixture.with(kind) { fixture in
            guard size > 0 || fixture.storesEmptyObjects else { return }
            let bytes = TestBody.random(size)
            let key = try fixture.key("m-\(size)")
            let pointer = try await fixture.store.put(key: key, body: TestBody(bytes, chunkBytes: 100_000), size: size)
            #expect(pointer.size == size)
            #expect(pointer.sha256 == Self.sha256(bytes))
            #expect(pointer.uri.hasSuffix("/" + key.rawValue))
            #expect(pointer.uri.hasPrefix(kind == .fileSystem ? "file:///" : "gs://\(TestEnvironment.gcsBucket)/"))
            #expect(try fixture.store.key(of: pointer) == key)

            let collected = try await fixture.store.bytes(of: pointer, upTo: PayloadStoreContractTests.sizes.last!)
            #expect(collected == bytes)
            // Streamed: the same bytes, in chunks no larger than a read's.
            var streamed = ByteBuffer()
            var largestChunk = 0
            for try await var chunk in try await fixture.store.get(pointer) {
                largestChunk = max(largestChunk, chunk.readableBytes)
                streamed.writeBuffer(&chunk)
            }
            #expect(streamed == bytes)
            #expect(largestChunk <= 4 * 1024 * 1024)
        }
    }

    @Test(arguments: PayloadStoreFixture.kinds)
    func aChangedObjectIsCorruptedNotUnavailable(kind: PayloadStoreFixture.Kind) async throws {
        try await PayloadStoreFixture.with(kind) { fixture in
            let key = try fixture.key("m")
            let bytes = TestBody.random(300_000)
            let pointer = try await fixture.store.put(key: key, body: TestBody(bytes), size: bytes.readableBytes)

            // The same size, one byte changed.
            var changed = bytes
            changed.setInteger(changed.getInteger(at: 150_000, as: UInt8.self)! ^ 0x01, at: 150_000)
            try await fixture.overwrite(key, with: changed)
            await #expect(throws: PayloadStoreError.corrupted()) { try await fixture.store.bytes(of: pointer, upTo: 1 << 20) }
            // A reader that forwards chunks never gets the whole body before the error.
            var forwarded = 0
            await #expect(throws: PayloadStoreError.corrupted()) {
                for try await chunk in try await fixture.store.get(pointer) { forwarded += chunk.readableBytes }
            }
            #expect(forwarded < bytes.readableBytes)

            // Shorter, and longer.
            try await fixture.overwrite(key, with: bytes.getSlice(at: 0, length: 299_999)!)
            await #expect(throws: PayloadStoreError.corrupted()) { try await fixture.store.bytes(of: pointer, upTo: 1 << 20) }
            var longer = bytes
            longer.writeInteger(UInt8(7))
            try await fixture.overwrite(key, with: longer)
            await #expect(throws: PayloadStoreError.corrupted()) { try await fixture.store.bytes(of: pointer, upTo: 1 << 20) }

            // Put back as it was, it reads again.
            try await fixture.overwrite(key, with: bytes)
            #expect(try await fixture.store.bytes(of: pointer, upTo: 1 << 20) == bytes)
        }
    }

    @Test(arguments: PayloadStoreFixture.kinds)
    func deletingIsIdempotentAndAMissingObjectIsNotFound(kind: PayloadStoreFixture.Kind) async throws {
        try await PayloadStoreFixture.with(kind) { fixture in
            let key = try fixture.key("q/m")
            let pointer = try await fixture.store.put(key: key, body: TestBody(TestBody.random(10)), size: 10)
            try await fixture.store.delete(key: key)
            try await fixture.store.delete(key: key)
            try await fixture.store.delete(key: try fixture.key("never/written"))
            await #expect(throws: PayloadStoreError.notFound()) { try await fixture.store.get(pointer) }
            #expect(try await fixture.leftovers(key).isEmpty)
        }
    }

    @Test(arguments: PayloadStoreFixture.kinds)
    func aListingFollowsPrefixesAndPages(kind: PayloadStoreFixture.Kind) async throws {
        try await PayloadStoreFixture.with(kind) { fixture in
            let before = Date()
            let names = ["a/1", "a/2", "a/3", "a/4", "a/5", "ab", "b/1", "b/c/2"]
            for (index, name) in names.enumerated() {
                _ = try await fixture.store.put(key: try fixture.key(name), body: TestBody(TestBody.random(index + 1)), size: index + 1)
            }
            func all(_ prefix: String, pageSize: Int) async throws -> [PayloadObject] {
                var objects: [PayloadObject] = []
                var token: String?
                var pages = 0
                repeat {
                    let page = try await fixture.store.list(prefix: fixture.prefix + prefix, pageToken: token, pageSize: pageSize)
                    if fixture.honorsPageSize { #expect(page.objects.count <= pageSize) }
                    objects += page.objects
                    token = page.nextPageToken
                    pages += 1
                } while token != nil && pages < 100
                return objects
            }
            let keys = { (objects: [PayloadObject]) in objects.map { String($0.key.rawValue.dropFirst(fixture.prefix.count)) } }
            #expect(keys(try await all("a/", pageSize: 2)) == ["a/1", "a/2", "a/3", "a/4", "a/5"])
            #expect(keys(try await all("a", pageSize: 2)) == ["a/1", "a/2", "a/3", "a/4", "a/5", "ab"])
            #expect(keys(try await all("b", pageSize: 1)) == ["b/1", "b/c/2"])
            #expect(keys(try await all("", pageSize: 3)) == names)
            #expect(keys(try await all("c", pageSize: 3)).isEmpty)
            let everything = try await all("", pageSize: 100)
            #expect(everything.map(\.size) == Array(1...names.count))
            for object in everything {
                #expect(object.createdAt >= before.addingTimeInterval(-2) && object.createdAt <= Date().addingTimeInterval(2))
            }
            if fixture.honorsPageSize {
                let first = try await fixture.store.list(prefix: fixture.prefix + "a/", pageToken: nil, pageSize: 2)
                #expect(first.objects.count == 2 && first.nextPageToken != nil)
                let last = try await fixture.store.list(prefix: fixture.prefix + "a/", pageToken: nil, pageSize: 5)
                #expect(last.objects.count == 5 && last.nextPageToken == nil)
            }
        }
    }

    @Test(arguments: PayloadStoreFixture.kinds)
    func keysCannotLeaveTheStore(kind: PayloadStoreFixture.Kind) async throws {
        try await PayloadStoreFixture.with(kind) { fixture in
            for key in [
                "../x", "/etc/passwd", "a/../b", "a/./b", "a//b", "a/", "", ".hidden", "a/.x", "a b", "a\\b", "ü", "a%2Fb", String(repeating: "a", count: 513),
            ] {
                #expect(throws: PayloadStoreError.invalidKey(), "\(key)") { try PayloadKey(key) }
            }
            let longest = try PayloadKey(String(repeating: "a", count: 512))
            #expect(longest.rawValue.count == 512)
            let partition = try PayloadKey("orders~3/01JD3Z8V9Q2W4X6Y8Z0A1B2C3D.v1_x-y")
            #expect(partition.rawValue == "orders~3/01JD3Z8V9Q2W4X6Y8Z0A1B2C3D.v1_x-y")
            for prefix in ["../", "/", "a//", "..", "a/.."] {
                await #expect(throws: PayloadStoreError.invalidKey(), "\(prefix)") {
                    try await fixture.store.list(prefix: prefix, pageToken: nil, pageSize: 10)
                }
            }
            // A pointer naming a place outside the store, or into it through "..".
            let elsewhere = kind == .fileSystem ? "file:///etc/passwd" : "gs://another-bucket/x"
            let escaping = kind == .fileSystem ? "file://\((fixture.store as! FileSystemPayloadStore).root)/../x" : "gs://\(TestEnvironment.gcsBucket)/../x"
            for uri in [elsewhere, escaping] {
                let pointer = PayloadPointer(uri: uri, size: 1, sha256: String(repeating: "0", count: 64))
                await #expect(throws: PayloadStoreError.invalidKey(), "\(uri)") { try await fixture.store.get(pointer) }
            }
        }
    }

    @Test(arguments: PayloadStoreFixture.kinds)
    func aFailedUploadLeavesNothing(kind: PayloadStoreFixture.Kind) async throws {
        try await PayloadStoreFixture.with(kind) { fixture in
            let bytes = TestBody.random(1024 * 1024)
            let key = try fixture.key("q/m")
            // The body's own error comes back as it is.
            await #expect(throws: TestBody.Interrupted()) {
                try await fixture.store.put(key: key, body: TestBody(bytes, failAfterBytes: 300_000), size: bytes.readableBytes)
            }
            // Declared longer than it is, then shorter.
            await #expect(throws: PayloadStoreError.sizeMismatch()) {
                try await fixture.store.put(key: key, body: TestBody(bytes), size: bytes.readableBytes + 1)
            }
            await #expect(throws: PayloadStoreError.sizeMismatch()) {
                try await fixture.store.put(key: key, body: TestBody(bytes), size: bytes.readableBytes - 1)
            }
            // Nothing under the key, no temporary file beside it. (The emulator stores what
            // arrived of an interrupted upload, which real Cloud Storage never does; the store's
            // cleanup deletes it shortly after.)
            let left = try await eventually(timeout: .seconds(10), until: { $0.isEmpty }) { try await fixture.leftovers(key) }
            #expect(left.isEmpty)
            // A body over the store's limit is refused before it is read.
            await #expect(throws: PayloadStoreError.tooLarge()) {
                try await fixture.store.put(key: key, body: TestBody(bytes, failAfterBytes: 0), size: 32 * 1024 * 1024 + 1)
            }
        }
    }

    @Test(arguments: PayloadStoreFixture.kinds)
    func aPointerBeyondTheCallersLimitIsNotRead(kind: PayloadStoreFixture.Kind) async throws {
        try await PayloadStoreFixture.with(kind) { fixture in
            let bytes = TestBody.random(2000)
            let pointer = try await fixture.store.put(key: try fixture.key("m"), body: TestBody(bytes), size: 2000)
            await #expect(throws: PayloadStoreError.tooLarge()) { try await fixture.store.bytes(of: pointer, upTo: 1999) }
            #expect(try await fixture.store.bytes(of: pointer, upTo: 2000) == bytes)
        }
    }
}

/// The filesystem store's errors: a file missing on a read is a missing object (the message's
/// receive fails with 502); a file that cannot be created on a write is a store out of order (the
/// send fails with 503 and stores nothing), never "not found".
@Suite("Filesystem payload store errors")
struct FileSystemPayloadStoreErrorTests {
    @Test func aMissingDirectoryOnAWriteIsUnavailableAndOnAReadNotFound() {
        let missing = NSTemporaryDirectory() + TestEnvironment.uniqueName("gone") + "/sub/file"
        #expect(throws: PayloadStoreError.unavailable()) {
            _ = try FileSystemPayloadStore.OpenFile(path: missing, flags: O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC)
        }
        #expect(throws: PayloadStoreError.notFound()) {
            _ = try FileSystemPayloadStore.OpenFile(path: missing, flags: O_RDONLY | O_CLOEXEC)
        }
    }
}
