import Foundation

#if canImport(SkiffAPI)
@testable import SkiffAPI
#endif

/// What `JSONValidator` must keep for any bytes (issue 16): it never reads past them, and it
/// agrees with Foundation's `JSONSerialization` (`.fragmentsAllowed`) on whether they are one
/// JSON value, except where the two differ on purpose:
/// - Skiff reads UTF-8 only (RFC 8259 §8.1) and refuses a byte order mark; Foundation also reads
///   UTF-16 and UTF-32 (it guesses them from NUL bytes among the first four) and skips a BOM.
/// - Foundation accepts a trailing comma in an array or object (`[1,]`); the grammar does not.
/// - Skiff stores bodies byte for byte and never reads a number, so any number the grammar allows
///   is valid; Foundation refuses those a `Double` cannot hold (`1e400`).
/// - `\uD800` (a surrogate escape without its pair) is allowed by RFC 8259's grammar, so Skiff
///   accepts it; Foundation refuses it. (Reported in issue 16: a consumer that parses with
///   Foundation cannot read such a message.)
/// Both refuse nesting deeper than 512 levels and both accept repeated object keys.
public enum JSONValidatorOracle {
    public static func check(_ bytes: [UInt8]) throws(OracleFailure) {
        let error = try withExactAllocation(bytes) { JSONValidator.validate(bytes: $0) }
        if let error, !(0...bytes.count).contains(error.offset) {
            throw OracleFailure("error offset \(error.offset) outside 0...\(bytes.count): \(OracleFailure.literal(bytes))")
        }
        let isValid = error == nil
        if readsAsAnotherEncoding(bytes) {
            if isValid { throw OracleFailure("a BOM or a NUL among the first bytes, accepted: \(OracleFailure.literal(bytes))") }
            return
        }
        let foundation = foundationAccepts(bytes)
        if isValid == foundation { return }
        if isValid {
            // Numbers and surrogate escapes that Foundation cannot represent: gone, it must agree.
            guard foundationAccepts(JSONTokens.normalized(bytes)) else {
                throw OracleFailure("valid for Skiff, invalid for Foundation: \(OracleFailure.literal(bytes))")
            }
        } else {
            // Trailing commas, which Foundation tolerates: gone, Skiff must accept.
            let withoutTrailingCommas = JSONTokens.withoutTrailingCommas(bytes)
            guard withoutTrailingCommas != bytes, withoutTrailingCommas.withUnsafeBytes({ JSONValidator.validate(bytes: $0) }) == nil else {
                throw OracleFailure("invalid for Skiff (\(error!)), valid for Foundation: \(OracleFailure.literal(bytes))")
            }
        }
    }

    private static func foundationAccepts(_ bytes: [UInt8]) -> Bool {
        (try? JSONSerialization.jsonObject(with: Data(bytes), options: .fragmentsAllowed)) != nil
    }

    /// A byte order mark, or a NUL among the first four bytes (Foundation's guess at UTF-16/32).
    private static func readsAsAnotherEncoding(_ bytes: [UInt8]) -> Bool {
        bytes.starts(with: [0xEF, 0xBB, 0xBF]) || bytes.starts(with: [0xFE, 0xFF]) || bytes.starts(with: [0xFF, 0xFE]) || bytes.prefix(4).contains(0)
    }
}

/// Token-level rewrites of JSON text, for the oracle's intentional differences.
enum JSONTokens {
    /// `bytes` (valid JSON) with every number replaced by `0` and every surrogate escape by `\u0041`.
    static func normalized(_ bytes: [UInt8]) -> [UInt8] {
        var output: [UInt8] = []
        var index = 0
        var inString = false
        while index < bytes.count {
            let byte = bytes[index]
            if inString {
                if byte == UInt8(ascii: "\\"), index + 1 < bytes.count {
                    if bytes[index + 1] == UInt8(ascii: "u"), index + 5 < bytes.count, isSurrogate(bytes[(index + 2)...(index + 5)]) {
                        output += Array("\\u0041".utf8)
                    } else {
                        output += bytes[index...min(index + 1, bytes.count - 1)]
                        index += 2
                        continue
                    }
                    index += 6
                    continue
                }
                if byte == UInt8(ascii: "\"") { inString = false }
                output.append(byte)
                index += 1
            } else if byte == UInt8(ascii: "-") || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) {
                output.append(UInt8(ascii: "0"))
                index += 1
                while index < bytes.count, "0123456789.eE+-".utf8.contains(bytes[index]) { index += 1 }
            } else {
                if byte == UInt8(ascii: "\"") { inString = true }
                output.append(byte)
                index += 1
            }
        }
        return output
    }

    /// `bytes` without any comma (outside strings) that only whitespace separates from `]` or `}`.
    static func withoutTrailingCommas(_ bytes: [UInt8]) -> [UInt8] {
        var output: [UInt8] = []
        var inString = false
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if inString {
                output.append(byte)
                if byte == UInt8(ascii: "\\"), index + 1 < bytes.count {
                    output.append(bytes[index + 1])
                    index += 2
                    continue
                }
                if byte == UInt8(ascii: "\"") { inString = false }
            } else if byte == UInt8(ascii: ",") {
                var next = index + 1
                while next < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[next]) { next += 1 }
                if next >= bytes.count || (bytes[next] != UInt8(ascii: "]") && bytes[next] != UInt8(ascii: "}")) { output.append(byte) }
            } else {
                if byte == UInt8(ascii: "\"") { inString = true }
                output.append(byte)
            }
            index += 1
        }
        return output
    }

    /// Four hex digits from D800 to DFFF.
    private static func isSurrogate(_ hex: ArraySlice<UInt8>) -> Bool {
        guard let value = UInt16(String(decoding: hex, as: UTF8.self), radix: 16) else { return false }
        return (0xD800...0xDFFF).contains(value)
    }
}
