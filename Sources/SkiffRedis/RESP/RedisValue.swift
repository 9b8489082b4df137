public import NIOCore

/// A reply from Redis, converted from hiredis's reply tree into Swift values.
///
/// Bulk strings stay `ByteBuffer`s so message bodies are never re-encoded as `String`s.
public enum RedisValue: Sendable, Equatable {
    case simpleString(String)
    case error(String)
    case integer(Int64)
    case bulkString(ByteBuffer)
    case null
    case array([RedisValue])
}

extension RedisValue {
    /// The value as a UTF-8 string, for status, bulk and integer replies.
    public var string: String? {
        switch self {
        case .simpleString(let string): return string
        case .bulkString(let buffer): return String(buffer: buffer)
        case .integer(let integer): return String(integer)
        default: return nil
        }
    }

    /// The value as an integer, for integer replies and bulk strings holding a decimal number.
    public var integer: Int64? {
        switch self {
        case .integer(let integer): return integer
        case .bulkString(let buffer): return Int64(String(buffer: buffer))
        case .simpleString(let string): return Int64(string)
        default: return nil
        }
    }

    /// The elements of an array reply; `nil` for anything else.
    public var array: [RedisValue]? {
        if case .array(let elements) = self { return elements }
        return nil
    }

    /// The bytes of a bulk string reply.
    public var bytes: ByteBuffer? {
        if case .bulkString(let buffer) = self { return buffer }
        return nil
    }

    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }
}
