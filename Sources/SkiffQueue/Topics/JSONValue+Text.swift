import SkiffSupport

/// JSON text of a value, canonical: object keys sorted, integral numbers without a fraction.
/// A subscription's filter policy is stored and shown in this form.
extension JSONValue {
    public var jsonText: String {
        var text = ""
        write(to: &text)
        return text
    }

    private func write(to text: inout String) {
        switch self {
        case .null: text += "null"
        case .bool(let value): text += value ? "true" : "false"
        case .number(let value):
            if value == value.rounded(), abs(value) < 1e15 {
                text += String(Int64(value))
            } else {
                text += "\(value)"
            }
        case .string(let value): text += JSONStringLiteral.quoted(value)
        case .array(let values):
            text += "["
            for (index, value) in values.enumerated() {
                if index > 0 { text += "," }
                value.write(to: &text)
            }
            text += "]"
        case .object(let members):
            text += "{"
            for (index, key) in members.keys.sorted().enumerated() {
                if index > 0 { text += "," }
                text += JSONStringLiteral.quoted(key)
                text += ":"
                members[key]!.write(to: &text)
            }
            text += "}"
        }
    }
}
