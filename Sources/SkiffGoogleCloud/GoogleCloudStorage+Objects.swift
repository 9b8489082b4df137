public import Foundation

extension GoogleCloudStorage {
    /// An object's name, size and creation time (the fields this client asks for).
    public struct Object: Hashable, Sendable {
        public let name: String
        /// The object's length in bytes.
        public let size: Int
        public let timeCreated: Date

        public init(name: String, size: Int, timeCreated: Date) {
            self.name = name
            self.size = size
            self.timeCreated = timeCreated
        }
    }

    /// One page of a listing.
    public struct ObjectPage: Hashable, Sendable {
        public let objects: [Object]
        /// For the next call; nil on the last page.
        public let nextPageToken: String?

        public init(objects: [Object], nextPageToken: String?) {
            self.objects = objects
            self.nextPageToken = nextPageToken
        }
    }

    /// The fields of an object resource this client reads (`fields=` keeps answers small).
    static let objectFields = "name,size,timeCreated"

    /// The JSON API's object resource, as far as this client reads it: `size` is a decimal
    /// string (a uint64), `timeCreated` RFC 3339 with fractional seconds.
    struct ObjectResource: Decodable {
        let name: String
        let size: String
        let timeCreated: String

        func object() throws -> Object {
            guard let size = Int(size), size >= 0, let created = Self.date(timeCreated) else {
                throw GoogleCloudError.serviceUnavailable("an object resource with size \"\(size)\" and timeCreated \"\(timeCreated)\"")
            }
            return Object(name: name, size: size, timeCreated: created)
        }

        static func date(_ text: String) -> Date? {
            let formatter = ISO8601DateFormatter()
            formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            if let date = formatter.date(from: text) { return date }
            formatter.formatOptions = [.withInternetDateTime]
            return formatter.date(from: text)
        }
    }

    /// The JSON API's object list; `items` is absent from an empty page.
    struct ListResource: Decodable {
        let items: [ObjectResource]?
        let nextPageToken: String?
    }
}
