import NIOPosix
public import SkiffQueue

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where pushes may go (issue 20, SSRF): by default only to `https` URLs whose host resolves to
/// public addresses only. Loopback, private, link-local (the metadata server), carrier-grade NAT,
/// multicast and reserved addresses are refused, IPv4 inside IPv6 (`::ffff:a.b.c.d`, NAT64)
/// judged by its IPv4 address. Addresses inside ``allowedNetworks`` (`PUSH_ALLOWED_NETWORKS`)
/// are allowed whatever they are, and only hosts whose addresses all are may be pushed to over
/// plain `http`.
///
/// The check runs when a subscription is stored and before each push (resolutions cached for
/// ``PushDelivery``'s cache time). The HTTP client resolves the name again when it connects, so a
/// name whose DNS answer changes in between (rebinding) can still reach a refused address for one
/// connection: where that matters, an egress firewall is the stronger control (docs/topics.md).
public struct PushAddressRules: Sendable, Equatable {
    public var allowedNetworks: [IPNetwork]

    public init(allowedNetworks: [IPNetwork] = []) {
        self.allowedNetworks = allowedNetworks
    }

    /// Checks the URL's scheme and every address its host resolves to.
    /// - Parameter resolve: the host's addresses (``resolveHost(_:)`` outside tests).
    /// - Throws: ``QueueError`` `.invalidArgument` saying which rule the URL breaks.
    public func check(_ url: PushURL, resolve: (String) async throws -> [IPAddress]) async throws(QueueError) {
        let addresses: [IPAddress]
        if let literal = IPAddress(url.host) {
            addresses = [literal]
        } else {
            do {
                addresses = try await resolve(url.host)
            } catch {
                throw .invalidArgument("push.url's host \(url.host) does not resolve")
            }
            guard !addresses.isEmpty else { throw .invalidArgument("push.url's host \(url.host) does not resolve") }
        }
        for address in addresses where !isAllowed(address) {
            if let range = address.refusedRange {
                // The address itself is not told: the answer must not map a network's names.
                throw .invalidArgument(
                    "push.url's host \(url.host) is or resolves to a \(range) address: pushes go to public addresses only (PUSH_ALLOWED_NETWORKS allows others)"
                )
            }
            if !url.isHTTPS {
                throw .invalidArgument("push.url must be https (http only to hosts in PUSH_ALLOWED_NETWORKS)")
            }
        }
    }

    /// Whether `address` is inside an allowed network.
    public func isAllowed(_ address: IPAddress) -> Bool {
        allowedNetworks.contains { $0.contains(address) }
    }

    /// The addresses `host` resolves to (`getaddrinfo`, on NIO's thread pool).
    @Sendable public static func resolveHost(_ host: String) async throws -> [IPAddress] {
        try await NIOThreadPool.singleton.runIfActive {
            var hints = addrinfo()
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            var list: UnsafeMutablePointer<addrinfo>?
            let status = getaddrinfo(host, nil, &hints, &list)
            guard status == 0 else { throw QueueError.invalidArgument("push.url's host \(host) does not resolve") }
            defer { freeaddrinfo(list) }
            var addresses: [IPAddress] = []
            var next = list
            while let entry = next {
                if let socketAddress = entry.pointee.ai_addr {
                    switch Int32(entry.pointee.ai_family) {
                    case AF_INET:
                        socketAddress.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { pointer in
                            var raw = pointer.pointee.sin_addr
                            addresses.append(IPAddress(bytes: withUnsafeBytes(of: &raw) { Array($0) }))
                        }
                    case AF_INET6:
                        socketAddress.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { pointer in
                            var raw = pointer.pointee.sin6_addr
                            addresses.append(IPAddress(bytes: withUnsafeBytes(of: &raw) { Array($0) }))
                        }
                    default: break
                    }
                }
                next = entry.pointee.ai_next
            }
            return addresses
        }
    }
}

/// An IPv4 (4 bytes) or IPv6 (16 bytes) address.
public struct IPAddress: Sendable, Hashable, CustomStringConvertible {
    public let bytes: [UInt8]

    public init(bytes: [UInt8]) {
        precondition(bytes.count == 4 || bytes.count == 16, "an IP address has 4 or 16 bytes")
        self.bytes = bytes
    }

    /// Parses dotted IPv4 or IPv6 text (without brackets or zone); `nil` for anything else.
    public init?(_ text: String) {
        if text.contains(":") {
            var raw = in6_addr()
            guard inet_pton(AF_INET6, text, &raw) == 1 else { return nil }
            bytes = withUnsafeBytes(of: &raw) { Array($0) }
        } else {
            // Four decimal parts only: inet_pton refuses `127.1` and octal forms, which some
            // resolvers would read as loopback; such a host then goes to the resolver, whose
            // answer is checked.
            var raw = in_addr()
            guard inet_pton(AF_INET, text, &raw) == 1 else { return nil }
            bytes = withUnsafeBytes(of: &raw) { Array($0) }
        }
    }

    public var description: String {
        if bytes.count == 4 { return bytes.map(String.init).joined(separator: ".") }
        var raw = in6_addr()
        withUnsafeMutableBytes(of: &raw) { $0.copyBytes(from: bytes) }
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        guard inet_ntop(AF_INET6, &raw, &text, socklen_t(text.count)) != nil else { return "?" }
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The IPv4 address inside an IPv4-mapped (`::ffff:0:0/96`), IPv4-compatible, NAT64
    /// (`64:ff9b::/96`, and the local-use `64:ff9b:1::/48`) or 6to4 (`2002::/16`) IPv6 address.
    var embeddedIPv4: IPAddress? {
        guard bytes.count == 16 else { return nil }
        if bytes[0] == 0x20, bytes[1] == 0x02 { return IPAddress(bytes: Array(bytes[2..<6])) }
        let head = bytes[0..<12]
        let mapped = head.elementsEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF])
        let nat64 = head.elementsEqual([0, 0x64, 0xFF, 0x9B, 0, 0, 0, 0, 0, 0, 0, 0])
        let localNAT64 = bytes[0..<6].elementsEqual([0, 0x64, 0xFF, 0x9B, 0, 0x01])
        let compatible = head.allSatisfy { $0 == 0 } && bytes[12..<16].contains { $0 != 0 } && !(bytes[12..<15].allSatisfy { $0 == 0 } && bytes[15] == 1)
        return mapped || nat64 || localNAT64 || compatible ? IPAddress(bytes: Array(bytes[12..<16])) : nil
    }

    /// What kind of refused address this is (`nil`: a public one).
    public var refusedRange: String? {
        if let v4 = embeddedIPv4 { return v4.refusedRange }
        for (network, name) in Self.refused where network.contains(self) { return name }
        return nil
    }

    private static let refused: [(IPNetwork, String)] = [
        ("0.0.0.0/8", "this-network"), ("10.0.0.0/8", "private"), ("100.64.0.0/10", "carrier-grade NAT"), ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"), ("172.16.0.0/12", "private"), ("192.0.0.0/24", "IETF protocol"), ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "benchmarking"), ("224.0.0.0/4", "multicast"), ("240.0.0.0/4", "reserved"), ("::/128", "unspecified"),
        ("::1/128", "loopback"), ("100::/64", "discard"), ("fc00::/7", "unique local (private)"), ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local"), ("ff00::/8", "multicast"),
    ].map { (IPNetwork($0.0)!, $0.1) }
}

/// An address range in CIDR form: `10.0.0.0/8`, `::1/128`, or one address (`127.0.0.1`).
public struct IPNetwork: Sendable, Hashable, CustomStringConvertible {
    public let address: IPAddress
    public let prefixLength: Int

    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = IPAddress(String(parts[0])) else { return nil }
        let maximum = address.bytes.count * 8
        if parts.count == 2 {
            guard let length = Int(parts[1]), (0...maximum).contains(length) else { return nil }
            prefixLength = length
        } else {
            prefixLength = maximum
        }
        self.address = address
    }

    public var description: String { "\(address)/\(prefixLength)" }

    public func contains(_ other: IPAddress) -> Bool {
        guard other.bytes.count == address.bytes.count else {
            // An IPv4 network holds the IPv4 addresses embedded in IPv6 ones too.
            if address.bytes.count == 4, let v4 = other.embeddedIPv4 { return contains(v4) }
            return false
        }
        var remaining = prefixLength
        for (mine, theirs) in zip(address.bytes, other.bytes) where remaining > 0 {
            let bits = min(8, remaining)
            let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - bits))
            if mine & mask != theirs & mask { return false }
            remaining -= bits
        }
        return true
    }

    /// A comma-separated list (`PUSH_ALLOWED_NETWORKS`); `nil` naming the first bad entry.
    public static func list(_ text: String) -> Result<[IPNetwork], PushSettingError> {
        var networks: [IPNetwork] = []
        for entry in text.split(separator: ",").map({ $0.trimmingSpaces }) where !entry.isEmpty {
            guard let network = IPNetwork(entry) else { return .failure(PushSettingError(entry: entry)) }
            networks.append(network)
        }
        return .success(networks)
    }
}

/// An entry of `PUSH_ALLOWED_NETWORKS` that is not an address or a CIDR range.
public struct PushSettingError: Error, Sendable, CustomStringConvertible {
    public let entry: String
    public var description: String { "'\(entry)' is not an IP address or CIDR range (10.0.0.0/8, ::1/128)" }
}

extension Substring {
    fileprivate var trimmingSpaces: String {
        String(drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
    }
}
