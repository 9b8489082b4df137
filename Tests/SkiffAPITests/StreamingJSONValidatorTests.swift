import NIOCore
import PropertyBased
import Testing

@testable import SkiffAPI

/// The streaming validator accepts exactly what the whole-body validator accepts, however the
/// bytes are split: bodies streamed to the payload store meet the same rules as the others.
@Suite("Streaming JSON validator")
struct StreamingJSONValidatorTests {
    /// Streams `bytes` in chunks cut at `cuts` (positions, taken modulo the length).
    private static func streamed(_ bytes: [UInt8], cuts: [Int]) -> JSONValidationError? {
        var validator = StreamingJSONValidator()
        let positions = Set(cuts.map { bytes.isEmpty ? 0 : $0 % (bytes.count + 1) }).sorted()
        var start = 0
        for position in positions + [bytes.count] where position >= start {
            if let error = validator.feed(ByteBuffer(bytes: bytes[start..<position])) { return error }
            start = position
        }
        return validator.finish()
    }

    private static func agree(_ bytes: [UInt8], cuts: [Int]) {
        let whole = JSONValidator.validate(ByteBuffer(bytes: bytes))
        let streamed = streamed(bytes, cuts: cuts)
        #expect(
            (whole == nil) == (streamed == nil),
            "\(String(decoding: bytes, as: UTF8.self)) cut at \(cuts): whole \(String(describing: whole)), streamed \(String(describing: streamed))")
    }

    /// Fragments of JSON, valid and not: their concatenations are mostly invalid, in every way.
    private static let fragments: [[UInt8]] =
        [
            "{", "}", "[", "]", ",", ":", " ", "\n", #""a""#, #""k":"#, "\"", #"\""#, #"\u00e9"#, #"\x"#, #"\u12G"#, "1", "0", "-", ".",
            "e", "E", "+", "12.5e-3", "true", "tru", "false", "null", "nul", "x", "\t",
        ].map { Array($0.utf8) } + [
            [0xC3, 0xA9], [0xC3], [0xED, 0xA0, 0x80], [0xF0, 0x9F, 0x98, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xC0, 0xAF], [0x01], [0xFF],
        ]

    @Test func fragmentSoupIsJudgedTheSameWhateverTheCuts() async {
        let soup = Gen.int(in: 0...(Self.fragments.count - 1)).array(of: 0...14)
        let cuts = Gen.int(in: 0...200).array(of: 0...6)
        await propertyCheck(count: 5000, input: soup, cuts) { pieces, cuts in
            Self.agree(pieces.flatMap { Self.fragments[$0] }, cuts: cuts)
        }
    }

    /// A valid document from `choices` (each picks the next piece), then perhaps one byte changed.
    private static func document(_ choices: [Int]) -> [UInt8] {
        var choices = choices[...]
        func next(_ bound: Int) -> Int { (choices.popFirst() ?? 0) % bound }
        func value(_ depth: Int) -> String {
            switch next(depth > 3 ? 5 : 7) {
            case 0: return ["0", "-1", "12.5", "3e7", "-0.0E-2", "1E+2"][next(6)]
            case 1: return ["true", "false", "null"][next(3)]
            case 2: return ["\"\"", #""a\"b""#, #""\u00E9\n""#, "\"é😀\""][next(4)]
            case 3, 4: return ["\"s\"", "7"][next(2)]
            case 5: return "[" + (0..<next(4)).map { _ in value(depth + 1) }.joined(separator: [",", " , "][next(2)]) + "]"
            default: return "{" + (0..<next(4)).map { index in "\"k\(index)\":" + value(depth + 1) }.joined(separator: ",") + "}"
            }
        }
        return Array(([" ", ""][next(2)] + value(0) + ["", "\n"][next(2)]).utf8)
    }

    @Test func validDocumentsAndTheirOneByteMutationsAreJudgedTheSame() async {
        let choices = Gen.int(in: 0...1000).array(of: 1...60)
        let mutation = Gen.int(in: 0...3)
        let where_ = Gen.int(in: 0...10_000)
        let byte = Gen.int(in: 0...255)
        let cuts = Gen.int(in: 0...200).array(of: 0...6)
        await propertyCheck(count: 5000, input: choices, mutation, where_, byte, cuts) { choices, mutation, position, byte, cuts in
            var bytes = Self.document(choices)
            #expect(JSONValidator.validate(ByteBuffer(bytes: bytes)) == nil)
            let at = position % bytes.count
            switch mutation {
            case 1: bytes[at] = UInt8(byte)
            case 2: bytes.remove(at: at)
            case 3: bytes.insert(UInt8(byte), at: at)
            default: break
            }
            Self.agree(bytes, cuts: cuts)
        }
    }

    @Test func nestingIsLimitedAsInTheWholeValidator() {
        let depth = JSONValidator.maximumDepth
        let allowed = Array((String(repeating: "[", count: depth) + String(repeating: "]", count: depth)).utf8)
        #expect(Self.streamed(allowed, cuts: [7, 300]) == nil)
        let deeper = Array((String(repeating: "[", count: depth + 1) + String(repeating: "]", count: depth + 1)).utf8)
        #expect(Self.streamed(deeper, cuts: [1])?.reason.contains("nesting") == true)
    }

    @Test func anErrorStaysOnceFound() {
        var validator = StreamingJSONValidator()
        #expect(validator.feed(ByteBuffer(string: "[1,]")) != nil)
        #expect(validator.feed(ByteBuffer(string: "2]")) != nil)
        #expect(validator.finish() != nil)
        var empty = StreamingJSONValidator()
        #expect(empty.finish()?.reason.contains("empty") == true)
    }
}
