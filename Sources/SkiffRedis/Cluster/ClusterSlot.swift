/// Redis Cluster's key → hash slot function: CRC16 (XMODEM) of the key, or of its hash tag, modulo
/// 16384. The hash tag is the part between the first `{` and the first `}` after it, when that
/// part is not empty; keys with the same tag share a slot, so one script may touch them all.
public enum ClusterSlot {
    public static let count = 16384

    public static func of(_ key: String) -> Int {
        var key = key
        return key.withUTF8 { of(UnsafeRawBufferPointer($0)) }
    }

    public static func of(_ key: UnsafeRawBufferPointer) -> Int {
        var bytes = key[...]
        if let open = key.firstIndex(of: UInt8(ascii: "{")),
            let close = key[(open + 1)...].firstIndex(of: UInt8(ascii: "}")), close > open + 1
        {
            bytes = key[(open + 1)..<close]
        }
        var crc: UInt16 = 0
        for byte in bytes {
            crc = (crc << 8) ^ table[Int((crc >> 8) ^ UInt16(byte)) & 0xFF]
        }
        return Int(crc) & (count - 1)
    }

    /// CRC16-CCITT (XMODEM: polynomial 0x1021, initial 0), a byte at a time.
    private static let table: [UInt16] = (0..<256).map { index in
        var crc = UInt16(index) << 8
        for _ in 0..<8 { crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1 }
        return crc
    }
}

/// A node of the cluster, as the slot map and redirections name it.
public struct ClusterNodeAddress: Hashable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// `host:port`, or `[v6]:port`; the form `MOVED` and `ASK` use (the last colon separates).
    /// `host:port`, `[v6]:port`, or `:port` (Redis 7 names an endpoint it does not know so: the
    /// node that answered, `defaultHost`).
    public init?(_ text: Substring, defaultHost: String? = nil) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port) else { return nil }
        var host = text[..<colon]
        if host.hasPrefix("["), host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        if host.isEmpty, let defaultHost { host = Substring(defaultHost) }
        guard !host.isEmpty else { return nil }
        self.init(host: String(host), port: port)
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// A server error that tells the client to go elsewhere or try again, before the command ran.
public enum ClusterRedirection: Equatable, Sendable {
    /// The slot lives on another node for good: refresh the slot map, send there.
    case moved(slot: Int, to: ClusterNodeAddress)
    /// The slot is migrating and this key is already on the target: send `ASKING` then the
    /// command to that node, once; the map does not change.
    case ask(slot: Int, to: ClusterNodeAddress)
    /// A multi-key command or script found its keys split by a migration (`TRYAGAIN`), or the
    /// cluster cannot serve the slot now (`CLUSTERDOWN`, a failover in progress): wait a little
    /// and try again within the deadline.
    case tryAgain

    /// Reads `MOVED 3999 127.0.0.1:6381`, `ASK ...`, `TRYAGAIN ...`, `CLUSTERDOWN ...`;
    /// `answeredBy`: the host of the node that replied (for `MOVED 3999 :6381`).
    public init?(_ error: RedisServerError, answeredBy: String? = nil) {
        let parts = error.message.split(separator: " ", maxSplits: 2)
        switch parts.first {
        case "MOVED", "ASK":
            guard parts.count == 3, let slot = Int(parts[1]), (0..<ClusterSlot.count).contains(slot),
                let address = ClusterNodeAddress(parts[2].prefix { $0 != " " }, defaultHost: answeredBy)
            else { return nil }
            self = parts[0] == "MOVED" ? .moved(slot: slot, to: address) : .ask(slot: slot, to: address)
        case "TRYAGAIN", "CLUSTERDOWN":
            self = .tryAgain
        default:
            return nil
        }

    }
}
