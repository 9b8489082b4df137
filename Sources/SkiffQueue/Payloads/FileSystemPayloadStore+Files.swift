import NIOCore
import NIOPosix
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension FileSystemPayloadStore {
    /// An open file descriptor, closed when the last reference goes (a download its reader
    /// abandoned halfway included). Its blocking calls are made on the store's thread pool.
    final class OpenFile: Sendable {
        private let descriptor: CInt
        private let closed = Mutex(false)

        init(path: String, flags: CInt) throws(PayloadStoreError) {
            let descriptor = open(path, flags, 0o644)
            guard descriptor >= 0 else {
                // A missing file is a missing object only when reading: a file that cannot be
                // created (its directory went away under the write) is a store out of order.
                if errno == ENOENT, flags & O_CREAT == 0 { throw .notFound(path) }
                throw FileSystemPayloadStore.ioError("open \(path)")
            }
            self.descriptor = descriptor
        }

        deinit { try? close() }

        func write(_ chunk: ByteBuffer) throws {
            try chunk.withUnsafeReadableBytes { bytes in
                var offset = 0
                while offset < bytes.count {
                    let written = systemWrite(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
                    if written < 0 {
                        if errno == EINTR { continue }
                        throw FileSystemPayloadStore.ioError("write")
                    }
                    offset += written
                }
            }
        }

        /// Up to `count` bytes from `offset`; an empty buffer at the end of the file.
        func read(at offset: Int, count: Int) throws -> ByteBuffer {
            var buffer = ByteBuffer()
            try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { bytes -> Int in
                while true {
                    let read = pread(descriptor, bytes.baseAddress!, count, off_t(offset))
                    if read >= 0 { return read }
                    if errno != EINTR { throw FileSystemPayloadStore.ioError("read") }
                }
            }
            return buffer
        }

        func synchronize() throws(PayloadStoreError) {
            guard fsync(descriptor) == 0 else { throw FileSystemPayloadStore.ioError("fsync") }
        }

        func close() throws(PayloadStoreError) {
            let wasClosed = closed.withLock { closed in
                defer { closed = true }
                return closed
            }
            guard !wasClosed else { return }
            // The descriptor is released even when close reports an error; retrying could close another.
            guard systemClose(descriptor) == 0 else { throw FileSystemPayloadStore.ioError("close") }
        }
    }

    /// A file's bytes, read a chunk at a time on the thread pool.
    struct FileChunks: AsyncSequence, Sendable {
        typealias Element = ByteBuffer

        let file: OpenFile
        let threadPool: NIOThreadPool

        func makeAsyncIterator() -> AsyncIterator { AsyncIterator(file: file, threadPool: threadPool) }

        struct AsyncIterator: AsyncIteratorProtocol {
            let file: OpenFile
            let threadPool: NIOThreadPool
            var offset = 0

            mutating func next() async throws -> ByteBuffer? {
                let (file, offset) = (file, offset)
                let chunk = try await threadPool.runIfActive {
                    try file.read(at: offset, count: FileSystemPayloadStore.readChunkBytes)
                }
                guard chunk.readableBytes > 0 else {
                    try? file.close()
                    return nil
                }
                self.offset += chunk.readableBytes
                return chunk
            }
        }
    }
}

// The methods above are named like the system calls they make.
private func systemWrite(_ descriptor: CInt, _ bytes: UnsafeRawPointer, _ count: Int) -> Int { write(descriptor, bytes, count) }
private func systemClose(_ descriptor: CInt) -> CInt { close(descriptor) }
