/// The bytes of each `"body"` member in a batch receive's answer (`[{"id":…,"body":<JSON>},…]`),
/// exactly as the server wrote them: re-serialising a body would change it (key order, `2.50`,
/// `1e2`), and a body is handed out as it was sent.
enum BatchBodies {
    /// One range per array element, `nil` for an element without a body. `nil` for bytes that are
    /// not a JSON array of objects.
    static func ranges(in bytes: [UInt8]) -> [Range<Int>?]? {
        var scanner = Scanner(bytes: bytes)
        return ranges(&scanner)
    }

    /// The same for the array that is member `member` of a JSON object (a peek's `messages`).
    static func ranges(in bytes: [UInt8], member: String) -> [Range<Int>?]? {
        var scanner = Scanner(bytes: bytes)
        scanner.skipSpace()
        guard scanner.take(UInt8(ascii: "{")) else { return nil }
        while true {
            scanner.skipSpace()
            guard let key = scanner.string() else { return nil }
            scanner.skipSpace()
            guard scanner.take(UInt8(ascii: ":")) else { return nil }
            if bytes[key].elementsEqual(member.utf8) { return ranges(&scanner) }
            scanner.skipSpace()
            guard scanner.skipValue() else { return nil }
            scanner.skipSpace()
            guard scanner.take(UInt8(ascii: ",")) else { return nil }
        }
    }

    private static func ranges(_ scanner: inout Scanner) -> [Range<Int>?]? {
        let bytes = scanner.bytes
        scanner.skipSpace()
        guard scanner.take(UInt8(ascii: "[")) else { return nil }
        var ranges: [Range<Int>?] = []
        scanner.skipSpace()
        if scanner.take(UInt8(ascii: "]")) { return ranges }
        while true {
            scanner.skipSpace()
            guard scanner.take(UInt8(ascii: "{")) else { return nil }
            var body: Range<Int>?
            scanner.skipSpace()
            if !scanner.take(UInt8(ascii: "}")) {
                while true {
                    scanner.skipSpace()
                    guard let key = scanner.string() else { return nil }
                    scanner.skipSpace()
                    guard scanner.take(UInt8(ascii: ":")) else { return nil }
                    scanner.skipSpace()
                    let start = scanner.position
                    guard scanner.skipValue() else { return nil }
                    if bytes[key].elementsEqual("body".utf8) { body = start..<scanner.position }
                    scanner.skipSpace()
                    if scanner.take(UInt8(ascii: ",")) { continue }
                    guard scanner.take(UInt8(ascii: "}")) else { return nil }
                    break
                }
            }
            ranges.append(body)
            scanner.skipSpace()
            if scanner.take(UInt8(ascii: ",")) { continue }
            guard scanner.take(UInt8(ascii: "]")) else { return nil }
            return ranges
        }
    }

    private struct Scanner {
        let bytes: [UInt8]
        var position = 0

        mutating func skipSpace() {
            while position < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[position]) { position += 1 }
        }

        mutating func take(_ byte: UInt8) -> Bool {
            guard position < bytes.count, bytes[position] == byte else { return false }
            position += 1
            return true
        }

        /// A string's contents (between the quotes, escapes left as they are).
        mutating func string() -> Range<Int>? {
            guard take(UInt8(ascii: "\"")) else { return nil }
            let start = position
            while position < bytes.count {
                switch bytes[position] {
                case UInt8(ascii: "\\"): position += 2
                case UInt8(ascii: "\""):
                    defer { position += 1 }
                    return start..<position
                default: position += 1
                }
            }
            return nil
        }

        /// Skips one JSON value (already known to be valid JSON: the server validated it).
        mutating func skipValue() -> Bool {
            guard position < bytes.count else { return false }
            switch bytes[position] {
            case UInt8(ascii: "\""): return string() != nil
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                var depth = 0
                while position < bytes.count {
                    switch bytes[position] {
                    case UInt8(ascii: "\""):
                        guard string() != nil else { return false }
                        continue
                    case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
                    case UInt8(ascii: "}"), UInt8(ascii: "]"):
                        depth -= 1
                        if depth == 0 {
                            position += 1
                            return true
                        }
                    default: break
                    }
                    position += 1
                }
                return false
            default:
                // A number, true, false or null: up to the next delimiter.
                let start = position
                while position < bytes.count, ![UInt8(ascii: ","), UInt8(ascii: "}"), UInt8(ascii: "]"), 0x20, 0x09, 0x0A, 0x0D].contains(bytes[position]) {
                    position += 1
                }
                return position > start
            }
        }
    }
}
