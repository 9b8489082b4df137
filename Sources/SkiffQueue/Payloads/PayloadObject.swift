public import Foundation

/// One object of a payload store's listing: what an orphan sweep needs to decide whether to
/// delete it.
public struct PayloadObject: Hashable, Sendable {
    public let key: PayloadKey
    /// The object's length in bytes.
    public let size: Int
    /// When the object was written (the filesystem's modification time; Cloud Storage's
    /// `timeCreated`).
    public let createdAt: Date

    public init(key: PayloadKey, size: Int, createdAt: Date) {
        self.key = key
        self.size = size
        self.createdAt = createdAt
    }
}
