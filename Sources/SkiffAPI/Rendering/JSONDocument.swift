import Foundation
import NIOCore

/// A small request document (settings, receipts, a nack's reason) as a JSON value. Message bodies
/// never go through here: they are validated by ``JSONValidator`` and stored verbatim.
enum JSONDocument: Decodable, Equatable {
    case null
    case bool(Bool)
    case integer(Int64)
    case number(Double)
    case string(String)
    case array([JSONDocument])
    case object([String: JSONDocument])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .integer(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONDocument].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONDocument].self))
        }
    }

    /// The body as a JSON object.
    /// - Throws: ``APIError`` 400 when it is not one.
    static func object(_ body: ByteBuffer) throws -> [String: JSONDocument] {
        guard let document = try? JSONDecoder().decode(JSONDocument.self, from: Data(body.readableBytesView)), case .object(let object) = document
        else {
            throw APIError(.badRequest, "body must be a JSON object")
        }
        return object
    }

    /// An integer field of `object`: `nil` when absent or null.
    static func integer(_ object: [String: JSONDocument], _ field: String, path: String? = nil) throws -> Int64? {
        switch object[field] {
        case nil, .null?: return nil
        case .integer(let value)?: return value
        case .number(let value)? where value == value.rounded() && abs(value) < 9e15: return Int64(value)
        default: throw APIError(.badRequest, "\(path ?? field) must be an integer")
        }
    }

    var string: String? {
        if case .string(let value) = self { return value }
        return nil
    }
}
