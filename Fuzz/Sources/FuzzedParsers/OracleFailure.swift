/// An invariant of a parser that one input broke, said so that a person can see why.
public struct OracleFailure: Error, CustomStringConvertible {
    public let description: String

    init(_ description: String) { self.description = description }

    /// `bytes` as a Swift string literal would write them, for failure messages.
    static func literal(_ bytes: some Collection<UInt8>) -> String {
        var text = "\""
        for byte in bytes.prefix(600) {
            switch byte {
            case UInt8(ascii: "\r"): text += "\\r"
            case UInt8(ascii: "\n"): text += "\\n"
            case UInt8(ascii: "\t"): text += "\\t"
            case UInt8(ascii: "\""): text += "\\\""
            case UInt8(ascii: "\\"): text += "\\\\"
            case 0x20..<0x7F: text.unicodeScalars.append(UnicodeScalar(byte))
            default: text += "\\u{\(String(byte, radix: 16))}"
            }
        }
        return text + (bytes.count > 600 ? "...\" (\(bytes.count) bytes)" : "\"")
    }
}

/// Hands `body` a copy of `bytes` in an allocation of exactly their size, so that a read past
/// the end is caught: by AddressSanitizer in the fuzz build, by the bounds checks of
/// `UnsafeRawBufferPointer` in a debug build.
func withExactAllocation<Result>(
    _ bytes: some Collection<UInt8>,
    _ body: (UnsafeRawBufferPointer) throws(OracleFailure) -> Result
) throws(OracleFailure) -> Result {
    let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 1)
    defer { storage.deallocate() }
    _ = storage.initializeMemory(as: UInt8.self, from: bytes)
    return try body(UnsafeRawBufferPointer(storage))
}
