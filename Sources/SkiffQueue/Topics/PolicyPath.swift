/// A location inside a filter policy, as built while compiling it; rendered only when an error names it.
struct PolicyPath: Sendable, CustomStringConvertible {
    enum Component: Sendable {
        case key(String)
        case index(Int)
    }

    /// Keys longer than this many characters are cut short when rendered.
    static let maxRenderedKeyCharacters = 64

    static let root = PolicyPath(components: [])

    private(set) var components: [Component]

    func key(_ key: String) -> PolicyPath {
        PolicyPath(components: components + [.key(key)])
    }

    func index(_ index: Int) -> PolicyPath {
        PolicyPath(components: components + [.index(index)])
    }

    var description: String {
        var text = "$"
        for component in components {
            switch component {
            case .index(let index):
                text += "[\(index)]"
            case .key(let key):
                if Self.isPlainIdentifier(key) {
                    text += "." + key
                } else {
                    text += "[" + Self.quoted(key) + "]"
                }
            }
        }
        return text
    }

    /// ASCII letters, digits, `_` and `$`, not starting with a digit, and not too long to show whole.
    static func isPlainIdentifier(_ key: String) -> Bool {
        guard let first = key.unicodeScalars.first, !(("0"..."9").contains(first)) else { return false }
        guard key.unicodeScalars.count <= maxRenderedKeyCharacters else { return false }
        return key.unicodeScalars.allSatisfy { scalar in
            ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar)
                || scalar == "_" || scalar == "$"
        }
    }

    /// A JSON string literal of `key`, cut short to `maxRenderedKeyCharacters` characters.
    static func quoted(_ key: String) -> String {
        var text = "\""
        for (offset, character) in key.enumerated() {
            if offset == maxRenderedKeyCharacters {
                text += "…"
                break
            }
            for scalar in character.unicodeScalars {
                switch scalar {
                case "\"": text += "\\\""
                case "\\": text += "\\\\"
                case "\n": text += "\\n"
                case "\t": text += "\\t"
                case "\r": text += "\\r"
                default:
                    if scalar.value < 0x20 || scalar.value == 0x7F {
                        let hex = String(scalar.value, radix: 16)
                        text += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                    } else {
                        text.unicodeScalars.append(scalar)
                    }
                }
            }
        }
        return text + "\""
    }
}
