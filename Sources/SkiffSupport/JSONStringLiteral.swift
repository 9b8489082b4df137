/// JSON string literals, for the layers that write JSON text by hand (the API's answers, the
/// queue layer's stored filter policies).
public enum JSONStringLiteral {
    /// `value` as a JSON string literal, quotes included.
    public static func quoted(_ value: String) -> String {
        // The common case, nothing to escape: one allocation, no per-character appends.
        if value.utf8.allSatisfy(isPlain) { return "\"" + value + "\"" }
        var out = "\""
        out.reserveCapacity(value.utf8.count + 2)
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case let scalar where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    /// A byte that stands for itself inside a JSON string.
    public static func isPlain(_ byte: UInt8) -> Bool {
        byte >= 0x20 && byte != UInt8(ascii: "\"") && byte != UInt8(ascii: "\\")
    }
}
