import Foundation
public import NIOCore
public import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A payload store in a directory of the local filesystem: key `q/id` is the file `root/q/id`,
/// its URI `file:///root/q/id`. For one host (`make run`, the local cluster, tests); replicas on
/// several hosts need a store they all reach.
///
/// A write goes to a temporary file beside its final name (`.id.tmp-<random>`, which no key can
/// name), is flushed to disk (`fsync`), then renamed into place and the directory flushed: a
/// crash leaves either the whole object or none under the key, perhaps with a temporary file
/// that no listing shows. Blocking file calls run on a thread pool, one chunk at a time.
///
/// Empty directories stay after their objects are deleted (they are cheap, and removing them
/// would race with a write creating a file in them).
public struct FileSystemPayloadStore: PayloadStore {
    /// The store's directory, absolute and standardized.
    public let root: String
    /// Bodies larger than this are refused (``PayloadStoreError/tooLarge(_:)``).
    public let maximumBodyBytes: Int
    private let threadPool: NIOThreadPool
    private let uriPrefix: String
    /// Signs the URLs the replicas serve (`PAYLOADS_URL_SECRET`); `nil`: no signed URLs.
    public let urlSigner: PayloadURLSigner?

    /// Bytes read per chunk of a download.
    static let readChunkBytes = 128 * 1024

    /// Creates `root` (and its parents) if it does not exist.
    /// - Throws: ``PayloadStoreError/unavailable(_:)`` when the directory cannot be created.
    public init(
        root: String, maximumBodyBytes: Int = FileSystemPayloadStore.defaultMaximumBodyBytes, threadPool: NIOThreadPool = .singleton,
        urlSigner: PayloadURLSigner? = nil
    ) throws {
        let standardized = URL(fileURLWithPath: root).standardizedFileURL.path
        do {
            try FileManager.default.createDirectory(atPath: standardized, withIntermediateDirectories: true)
        } catch {
            throw PayloadStoreError.unavailable("cannot create \(standardized): \(error)")
        }
        self.root = standardized
        self.maximumBodyBytes = maximumBodyBytes
        self.threadPool = threadPool
        self.urlSigner = urlSigner
        let encodedRoot = standardized.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? standardized
        self.uriPrefix = "file://" + encodedRoot + (encodedRoot.hasSuffix("/") ? "" : "/")
    }

    /// The file that holds `key`'s object.
    public func path(of key: PayloadKey) -> String {
        root + (root.hasSuffix("/") ? "" : "/") + key.rawValue
    }

    /// The pointer to `key`'s object that says it is `size` bytes with SHA-256 `sha256`.
    public func pointer(to key: PayloadKey, size: Int, sha256: String) -> PayloadPointer {
        PayloadPointer(uri: uriPrefix + key.rawValue, size: size, sha256: sha256)
    }

    public var signsURLs: Bool { urlSigner != nil }

    /// A path the replicas serve (``PayloadURLSigner``), relative to the service's address.
    public func signedURL(for pointer: PayloadPointer, expiresAtMilliseconds: Int64) async throws -> String {
        guard let urlSigner else { throw PayloadStoreError.unsupported("signed URLs of a filesystem store need PAYLOADS_URL_SECRET") }
        return urlSigner.path(key: try key(of: pointer), size: pointer.size, sha256: pointer.sha256, expiresAtMilliseconds: expiresAtMilliseconds)
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
        let path = path(of: key)
        let directory = String(path[..<path.lastIndex(of: "/")!])
        let name = path[path.index(after: path.lastIndex(of: "/")!)...]
        let temporary = "\(directory)/.\(name).tmp-\(UInt64.random(in: .min ... .max))"

        let file = try await threadPool.runIfActive { () throws -> OpenFile in
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            } catch {
                throw PayloadStoreError.unavailable("cannot create \(directory): \(error)")
            }
            return try OpenFile(path: temporary, flags: O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC)
        }
        do {
            var digest = PayloadDigest()
            for try await chunk in body {
                digest.update(chunk)
                guard digest.size <= size else {
                    throw PayloadStoreError.sizeMismatch("the body goes past its declared \(size) bytes")
                }
                try await threadPool.runIfActive { try file.write(chunk) }
            }
            guard digest.size == size else {
                throw PayloadStoreError.sizeMismatch("the body ended after \(digest.size) of its declared \(size) bytes")
            }
            try await threadPool.runIfActive {
                try file.synchronize()
                try file.close()
                guard rename(temporary, path) == 0 else { throw Self.ioError("rename \(temporary) to \(path)") }
                // The rename itself is durable only once the directory is.
                let parent = try OpenFile(path: directory, flags: O_RDONLY | O_DIRECTORY | O_CLOEXEC)
                try parent.synchronize()
                try parent.close()
            }
            return PayloadPointer(uri: uriPrefix + key.rawValue, size: size, sha256: digest.hexDigest())
        } catch {
            try? await threadPool.runIfActive {
                try? file.close()
                _ = unlink(temporary)
            }
            throw error
        }
    }

    public func get(_ pointer: PayloadPointer) async throws -> PayloadBody {
        let path = path(of: try key(of: pointer))
        let file = try await threadPool.runIfActive {
            try OpenFile(path: path, flags: O_RDONLY | O_CLOEXEC)
        }
        return PayloadBody(FileChunks(file: file, threadPool: threadPool), verifying: pointer)
    }

    public func delete(key: PayloadKey) async throws {
        let path = path(of: key)
        try await threadPool.runIfActive {
            guard unlink(path) == 0 || errno == ENOENT else { throw Self.ioError("unlink \(path)") }
        }
    }

    public func list(prefix: String, pageToken: String?, pageSize: Int) async throws -> PayloadPage {
        try PayloadKey.validatePrefix(prefix)
        precondition(pageSize > 0, "a page holds at least one object")
        // Everything under the directory the prefix is in; the rest of the prefix filters names.
        let directory = prefix.lastIndex(of: "/").map { String(prefix[...$0]) } ?? ""
        let root = root
        let found = try await threadPool.runIfActive { () throws -> [PayloadObject] in
            var objects: [PayloadObject] = []
            try Self.walk(root: root, relative: directory, prefix: prefix, after: pageToken, into: &objects)
            return objects
        }
        let sorted = found.sorted { $0.key < $1.key }
        let page = Array(sorted.prefix(pageSize))
        return PayloadPage(objects: page, nextPageToken: sorted.count > pageSize ? page.last?.key.rawValue : nil)
    }

    /// Collects the objects under `root/relative` whose keys start with `prefix` and sort after
    /// `after`; skips temporary files (their names start with `.`) and anything not a regular file.
    private static func walk(
        root: String, relative: String, prefix: String, after: String?, into objects: inout [PayloadObject]
    )
        throws(PayloadStoreError)
    {
        let directory = root + "/" + relative
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            if relative.isEmpty || !FileManager.default.fileExists(atPath: directory) { return }
            throw .unavailable("cannot list \(directory): \(error)")
        }
        for name in names where !name.hasPrefix(".") {
            let relativePath = relative + name
            var status = stat()
            guard lstat(root + "/" + relativePath, &status) == 0 else { continue }  // deleted meanwhile
            if (status.st_mode & S_IFMT) == S_IFDIR {
                // Only directories that can hold keys with the prefix.
                let asPrefix = relativePath + "/"
                if asPrefix.hasPrefix(prefix) || prefix.hasPrefix(asPrefix) {
                    try walk(root: root, relative: asPrefix, prefix: prefix, after: after, into: &objects)
                }
            } else if (status.st_mode & S_IFMT) == S_IFREG, relativePath.hasPrefix(prefix), after.map({ relativePath > $0 }) ?? true,
                let key = try? PayloadKey(relativePath)
            {
                let modified = Date(timeIntervalSince1970: Double(status.st_mtim.tv_sec) + Double(status.st_mtim.tv_nsec) / 1e9)
                objects.append(PayloadObject(key: key, size: Int(status.st_size), createdAt: modified))
            }
        }
    }

    static func ioError(_ operation: String) -> PayloadStoreError {
        .unavailable("\(operation): \(String(cString: strerror(errno)))")
    }
}
