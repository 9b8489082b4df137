public import NIOCore

/// Why a body is not one valid JSON value, with the byte offset where that became clear.
public struct JSONValidationError: Error, Equatable, Sendable, CustomStringConvertible {
    public let offset: Int
    public let reason: String
    public var description: String { "\(reason) at byte \(offset)" }
}

/// Checks that bytes are exactly one JSON value (RFC 8259), without building any objects.
///
/// Strings must be well-formed UTF-8 with valid escapes; numbers follow the JSON grammar;
/// whitespace may surround the value. Nesting is limited so hostile input cannot exhaust memory.
/// Iterative, one pass, no allocation beyond a small nesting stack.
public enum JSONValidator {
    public static let maximumDepth = 512

    public static func validate(_ buffer: ByteBuffer) -> JSONValidationError? {
        buffer.withUnsafeReadableBytes { validate(bytes: $0) }
    }

    public static func validate(bytes: UnsafeRawBufferPointer) -> JSONValidationError? {
        var parser = Parser(bytes: bytes)
        do {
            try parser.parseDocument()
            return nil
        } catch {
            return error
        }
    }

    /// One member of a top-level object: where its key (between the quotes, escapes as sent) and
    /// its value lie in the buffer's readable bytes.
    public struct Member: Equatable, Sendable {
        public var key: Range<Int>
        public var value: Range<Int>
    }

    /// Validates `buffer` as ``validate(_:)`` does and, when it is an object, returns its
    /// members in order (a stream frame's fields, with its body's bytes left as sent).
    /// - Returns: `nil` for valid JSON that is not an object.
    public static func objectMembers(_ buffer: ByteBuffer) throws(JSONValidationError) -> [Member]? {
        let result = buffer.withUnsafeReadableBytes { bytes -> Result<[Member]?, JSONValidationError> in
            var parser = Parser(bytes: bytes)
            parser.members = []
            do throws(JSONValidationError) {
                try parser.parseDocument()
            } catch {
                return .failure(error)
            }
            var start = 0
            while start < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[start]) { start += 1 }
            return .success(bytes[start] == UInt8(ascii: "{") ? parser.members : nil)
        }
        return try result.get()
    }

    private struct Parser {
        let bytes: UnsafeRawBufferPointer
        var index = 0
        /// `true` for an object, `false` for an array.
        var stack: [Bool] = []
        /// The top-level object's members, when asked for (`nil`: not recorded).
        var members: [Member]?
        private var memberKey: Range<Int> = 0..<0
        private var memberValueStart: Int?

        init(bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

        func fail(_ reason: String) -> JSONValidationError { JSONValidationError(offset: index, reason: reason) }

        var current: UInt8? { index < bytes.count ? bytes[index] : nil }

        mutating func skipWhitespace() {
            while index < bytes.count {
                switch bytes[index] {
                case 0x20, 0x09, 0x0A, 0x0D: index += 1
                default: return
                }
            }
        }

        mutating func parseDocument() throws(JSONValidationError) {
            skipWhitespace()
            if index == bytes.count { throw fail("empty body: send one JSON value") }
            valueLoop: while true {
                // Expect a value.
                skipWhitespace()
                guard let byte = current else { throw fail("unexpected end of input, expected a value") }
                if members != nil, stack.count == 1 { memberValueStart = index }
                switch byte {
                case UInt8(ascii: "{"):
                    index += 1
                    try push(object: true)
                    skipWhitespace()
                    if current == UInt8(ascii: "}") {
                        index += 1
                        stack.removeLast()
                        valueEnded()
                    } else {
                        try parseKey()
                        continue valueLoop
                    }
                case UInt8(ascii: "["):
                    index += 1
                    try push(object: false)
                    skipWhitespace()
                    if current == UInt8(ascii: "]") {
                        index += 1
                        stack.removeLast()
                        valueEnded()
                    } else {
                        continue valueLoop
                    }
                case UInt8(ascii: "\""):
                    try parseString()
                case UInt8(ascii: "t"): try parseLiteral("true")
                case UInt8(ascii: "f"): try parseLiteral("false")
                case UInt8(ascii: "n"): try parseLiteral("null")
                case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): try parseNumber()
                default: throw fail("unexpected character '\(Self.printable(byte))', expected a value")
                }
                if byte != UInt8(ascii: "{"), byte != UInt8(ascii: "[") { valueEnded() }
                // After a value: close containers or continue with the next element.
                while true {
                    skipWhitespace()
                    guard let isObject = stack.last else {
                        if index != bytes.count { throw fail("unexpected data after the JSON value") }
                        return
                    }
                    guard let byte = current else { throw fail("unexpected end of input inside \(isObject ? "an object" : "an array")") }
                    if byte == UInt8(ascii: ",") {
                        index += 1
                        if isObject { try parseKey() }
                        continue valueLoop
                    }
                    if (isObject && byte == UInt8(ascii: "}")) || (!isObject && byte == UInt8(ascii: "]")) {
                        index += 1
                        stack.removeLast()
                        valueEnded()
                        continue
                    }
                    throw fail("unexpected character '\(Self.printable(byte))', expected ',' or '\(isObject ? "}" : "]")'")
                }
            }
        }

        mutating func push(object: Bool) throws(JSONValidationError) {
            if stack.count >= JSONValidator.maximumDepth { throw fail("nesting deeper than \(JSONValidator.maximumDepth) levels") }
            stack.append(object)
        }

        /// A value just ended at `index`: a member of the top-level object when recording.
        mutating func valueEnded() {
            guard members != nil, stack.count == 1, let start = memberValueStart else { return }
            members!.append(Member(key: memberKey, value: start..<index))
            memberValueStart = nil
        }

        /// An object key and its colon.
        mutating func parseKey() throws(JSONValidationError) {
            skipWhitespace()
            guard current == UInt8(ascii: "\"") else { throw fail("expected a string key") }
            let keyStart = index + 1
            try parseString()
            if members != nil, stack.count == 1 { memberKey = keyStart..<(index - 1) }
            skipWhitespace()
            guard current == UInt8(ascii: ":") else { throw fail("expected ':' after an object key") }
            index += 1
        }

        mutating func parseLiteral(_ literal: StaticString) throws(JSONValidationError) {
            let count = literal.utf8CodeUnitCount
            guard index + count <= bytes.count else { throw fail("invalid literal") }
            for offset in 0..<count where bytes[index + offset] != literal.utf8Start[offset] {
                throw fail("invalid literal")
            }
            index += count
        }

        mutating func parseNumber() throws(JSONValidationError) {
            if current == UInt8(ascii: "-") { index += 1 }
            guard let first = current, Self.isDigit(first) else { throw fail("invalid number: expected a digit") }
            index += 1
            if first != UInt8(ascii: "0") {
                while let byte = current, Self.isDigit(byte) { index += 1 }
            }
            if current == UInt8(ascii: ".") {
                index += 1
                guard let byte = current, Self.isDigit(byte) else { throw fail("invalid number: expected a digit after '.'") }
                while let byte = current, Self.isDigit(byte) { index += 1 }
            }
            if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
                index += 1
                if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { index += 1 }
                guard let byte = current, Self.isDigit(byte) else { throw fail("invalid number: expected a digit in the exponent") }
                while let byte = current, Self.isDigit(byte) { index += 1 }
            }
        }

        mutating func parseString() throws(JSONValidationError) {
            index += 1  // opening quote
            while index < bytes.count {
                let byte = bytes[index]
                switch byte {
                case UInt8(ascii: "\""):
                    index += 1
                    return
                case UInt8(ascii: "\\"):
                    index += 1
                    guard let escaped = current else { throw fail("unterminated string") }
                    switch escaped {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                        UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                        index += 1
                    case UInt8(ascii: "u"):
                        index += 1
                        for _ in 0..<4 {
                            guard let hex = current, Self.isHex(hex) else { throw fail("invalid \\u escape") }
                            index += 1
                        }
                    default:
                        throw fail("invalid escape '\\\(Self.printable(escaped))'")
                    }
                case 0x00..<0x20:
                    throw fail("control character in a string (escape it)")
                case 0x20..<0x80:
                    index += 1
                default:
                    try skipUTF8Sequence(lead: byte)
                }
            }
            throw fail("unterminated string")
        }

        /// Validates one multi-byte UTF-8 sequence: no overlong forms, no surrogates, at most U+10FFFF.
        mutating func skipUTF8Sequence(lead: UInt8) throws(JSONValidationError) {
            let length: Int
            var lowerBound: UInt8 = 0x80
            var upperBound: UInt8 = 0xBF
            switch lead {
            case 0xC2...0xDF: length = 2
            case 0xE0: length = 3; lowerBound = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: length = 3
            case 0xED: length = 3; upperBound = 0x9F
            case 0xF0: length = 4; lowerBound = 0x90
            case 0xF1...0xF3: length = 4
            case 0xF4: length = 4; upperBound = 0x8F
            default: throw fail("invalid UTF-8")
            }
            guard index + length <= bytes.count else { throw fail("invalid UTF-8 (truncated sequence)") }
            let second = bytes[index + 1]
            guard second >= lowerBound, second <= upperBound else { throw fail("invalid UTF-8") }
            for offset in 2..<max(2, length) where bytes[index + offset] & 0xC0 != 0x80 {
                throw fail("invalid UTF-8")
            }
            index += length
        }

        static func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

        static func isHex(_ byte: UInt8) -> Bool {
            isDigit(byte) || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "f")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "F"))
        }

        static func printable(_ byte: UInt8) -> String {
            byte >= 0x20 && byte < 0x7F ? String(UnicodeScalar(byte)) : "\\u{\(String(byte, radix: 16))}"
        }
    }
}
