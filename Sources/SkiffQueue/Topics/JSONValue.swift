import Foundation

/// A JSON value: a message body, or a filter policy before it is compiled into a ``TopicFilter``.
///
/// Numbers are held as `Double`, so integers beyond 2^53 lose precision and `300` equals `300.0`.
/// Booleans are never numbers: `true` decodes as ``bool(_:)``, never as ``number(_:)``, and `1` never as `true`.
/// Objects are unordered; when a JSON text repeats a key, the decoder keeps one of its values.
public enum JSONValue: Sendable, Equatable, Decodable {
    /// JSON `null`.
    case null
    /// `true` or `false`.
    case bool(Bool)
    /// Any JSON number, as a `Double`.
    case number(Double)
    /// A string, as decoded (escapes resolved, no Unicode normalisation).
    case string(String)
    /// An array, in order.
    case array([JSONValue])
    /// An object; keys are unordered.
    case object([String: JSONValue])

    /// Parses one JSON text (UTF-8; any value, not only an object, may stand at the top).
    ///
    /// - Throws: Foundation's `DecodingError` when the bytes are not valid JSON, or a number does not fit a `Double`.
    public init(parsing bytes: some Collection<UInt8>) throws {
        self = try JSONDecoder().decode(JSONValue.self, from: Data(bytes))
    }

    /// Decodes any JSON value; booleans are tried before numbers, so they never turn into `0` or `1`.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            // Last: let an object's (or a bad number's) own error reach the caller.
            self = .object(try container.decode([String: JSONValue].self))
        }
    }
}
