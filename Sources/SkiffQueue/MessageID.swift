import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Message ids: 26 characters of Crockford base32, time-ordered like ULIDs (48 bits of Unix
/// milliseconds, then 80 random bits). The time part only makes ids sortable for people; queue
/// order never depends on it.
///
/// The two top bits of the 130 the characters spell, always zero in a ULID, tag a message whose
/// body is in the payload store (``OffloadingQueues``): its id starts with one of `G H J K M N P
/// Q` instead of `0`...`7`, or `R S T V W X Y Z` when the object is shared by the copies of a
/// topic publish (one id everywhere) and counted (``QueueBackend/adjustPayloadReferences(of:by:keepFor:)``).
/// So whoever holds only an id or a receipt (an ack, on any replica) knows whether an object goes
/// with it, and whether others may still need it, without a read.
public enum MessageID {
    private static let alphabet = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ".utf8)
    private static let generator = Mutex(SplitMix64(seed: UInt64.random(in: .min ... .max)))

    /// Unix time in milliseconds by this machine's clock (ids and the memory backend's timestamps
    /// only; the Redis backend's timestamps come from Redis).
    public static func currentMilliseconds() -> Int64 {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return Int64(time.tv_sec) * 1000 + Int64(time.tv_nsec) / 1_000_000
    }

    /// - Parameters:
    ///   - offloaded: tag the id as one whose message body is in the payload store.
    ///   - shared: and that body's object is shared by several messages (topic copies).
    public static func make(nowMilliseconds: Int64 = currentMilliseconds(), offloaded: Bool = false, shared: Bool = false) -> String {
        let (high, low) = generator.withLock { ($0.next(), $0.next()) }
        // 128 bits: 48-bit time, then 80 random bits.
        let time = UInt64(truncatingIfNeeded: nowMilliseconds) & 0xFFFF_FFFF_FFFF
        let upper = (time << 16) | (high & 0xFFFF)  // 64 bits
        let lower = low  // 64 bits
        var bytes = [UInt8](repeating: 0, count: 26)
        // 130 bits of output; the top 2 bits are zero.
        var index = 25
        var value = (upper, lower)
        for _ in 0..<26 {
            let digit = Int(value.1 & 31)
            bytes[index] = alphabet[digit]
            index -= 1
            value.1 = (value.1 >> 5) | (value.0 << 59)
            value.0 >>= 5
        }
        // The first character holds the two zero bits and the top three bits of the time.
        if offloaded, let digit = alphabet.firstIndex(of: bytes[0]) { bytes[0] = alphabet[digit | (shared ? sharedTag : offloadedTag)] }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The first character's value with the tag bits set (`10` or `11`, then the three time bits).
    private static let offloadedTag = 16
    private static let sharedTag = 24

    /// Whether `id` was made with `offloaded: true`: its message's body is in the payload store.
    public static func isOffloaded(_ id: some StringProtocol) -> Bool {
        guard id.utf8.count == 26, let first = id.utf8.first else { return false }
        // G H J K M N P Q, then R S T V W X Y Z: values 16 to 31.
        return [UInt8]("GHJKMNPQRSTVWXYZ".utf8).contains(first)
    }

    /// Whether `id` was made with `offloaded: true, shared: true`: its body's object is shared by
    /// the copies of a topic publish, and deleted when the last of them is.
    public static func isShared(_ id: some StringProtocol) -> Bool {
        guard id.utf8.count == 26, let first = id.utf8.first else { return false }
        // R S T V W X Y Z: values 24 to 31.
        return [UInt8]("RSTVWXYZ".utf8).contains(first)
    }
}

/// A fast, well-distributed generator, seeded once from the system's random source.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
