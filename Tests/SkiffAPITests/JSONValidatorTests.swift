import NIOCore
import Testing

@testable import SkiffAPI

@Suite("JSON validator")
struct JSONValidatorTests {
    @Test(arguments: [
        "{}", "[]", "0", "-0", "1.5e-7", "-12.0E+3", "\"\"", "true", "false", "null", " \n\t{\"a\" : [1, {\"b\": null}] } \r\n",
        #""\u00e9\n\"\\\/\b\f\r\t""#, "\"é漢字😀\"", "[[[[[]]]]]", #"{"a":{"b":{"c":[true,false,null,"x",1]}}}"#,
    ])
    func acceptsValidJSON(_ text: String) {
        #expect(JSONValidator.validate(ByteBuffer(string: text)) == nil)
    }

    @Test(arguments: [
        "", "   ", "{", "}", "[1,]", "[,1]", "{\"a\"}", "{\"a\":}", "{a:1}", "{\"a\":1,}", "01", "1.", ".5", "-", "1e", "+1",
        "NaN", "Infinity", "tru", "nul", "\"abc", "\"\\x\"", "\"\\u12G4\"", "\"tab\there\"", "1 2", "{}{}", "[1] x", "'single'",
        "[1 2]", "{\"a\" 1}", "\u{0}",
    ])
    func rejectsInvalidJSON(_ text: String) {
        #expect(JSONValidator.validate(ByteBuffer(string: text)) != nil)
    }

    @Test func rejectsMalformedUTF8() {
        for bytes: [UInt8] in [
            [0x22, 0xC3, 0x22], [0x22, 0xC0, 0xAF, 0x22], [0x22, 0xED, 0xA0, 0x80, 0x22], [0x22, 0xF5, 0x80, 0x80, 0x80, 0x22], [0x22, 0xFF, 0x22],
        ] {
            #expect(JSONValidator.validate(ByteBuffer(bytes: bytes)) != nil)
        }
    }

    @Test func limitsNestingWithoutRecursion() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        let error = JSONValidator.validate(ByteBuffer(string: deep))
        #expect(error?.reason.contains("nesting") == true)
        let allowed = String(repeating: "[", count: JSONValidator.maximumDepth) + String(repeating: "]", count: JSONValidator.maximumDepth)
        #expect(JSONValidator.validate(ByteBuffer(string: allowed)) == nil)
    }

    @Test func reportsWhereItFailed() {
        #expect(JSONValidator.validate(ByteBuffer(string: #"{"a": tru}"#))?.offset == 6)
    }
}
