/// A failure of a payload store. The HTTP layer maps it to a status in one place: ``unavailable(_:)``
/// is a 503 (retry later), ``corrupted(_:)`` is a server error that must never be answered as a
/// body, the others are the caller's mistakes.
///
/// Errors compare equal when they are the same case, whatever their message, so a caller can
/// match with `error == .corrupted()`.
public struct PayloadStoreError: Error, Hashable, CustomStringConvertible, Sendable {
    private enum Code: Hashable, Sendable {
        case unavailable
        case corrupted
        case notFound
        case invalidKey
        case tooLarge
        case sizeMismatch
        case unsupported
    }

    private let code: Code
    /// A message a person can act on; not part of equality.
    public let message: String

    private init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }

    /// The store could not be reached, answered too late, or failed an I/O operation: retry later.
    /// Nothing can be said about the object.
    public static func unavailable(_ detail: String = "") -> Self { Self(.unavailable, "payload store is unavailable: \(detail)") }
    /// The stored object is not the one the pointer describes: another size or another SHA-256.
    /// Retrying does not help; the body is lost unless the object is restored.
    public static func corrupted(_ detail: String = "") -> Self { Self(.corrupted, "payload is corrupted: \(detail)") }
    /// No object under the key (deleted, never written, or swept as an orphan).
    public static func notFound(_ detail: String = "") -> Self { Self(.notFound, "payload not found: \(detail)") }
    /// A key or prefix outside ``PayloadKey``'s rules, or a pointer whose URI names another store.
    public static func invalidKey(_ detail: String = "") -> Self { Self(.invalidKey, "invalid payload key: \(detail)") }
    /// A body larger than the store accepts (or a pointer to one larger than the caller's limit).
    public static func tooLarge(_ detail: String = "") -> Self { Self(.tooLarge, "payload too large: \(detail)") }
    /// The body stream ended before, or went on past, the size it was declared with. Nothing was
    /// stored.
    public static func sizeMismatch(_ detail: String = "") -> Self { Self(.sizeMismatch, "payload size mismatch: \(detail)") }
    /// The store cannot do this (sign URLs without a signing key or secret configured).
    public static func unsupported(_ detail: String = "") -> Self { Self(.unsupported, "unsupported by the payload store: \(detail)") }

    public var description: String { message }
}
