import CHiredis
public import NIOCore

/// One argument of a Redis command: binary safe.
public enum RedisArgument: Sendable, ExpressibleByStringLiteral, ExpressibleByIntegerLiteral {
    case string(String)
    case bytes(ByteBuffer)
    case integer(Int64)

    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .integer(value) }
    public init(_ value: Int) { self = .integer(Int64(value)) }
}

/// A Redis command, encoded to RESP by hiredis's `redisFormatCommandArgv` with explicit lengths.
public struct RedisCommand: Sendable {
    public var name: String
    public var arguments: [RedisArgument]

    public init(_ name: String, _ arguments: [RedisArgument] = []) {
        self.name = name
        self.arguments = arguments
    }

    public init(_ name: String, _ arguments: RedisArgument...) {
        self.init(name, arguments)
    }

    /// Appends this command's RESP encoding to `buffer`.
    ///
    /// All arguments are first laid out in one contiguous scratch area so hiredis gets stable
    /// pointers with explicit lengths (binary safe: NUL bytes and newlines pass through).
    public func encode(into buffer: inout ByteBuffer) {
        var lengths: [Int] = []
        lengths.reserveCapacity(arguments.count + 1)
        var total = name.utf8.count
        lengths.append(total)
        var scratch = ByteBuffer()
        for argument in arguments {
            let length: Int
            switch argument {
            case .string(let string): length = string.utf8.count
            case .bytes(let bytes): length = bytes.readableBytes
            case .integer(let integer): length = String(integer).utf8.count
            }
            lengths.append(length)
            total += length
        }
        scratch.reserveCapacity(total)
        scratch.writeString(name)
        for argument in arguments {
            switch argument {
            case .string(let string): scratch.writeString(string)
            case .bytes(var bytes): scratch.writeBuffer(&bytes)
            case .integer(let integer): scratch.writeString(String(integer))
            }
        }
        scratch.withUnsafeReadableBytes { raw in
            let base = raw.baseAddress?.assumingMemoryBound(to: CChar.self)
            var pointers: [UnsafePointer<CChar>?] = []
            pointers.reserveCapacity(lengths.count)
            var offset = 0
            for length in lengths {
                pointers.append(base.map { UnsafePointer($0 + offset) } ?? nil)
                offset += length
            }
            // hiredis dereferences argv[i] only when argvlen[i] > 0, so a nil base (all empty) is safe.
            let emptyByte: CChar = 0
            withUnsafePointer(to: emptyByte) { empty in
                var argv: [UnsafePointer<CChar>?] = pointers.map { $0 ?? empty }
                var target: UnsafeMutablePointer<CChar>?
                let encodedLength = argv.withUnsafeMutableBufferPointer { argvPointer in
                    lengths.withUnsafeBufferPointer { lengthPointer in
                        redisFormatCommandArgv(&target, Int32(argvPointer.count), argvPointer.baseAddress, lengthPointer.baseAddress)
                    }
                }
                guard encodedLength >= 0, let target else { fatalError("hiredis failed to format a command (out of memory)") }
                buffer.writeBytes(UnsafeRawBufferPointer(start: target, count: Int(encodedLength)))
                redisFreeCommand(target)
            }
        }
    }
}
