public import NIOCore

/// An object's bytes as a store reads them, verified against the pointer they were asked for:
/// each chunk is counted and hashed as it passes, and a body that runs past the pointer's size,
/// ends short of it, or has another SHA-256 throws ``PayloadStoreError/corrupted(_:)``.
///
/// The last chunk is held back until the whole body is verified, so a consumer that forwards
/// chunks as they come (an HTTP response) never delivers a complete corrupted body: it sees the
/// error before the final bytes. At most two chunks are held at once. Iterate it once.
public struct PayloadBody: AsyncSequence, Sendable {
    public typealias Element = ByteBuffer

    private let pointer: PayloadPointer
    private let makeNext: @Sendable () -> () async throws -> ByteBuffer?
    private let mapError: @Sendable (any Error) -> any Error

    /// - Parameters:
    ///   - chunks: the object's bytes as the store reads them.
    ///   - mapError: turns a failure of `chunks` into the store's error (``PayloadStoreError/unavailable(_:)``).
    public init<Chunks: AsyncSequence & Sendable>(
        _ chunks: Chunks,
        verifying pointer: PayloadPointer,
        mapError: @escaping @Sendable (any Error) -> any Error = { $0 }
    ) where Chunks.Element == ByteBuffer {
        self.pointer = pointer
        self.mapError = mapError
        self.makeNext = {
            let box = IteratorBox(chunks.makeAsyncIterator())
            return { try await box.next() }
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(pointer: pointer, base: makeNext(), mapError: mapError)
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        private let pointer: PayloadPointer
        private let base: () async throws -> ByteBuffer?
        private let mapError: @Sendable (any Error) -> any Error
        private var digest = PayloadDigest()
        private var held: ByteBuffer?
        private var finished = false

        init(pointer: PayloadPointer, base: @escaping () async throws -> ByteBuffer?, mapError: @escaping @Sendable (any Error) -> any Error) {
            self.pointer = pointer
            self.base = base
            self.mapError = mapError
        }

        public mutating func next() async throws -> ByteBuffer? {
            guard !finished else { return nil }
            while true {
                let chunk: ByteBuffer?
                do {
                    chunk = try await base()
                } catch {
                    finished = true
                    held = nil
                    throw mapError(error)
                }
                guard let chunk else {
                    finished = true
                    let last = held
                    held = nil
                    guard digest.size == pointer.size else {
                        throw PayloadStoreError.corrupted("\(pointer.uri) holds \(digest.size) bytes, the pointer says \(pointer.size)")
                    }
                    let sha256 = digest.hexDigest()
                    guard sha256 == pointer.sha256 else {
                        throw PayloadStoreError.corrupted("\(pointer.uri) has SHA-256 \(sha256), the pointer says \(pointer.sha256)")
                    }
                    return last
                }
                guard chunk.readableBytes > 0 else { continue }
                digest.update(chunk)
                guard digest.size <= pointer.size else {
                    finished = true
                    held = nil
                    throw PayloadStoreError.corrupted("\(pointer.uri) holds more than the \(pointer.size) bytes the pointer says")
                }
                let previous = held
                held = chunk
                if let previous { return previous }
            }
        }
    }
}

/// The one iterator of a chunk sequence, shared by reference so a closure can advance it.
private final class IteratorBox<Base: AsyncIteratorProtocol> where Base.Element == ByteBuffer {
    private var base: Base

    init(_ base: Base) { self.base = base }

    func next() async throws -> ByteBuffer? { try await base.next() }
}
