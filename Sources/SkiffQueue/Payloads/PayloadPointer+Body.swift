import Foundation
public import NIOCore

extension PayloadPointer {
    /// What an offloaded body starts with in Redis: a NUL byte, which no JSON text can start
    /// with (RFC 8259 allows only whitespace and the first byte of a value), then a tag naming
    /// the format. The pointer's compact JSON follows.
    static let bodyTag: [UInt8] = [0x00] + Array("skiff-payload/1".utf8)

    /// The message body Redis stores in place of an offloaded one: ``bodyTag``, then the
    /// pointer as compact JSON with sorted keys.
    public func encode() -> ByteBuffer {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Encoding three plain fields cannot fail.
        let json = try! encoder.encode(self)
        var buffer = ByteBuffer()
        buffer.reserveCapacity(Self.bodyTag.count + json.count)
        buffer.writeBytes(Self.bodyTag)
        buffer.writeBytes(json)
        return buffer
    }

    /// The pointer a stored body holds, or nil for an ordinary body. Costs one byte comparison
    /// for an ordinary body (any valid JSON); a body that starts like a pointer but does not
    /// hold a well-formed one is also nil.
    public static func decode(_ body: ByteBuffer) -> PayloadPointer? {
        guard body.readableBytes > bodyTag.count, body.getInteger(at: body.readerIndex, as: UInt8.self) == 0,
            body.readableBytesView.starts(with: bodyTag)
        else { return nil }
        let json = body.readableBytesView.dropFirst(bodyTag.count)
        guard let pointer = try? JSONDecoder().decode(PayloadPointer.self, from: Data(json)),
            !pointer.uri.isEmpty, pointer.size >= 0, isDigest(pointer.sha256)
        else { return nil }
        return pointer
    }
}
