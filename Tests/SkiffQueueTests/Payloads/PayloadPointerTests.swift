import NIOCore
import PropertyBased
import Testing

@testable import SkiffQueue

/// The pointer Redis keeps in place of an offloaded body: it reads back as itself, and no JSON
/// body is ever taken for one.
@Suite("PayloadPointer encoding")
struct PayloadPointerTests {
    static let digest = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

    @Test func aPointerReadsBackAsItself() throws {
        for pointer in [
            PayloadPointer(uri: "gs://bucket/orders/01JD3Z8V9Q2W4X6Y8Z0A1B2C3D", size: 33_554_432, sha256: Self.digest),
            PayloadPointer(uri: "file:///var/lib/skiff/payloads/q~2/m", size: 0, sha256: Self.digest),
        ] {
            let body = pointer.encode()
            #expect(body.getInteger(at: 0, as: UInt8.self) == 0)
            #expect(PayloadPointer.decode(body) == pointer)
        }
        // Compact and readable in redis-cli: the tag, then sorted keys, slashes unescaped.
        let body = PayloadPointer(uri: "gs://b/q/m", size: 5, sha256: Self.digest).encode()
        #expect(String(buffer: body) == "\u{0}skiff-payload/1{\"sha256\":\"\(Self.digest)\",\"size\":5,\"uri\":\"gs://b/q/m\"}")
    }

    @Test func noJSONBodyIsAPointer() {
        let bodies = [
            "", " ", "{}", "[]", "null", "true", "false", "0", "-1", "1.5e3", "\"\"", "\"\\u0000skiff-payload/1\"",
            " {\"a\":1}", "\n[1,2]", "\t\"x\"", "\r\n  null", "{\"uri\":\"gs://b/k\",\"size\":1,\"sha256\":\"\(Self.digest)\"}",
        ]
        for body in bodies {
            #expect(PayloadPointer.decode(ByteBuffer(string: body)) == nil, "\(body)")
        }
    }

    @Test func aNULLedBodyThatIsNoPointerIsNotOne() {
        let wellFormed = String(buffer: PayloadPointer(uri: "gs://b/k", size: 1, sha256: Self.digest).encode())
        for body in [
            "\u{0}", "\u{0}skiff-payload/1", "\u{0}skiff-payload/1{}", "\u{0}skiff-payload/2" + wellFormed.dropFirst(16),
            "\u{0}skiff-payload/1{\"sha256\":\"abc\",\"size\":1,\"uri\":\"gs://b/k\"}",
            "\u{0}skiff-payload/1{\"sha256\":\"\(Self.digest.uppercased())\",\"size\":1,\"uri\":\"gs://b/k\"}",
            "\u{0}skiff-payload/1{\"sha256\":\"\(Self.digest)\",\"size\":-1,\"uri\":\"gs://b/k\"}",
            "\u{0}skiff-payload/1{\"sha256\":\"\(Self.digest)\",\"size\":1,\"uri\":\"\"}",
            String(wellFormed.dropLast()),
        ] {
            #expect(PayloadPointer.decode(ByteBuffer(string: body)) == nil, "\(body.debugDescription)")
        }
        #expect(PayloadPointer.decode(ByteBuffer(string: wellFormed)) != nil)
    }

    /// Any body whose first byte is one a JSON text may start with (whitespace or a value's first
    /// byte) is ordinary, whatever follows; any pointer reads back.
    @Test func propertiesHoldForRandomBodiesAndPointers() async {
        let jsonFirstBytes = Array(" \t\r\n{[\"-0123456789tfn".utf8)
        let bodies = zip(Gen.element(of: jsonFirstBytes), Gen.uint8().array(of: 0...200))
        await propertyCheck(count: 2000, input: bodies) { first, rest in
            var body = ByteBuffer(bytes: [first!])
            body.writeBytes(rest)
            #expect(PayloadPointer.decode(body) == nil)
        }
        let hex = Array("0123456789abcdef")
        let pointers = zip(Gen.int(in: 0...(32 << 20)), Gen.int(in: 0...15).array(of: 64), Gen.uint8(in: 32...126).array(of: 1...300))
        await propertyCheck(count: 1000, input: pointers) { size, digits, uri in
            let pointer = PayloadPointer(uri: String(decoding: uri, as: UTF8.self), size: size, sha256: String(digits.map { hex[$0] }))
            #expect(PayloadPointer.decode(pointer.encode()) == pointer)
        }
    }
}
