import Foundation
import NIOCore
import PropertyBased
import Testing

@testable import SkiffAPI

/// The invariants the fuzz targets check (Fuzz/Sources/FuzzedParsers, linked here as
/// FuzzOracles), run as ordinary tests: over every input of the fuzz corpus in Fuzz/corpus, and
/// over hostile byte streams that generators build from the pieces request smuggling is made of.
/// `scripts/fuzz.sh` runs the same invariants under libFuzzer for a bounded time.
@Suite("Parser invariants: fuzz corpus and hostile byte streams", .timeLimit(.minutes(3)))
struct ParserOracleTests {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Fuzz/corpus").standardized

    static func corpusInputs(_ target: String) throws -> [(name: String, bytes: [UInt8])] {
        let folder = corpus.appendingPathComponent(target)
        return try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted().map { name in
            (name, [UInt8](try Data(contentsOf: folder.appendingPathComponent(name))))
        }
    }

    @Test(arguments: ["request-head", "chunked-body", "json"])
    func everyCorpusInputKeepsTheInvariants(target: String) throws {
        let inputs = try Self.corpusInputs(target)
        #expect(inputs.count >= 10, "the corpus of \(target) is in Fuzz/corpus/\(target)")
        let oracle: ([UInt8]) throws(OracleFailure) -> Void =
            switch target {
            case "request-head": RequestHeadOracle.check
            case "chunked-body": ChunkedBodyOracle.check
            default: JSONValidatorOracle.check
            }
        for (name, bytes) in inputs {
            do {
                try oracle(bytes)
            } catch {
                Issue.record("Fuzz/corpus/\(target)/\(name): \(error)")
            }
        }
    }

    // MARK: Hostile byte streams

    /// Request heads put together from the pieces smuggling attempts use: methods, targets and
    /// versions, CRLF, bare LF, bare CR and folded lines, header names in any case, lengths that
    /// conflict, codings that hide `chunked`, then a body and another request.
    @Test func generatedHeadsKeepTheInvariants() async {
        let lineEnd = mostly(["\r\n"], or: ["\n", "\r", "\r\n ", "\r\n\t", " \r\n", "\r\r\n"])
        let requestLine = zip(
            mostly(["GET", "POST", "PUT", "DELETE"], or: ["get", "CONNECT", "HEAD", "FOO", "P OST", "POST\t", ""]),
            mostly(
                ["/api/q", "/api/q?timeout=0", "/api/q/batch", "/health"],
                or: ["*", "http://skiff/api/q", "/api/q#x", "/a%00b", "api/q", "/api/q /x", "/\u{7F}"]
            ),
            mostly(["HTTP/1.1"], or: ["HTTP/1.0", "http/1.1", "HTTP/1.1 ", "HTTP/2", "HTTP/1.10", " HTTP/1.1"]),
            lineEnd
        ).map { "\($0) \($1) \($2)\($3)" }
        let header = zip(
            mostly(
                [
                    "Content-Length", "content-length", "Transfer-Encoding", "transfer-encoding", "Connection", "Host", "X-Request-Id",
                    "Authorization", "Upgrade", "Expect", "Idempotency-Key", "traceparent", "Trailer", "Te",
                ],
                or: ["CONTENT-LENGTH", "Content-Length ", " Content-Length", "Content\u{0}Length", "", "X Y"]
            ),
            mostly([": ", ":", ":\t", ":  "], or: [" : ", ":\r\n ", "", "::"]),
            mostly(
                [
                    "0", "5", "12", "005", "chunked", "Chunked", " chunked ", "close", "keep-alive", "Upgrade", "websocket", "100-continue",
                    "Bearer k", "abc-1", "",
                ],
                or: [
                    "+5", "-1", "5, 5", "5,5", "1234567890123456", "0x5", "chunked, identity", "identity, chunked", "gzip", "xchunked", "chunked;q=1",
                    "a\u{1}b", "caf\u{E9}", "a\rb",
                ]
            ),
            lineEnd
        ).map { "\($0)\($1)\($2)\($3)" }
        let tail = oneOf(["", "hello", "0\r\n\r\n", "5\r\nhello\r\n0\r\n\r\n", "{}", "GET /api/q HTTP/1.1\r\n\r\n"])
        let heads = zip(requestLine, header.array(of: 0...5), mostly(["\r\n"], or: ["\n", "\r", ""]), tail)
            .map { Array(($0 + $1.joined() + $2 + $3).utf8) }
        await propertyCheck(count: 1500, input: heads) { bytes in
            do { try RequestHeadOracle.check(bytes) } catch { Issue.record("\(error)") }
        }
    }

    /// Chunked bodies from well-formed and broken chunks: sizes with leading zeros, too many
    /// digits, extensions, whitespace, wrong line ends, data a byte short or long, trailers.
    @Test func generatedChunkedBodiesKeepTheInvariants() async {
        let chunk = zip(
            Gen.int(in: 0...40),
            mostly(["", "0", "00000"], or: ["00000000", ";x=1", " ", "\t", "0x", "-"]),
            mostly(["\r\n"], or: ["\n", "\r", "\r\r\n"]),
            Generator { random in Int.random(in: 0..<15, using: &random) == 0 ? [-1, 1].randomElement(using: &random)! : 0 },
            mostly(["\r\n"], or: ["\n", "", "x\r\n"]),
            Gen.bool
        ).map { size, decoration, sizeLineEnd, skew, dataEnd, uppercase -> String in
            let hex = String(size, radix: 16, uppercase: uppercase)
            let text = decoration.hasPrefix(";") || decoration == " " ? hex + decoration : decoration + hex
            let data = String(repeating: "d", count: max(0, size + (size == 0 ? 0 : skew)))
            return text + sizeLineEnd + (size == 0 ? "" : data + dataEnd)
        }
        let bodies = zip(
            chunk.array(of: 0...5),
            mostly(["0\r\n\r\n"], or: ["0\r\nTrailer: x\r\n\r\n", "0\r\n\n", "0\r\n", ""]),
            oneOf(["", "GET /api/q HTTP/1.1\r\n\r\n"])
        ).map { Array(($0.joined() + $1 + $2).utf8) }
        await propertyCheck(count: 1500, input: bodies) { bytes in
            do { try ChunkedBodyOracle.check(bytes) } catch { Issue.record("\(error)") }
        }
    }

    /// JSON texts from tokens, valid or not: nesting, numbers Foundation cannot hold, escapes
    /// (lone surrogates among them), UTF-8 good and bad, stray commas and whitespace.
    @Test func generatedJSONKeepsTheInvariants() async {
        let tokens = oneOf([
            "{", "}", "[", "]", ",", ":", " ", "\n", "\"a\"", "\"\u{E9}\u{1F680}\"", "\"\\u00e9\"", "\"\\ud800\"", "\"\\udc00\\ud800\"",
            "\"\\ud83d\\ude00\"", "\"\\x\"", "\"\\u12\"", "1", "-0", "0.5", "1e400", "-1E-400", "01", "1.", ".5", "true", "false", "null", "nul",
            "\"\u{1}\"", "\"\t\"", "\u{A0}",
        ])
        let texts = tokens.array(of: 1...30).map { Array($0.joined().utf8) }
        await propertyCheck(count: 3000, input: texts) { bytes in
            do { try JSONValidatorOracle.check(bytes) } catch { Issue.record("\(error)") }
        }
        // Raw bytes too: invalid UTF-8, NULs, BOMs.
        let raw = Gen.uint8().array(of: 0...24)
        await propertyCheck(count: 2000, input: raw) { bytes in
            do { try JSONValidatorOracle.check(bytes) } catch { Issue.record("\(error)") }
        }
    }

    /// Usually one of `usual`, one time in fifteen one of `unusual`: hostile pieces rare enough
    /// that a good share of the inputs still gets past the first check.
    private func mostly(_ usual: [String], or unusual: [String]) -> Generator<String, Shrink.None<String>> {
        Generator { random in
            Int.random(in: 0..<15, using: &random) == 0 ? unusual.randomElement(using: &random)! : usual.randomElement(using: &random)!
        }
    }

    /// One of `options`, at random.
    private func oneOf(_ options: [String]) -> Generator<String, Shrink.None<String>> {
        Generator { random in options.randomElement(using: &random)! }
    }

    // MARK: The oracles themselves

    /// The reference decoder and NIO agree with the cases ChunkedBodyFramingTests state.
    @Test func theReferenceChunkedDecoderReadsTheKnownCases() {
        #expect(ReferenceChunkedDecoder.decode(Array("5\r\nhello\r\n0\r\n\r\nGET".utf8)).outcome == .ended(bytes: 15))
        #expect(ReferenceChunkedDecoder.decode(Array("5\r\nhello\r\n0\r\n\r\n".utf8)).data == Array("hello".utf8))
        #expect(ReferenceChunkedDecoder.decode(Array("5\r\nhel".utf8)).outcome == .needsMore)
        #expect(ReferenceChunkedDecoder.decode(Array("123456789\r\n".utf8)).outcome == .unframeable)
        #expect(ReferenceChunkedDecoder.decode(Array("5;x\r\nhello\r\n0\r\n\r\n".utf8)).outcome == .unframeable)
    }

    /// NIO's decoder, as the oracle runs it, ends requests where their framing says.
    @Test func theRouterPathDecodingFindsWhereRequestsEnd() {
        let two = RouterPathDecoding(Array("POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc".utf8) + Sentinel.request)
        #expect(
            two.error == nil && two.requests.count == 2 && two.requests[0].body == Array("abc".utf8) && two.requests[1].head.uri == Sentinel.target
        )
        // Both framings at once: NIO refuses it, as the fast path leaves it to NIO.
        let both = RouterPathDecoding(Array("POST /a HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".utf8))
        #expect(both.error != nil)
    }

    /// The oracle fails where the fast path and NIO would disagree: a head the fast path reads
    /// is checked against NIO's reading of the same bytes, so a head NIO refuses fails it.
    @Test func theHeadOracleFailsWhenNIORefusesAHeadTheFastPathReads() throws {
        // Not a smuggling case: `GET` is one NIO knows, and this head is fine for both.
        try RequestHeadOracle.check(Array("GET /api/q HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        // NIO refuses a method it does not know; the oracle allows that only for `other` heads.
        try RequestHeadOracle.check(Array("FOO /api/q HTTP/1.1\r\n\r\n".utf8))
        #expect(RouterPathDecoding(Array("FOO /api/q HTTP/1.1\r\n\r\n".utf8)).requests.isEmpty)
    }

    /// Found by libFuzzer (scripts/fuzz.sh, a crash of the head target): `Content-Length: 4 `
    /// with whitespace after the number. Both parsers frame 4 bytes; NIO keeps the space in the
    /// header's value, which the oracle first took for another length. Fixed in the oracle.
    @Test func aContentLengthFollowedByWhitespaceIsFramedAlike() throws {
        let text = "POST /api/orders HTTP/1.1\r\nHost: localhost:8080\r\nExpect: 100-continue\r\nContent-Length: 4 \r\n\r\nnull"
        guard case .head(let head) = FastPathRequestHead.parse(ByteBuffer(string: text)) else {
            Issue.record("not read")
            return
        }
        #expect(head.contentLength == 4)
        let decoded = RouterPathDecoding(Array(text.utf8) + Sentinel.request)
        #expect(decoded.requests.count == 2 && decoded.requests[0].body == Array("null".utf8))
        try RequestHeadOracle.check(Array(text.utf8))
        try RequestHeadOracle.check(
            Array("POST /api/orders HTTP/1.1\r\nHost: localhos)t80\r\nContent-Length:2 \r\nX-Request-Id: 6f1c-22\r\n\r\n42".utf8)
        )
    }

    /// Found by libFuzzer in CI (a crash of the head target): `Content-Length: 4 \t`. llhttp
    /// refuses a tab after the number ("invalid character in content-length header") where the
    /// fast path trimmed it and framed 4 bytes. The fast path now leaves a length or a coding
    /// followed by a tab to the decoder, which answers 400.
    @Test func aTabAfterAFramingHeaderIsLeftToTheDecoder() throws {
        for text in [
            "POST /api/orders HTTP/1.1\r\nHost:e\r\nContent-Length: 4 \t\r\n\r\nnull",
            "POST /api/orders HTTP/1.1\r\nHost:e\r\nContent-Length: 4\t\r\n\r\nnull",
            "POST /api/orders HTTP/1.1\r\nHost:e\r\nTransfer-Encoding: chunked\t\r\n\r\n0\r\n\r\n",
        ] {
            #expect(FastPathRequestHead.parse(ByteBuffer(string: text)) == .unframeable, "\(text.debugDescription)")
            try RequestHeadOracle.check(Array(text.utf8))
        }
        // Spaces stay fine, and a tab elsewhere in the head too.
        let spaces = "POST /api/orders HTTP/1.1\r\nHost:\te\t\r\nContent-Length: 4  \r\n\r\nnull"
        guard case .head(let head) = FastPathRequestHead.parse(ByteBuffer(string: spaces)) else {
            Issue.record("not read")
            return
        }
        #expect(head.contentLength == 4)
        try RequestHeadOracle.check(Array(spaces.utf8))
    }

    /// Where Skiff's validator and Foundation differ on purpose (see JSONValidatorOracle): each
    /// difference, shown.
    @Test func theIntentionalDifferencesFromFoundation() throws {
        func skiff(_ text: String) -> Bool { JSONValidator.validate(ByteBuffer(string: text)) == nil }
        func foundation(_ bytes: [UInt8]) -> Bool { (try? JSONSerialization.jsonObject(with: Data(bytes), options: .fragmentsAllowed)) != nil }
        for text in [#""\ud800""#, "1e400", "-1e400"] {
            #expect(skiff(text) && !foundation(Array(text.utf8)), "\(text)")
            try JSONValidatorOracle.check(Array(text.utf8))
        }
        for text in ["[1,]", #"{"a":1,}"#] {
            #expect(!skiff(text) && foundation(Array(text.utf8)), "\(text)")
            try JSONValidatorOracle.check(Array(text.utf8))
        }
        for bytes in [[0xEF, 0xBB, 0xBF] + Array("1".utf8), [0x31, 0x00], [0x00, 0x31]] {
            #expect(!skiff(String(decoding: bytes, as: UTF8.self)) && foundation(bytes))
            try JSONValidatorOracle.check(bytes)
        }
        // The same nesting limit, and repeated keys accepted by both.
        let deepest = String(repeating: "[", count: JSONValidator.maximumDepth) + String(repeating: "]", count: JSONValidator.maximumDepth)
        #expect(skiff(deepest) && foundation(Array(deepest.utf8)))
        #expect(!skiff("[" + deepest + "]") && !foundation(Array(("[" + deepest + "]").utf8)))
        #expect(skiff(#"{"a":1,"a":2}"#) && foundation(Array(#"{"a":1,"a":2}"#.utf8)))
    }
}
