public import NIOCore

/// ``JSONValidator``'s rules, checked as the bytes arrive, chunk by chunk, in memory that does not
/// grow with the body (a nesting stack of at most ``JSONValidator/maximumDepth`` entries). For
/// bodies streamed to the payload store: the store never holds a body that is not one JSON value
/// past the request that sent it.
///
/// Accepts exactly what ``JSONValidator/validate(_:)`` accepts, however the bytes are split (a
/// property test holds the two to that); the reasons and offsets of errors may differ.
public struct StreamingJSONValidator: Sendable {
    private enum Literal: Sendable {
        case `true`, `false`, null
        var bytes: StaticString {
            switch self {
            case .true: "true"
            case .false: "false"
            case .null: "null"
            }
        }
    }

    private enum Number: Sendable {
        /// After `-`: a digit.
        case minus
        /// After a leading `0`: `.`, `e` or the end.
        case zero
        /// In the integer digits.
        case integer
        /// After `.`: a digit.
        case point
        /// In the fraction digits.
        case fraction
        /// After `e`: a sign or a digit.
        case exponentMark
        /// After the exponent's sign: a digit.
        case exponentSign
        /// In the exponent digits.
        case exponent

        /// Whether the number may end here.
        var isComplete: Bool {
            switch self {
            case .zero, .integer, .fraction, .exponent: true
            case .minus, .point, .exponentMark, .exponentSign: false
            }
        }
    }

    private enum State: Sendable {
        /// Nothing but whitespace so far.
        case start
        /// After `,` in an array or `:`: a value.
        case value
        /// After `[`: a value or `]`.
        case arrayStart
        /// After `{`: a key or `}`.
        case objectStart
        /// After `,` in an object: a key.
        case key
        /// After a key: `:`.
        case colon
        /// After a value: `,`, a closer, or (at the top) the end.
        case afterValue
        /// In a string; `isKey` says what follows it.
        case string(isKey: Bool)
        /// After a backslash.
        case escape(isKey: Bool)
        /// In `\uXXXX`, `left` hex digits to go.
        case unicode(isKey: Bool, left: Int)
        /// In a multi-byte UTF-8 sequence: `left` continuation bytes to go, the next within `lower...upper`.
        case utf8(isKey: Bool, left: Int, lower: UInt8, upper: UInt8)
        case literal(Literal, matched: Int)
        case number(Number)
        /// After the whole value: only whitespace.
        case done
    }

    private var state = State.start
    /// `true` for an object, `false` for an array.
    private var stack: [Bool] = []
    /// Bytes read so far.
    private var offset = 0
    private var failure: JSONValidationError?

    public init() {}

    /// Checks the next bytes. Returns the first error, and the same error on every later call.
    public mutating func feed(_ buffer: ByteBuffer) -> JSONValidationError? {
        if let failure { return failure }
        buffer.withUnsafeReadableBytes { bytes in
            var index = 0
            while index < bytes.count {
                // Inside a string, a run of plain ASCII needs no state change: skipped in bulk
                // (most of a large body is string contents).
                if case .string = state {
                    let start = index
                    while index < bytes.count {
                        let byte = bytes[index]
                        if byte < 0x20 || byte >= 0x80 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") { break }
                        index += 1
                    }
                    offset += index - start
                    if index == bytes.count { return }
                }
                if let error = step(bytes[index]) {
                    failure = error
                    return
                }
                offset += 1
                index += 1
            }
        }
        return failure
    }

    /// The bytes ended: `nil` if they were exactly one JSON value.
    public mutating func finish() -> JSONValidationError? {
        if let failure { return failure }
        switch state {
        case .done: return nil
        case .number(let number) where stack.isEmpty && number.isComplete: return nil
        case .start: return fail("empty body: send one JSON value")
        case .string, .escape, .unicode, .utf8: return fail("unterminated string")
        default: return fail("unexpected end of input")
        }
    }

    private mutating func fail(_ reason: String) -> JSONValidationError {
        let error = JSONValidationError(offset: offset, reason: reason)
        failure = error
        return error
    }

    private static func isWhitespace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D }
    private static func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }
    private static func isHex(_ byte: UInt8) -> Bool {
        isDigit(byte) || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "f")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "F"))
    }

    /// One byte in the current state; `nil` when it fits.
    private mutating func step(_ byte: UInt8) -> JSONValidationError? {
        switch state {
        case .start, .value:
            if Self.isWhitespace(byte) { return nil }
            return startValue(byte)
        case .arrayStart:
            if Self.isWhitespace(byte) { return nil }
            if byte == UInt8(ascii: "]") { return close() }
            return startValue(byte)
        case .objectStart:
            if Self.isWhitespace(byte) { return nil }
            if byte == UInt8(ascii: "}") { return close() }
            guard byte == UInt8(ascii: "\"") else { return fail("expected a string key") }
            state = .string(isKey: true)
        case .key:
            if Self.isWhitespace(byte) { return nil }
            guard byte == UInt8(ascii: "\"") else { return fail("expected a string key") }
            state = .string(isKey: true)
        case .colon:
            if Self.isWhitespace(byte) { return nil }
            guard byte == UInt8(ascii: ":") else { return fail("expected ':' after an object key") }
            state = .value
        case .afterValue:
            return afterValue(byte)
        case .string(let isKey):
            switch byte {
            case UInt8(ascii: "\""):
                state = isKey ? .colon : .afterValue
                if !isKey { settle() }
            case UInt8(ascii: "\\"): state = .escape(isKey: isKey)
            case 0x00..<0x20: return fail("control character in a string (escape it)")
            case 0x20..<0x80: break
            default: return startUTF8(byte, isKey: isKey)
            }
        case .escape(let isKey):
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"), UInt8(ascii: "n"),
                UInt8(ascii: "r"), UInt8(ascii: "t"):
                state = .string(isKey: isKey)
            case UInt8(ascii: "u"): state = .unicode(isKey: isKey, left: 4)
            default: return fail("invalid escape")
            }
        case .unicode(let isKey, let left):
            guard Self.isHex(byte) else { return fail("invalid \\u escape") }
            state = left == 1 ? .string(isKey: isKey) : .unicode(isKey: isKey, left: left - 1)
        case .utf8(let isKey, let left, let lower, let upper):
            guard byte >= lower, byte <= upper else { return fail("invalid UTF-8") }
            state = left == 1 ? .string(isKey: isKey) : .utf8(isKey: isKey, left: left - 1, lower: 0x80, upper: 0xBF)
        case .literal(let literal, let matched):
            let bytes = literal.bytes
            guard byte == bytes.utf8Start[matched] else { return fail("invalid literal") }
            if matched + 1 == bytes.utf8CodeUnitCount {
                state = .afterValue
                settle()
            } else {
                state = .literal(literal, matched: matched + 1)
            }
        case .number(let number):
            return numberByte(byte, number)
        case .done:
            if Self.isWhitespace(byte) { return nil }
            return fail("unexpected data after the JSON value")
        }
        return nil
    }

    /// The first byte of a value.
    private mutating func startValue(_ byte: UInt8) -> JSONValidationError? {
        switch byte {
        case UInt8(ascii: "{"):
            guard stack.count < JSONValidator.maximumDepth else { return fail("nesting deeper than \(JSONValidator.maximumDepth) levels") }
            stack.append(true)
            state = .objectStart
        case UInt8(ascii: "["):
            guard stack.count < JSONValidator.maximumDepth else { return fail("nesting deeper than \(JSONValidator.maximumDepth) levels") }
            stack.append(false)
            state = .arrayStart
        case UInt8(ascii: "\""): state = .string(isKey: false)
        case UInt8(ascii: "t"): state = .literal(.true, matched: 1)
        case UInt8(ascii: "f"): state = .literal(.false, matched: 1)
        case UInt8(ascii: "n"): state = .literal(.null, matched: 1)
        case UInt8(ascii: "-"): state = .number(.minus)
        case UInt8(ascii: "0"): state = .number(.zero)
        case UInt8(ascii: "1")...UInt8(ascii: "9"): state = .number(.integer)
        default: return fail("unexpected character, expected a value")
        }
        return nil
    }

    /// A value ended: at the top level, only whitespace may follow.
    private mutating func settle() {
        if stack.isEmpty { state = .done }
    }

    /// `]` or `}` closing the innermost container (already checked to be the right one).
    private mutating func close() -> JSONValidationError? {
        stack.removeLast()
        state = .afterValue
        settle()
        return nil
    }

    private mutating func afterValue(_ byte: UInt8) -> JSONValidationError? {
        if Self.isWhitespace(byte) { return nil }
        guard let isObject = stack.last else { return fail("unexpected data after the JSON value") }
        if byte == UInt8(ascii: ",") {
            state = isObject ? .key : .value
            return nil
        }
        if (isObject && byte == UInt8(ascii: "}")) || (!isObject && byte == UInt8(ascii: "]")) { return close() }
        return fail("unexpected character, expected ',' or '\(isObject ? "}" : "]")'")
    }

    private mutating func startUTF8(_ lead: UInt8, isKey: Bool) -> JSONValidationError? {
        // No overlong forms, no surrogates, at most U+10FFFF: the second byte's range depends on the lead.
        switch lead {
        case 0xC2...0xDF: state = .utf8(isKey: isKey, left: 1, lower: 0x80, upper: 0xBF)
        case 0xE0: state = .utf8(isKey: isKey, left: 2, lower: 0xA0, upper: 0xBF)
        case 0xE1...0xEC, 0xEE...0xEF: state = .utf8(isKey: isKey, left: 2, lower: 0x80, upper: 0xBF)
        case 0xED: state = .utf8(isKey: isKey, left: 2, lower: 0x80, upper: 0x9F)
        case 0xF0: state = .utf8(isKey: isKey, left: 3, lower: 0x90, upper: 0xBF)
        case 0xF1...0xF3: state = .utf8(isKey: isKey, left: 3, lower: 0x80, upper: 0xBF)
        case 0xF4: state = .utf8(isKey: isKey, left: 3, lower: 0x80, upper: 0x8F)
        default: return fail("invalid UTF-8")
        }
        return nil
    }

    private mutating func numberByte(_ byte: UInt8, _ number: Number) -> JSONValidationError? {
        let digit = Self.isDigit(byte)
        switch number {
        case .minus:
            guard digit else { return fail("invalid number: expected a digit") }
            state = .number(byte == UInt8(ascii: "0") ? .zero : .integer)
            return nil
        case .point:
            guard digit else { return fail("invalid number: expected a digit after '.'") }
            state = .number(.fraction)
            return nil
        case .exponentMark:
            if byte == UInt8(ascii: "+") || byte == UInt8(ascii: "-") {
                state = .number(.exponentSign)
                return nil
            }
            guard digit else { return fail("invalid number: expected a digit in the exponent") }
            state = .number(.exponent)
            return nil
        case .exponentSign:
            guard digit else { return fail("invalid number: expected a digit in the exponent") }
            state = .number(.exponent)
            return nil
        case .integer where digit, .fraction where digit, .exponent where digit:
            return nil
        case .zero, .integer:
            if byte == UInt8(ascii: ".") {
                state = .number(.point)
                return nil
            }
            if byte == UInt8(ascii: "e") || byte == UInt8(ascii: "E") {
                state = .number(.exponentMark)
                return nil
            }
        case .fraction:
            if byte == UInt8(ascii: "e") || byte == UInt8(ascii: "E") {
                state = .number(.exponentMark)
                return nil
            }
        case .exponent:
            break
        }
        // The number ended before this byte, which comes after it.
        state = .afterValue
        settle()
        return step(byte)
    }
}
