import Logging
import NIOCore
import NIOPosix
import PropertyBased
import SkiffRedis
import SkiffTestSupport
import Testing

@testable import SkiffQueue
@testable import SkiffRedisQueue

/// The envelope has two codecs, Lua's (the scripts rewrite envelopes) and Swift's
/// (``RedisEnvelope``): both run here on the same envelopes, inside Redis, so that they cannot
/// disagree unnoticed.
@Suite("Envelope codecs", .enabled(if: TestEnvironment.hasRedis), .timeLimit(.minutes(2)))
struct EnvelopeCodecTests {
    /// Lua parses ARGV[3] and rebuilds it both ways; it also builds one from the fields in ARGV[4...].
    static let script =
        RedisQueueScripts.library + """
            local m = parse(ARGV[3])
            local f = { seq = tonumber(ARGV[4]), id = ARGV[5], enq = tonumber(ARGV[6]), priority = tonumber(ARGV[7]),
              count = tonumber(ARGV[8]), claims = tonumber(ARGV[9]), first = tonumber(ARGV[10]), last = tonumber(ARGV[11]), body = ARGV[12] }
            if ARGV[13] ~= '' then f.trace = ARGV[13] end
            return { build(m), buildDelayed(m), build(f), m.id, m.body,
              string.format('%d|%d|%d|%d|%d|%d|%d', m.seq, m.enq, m.priority, m.count, m.claims, m.first, m.last), m.trace or '' }
            """

    static func client() throws -> RedisClient {
        var configuration = try RedisConfiguration(url: try #require(TestEnvironment.redisURL))
        configuration.commandTimeout = .seconds(5)
        return RedisClient(configuration: configuration, eventLoopGroup: MultiThreadedEventLoopGroup.singleton, logger: Logger(label: "test"))
    }

    /// Checks one envelope both ways.
    static func check(_ envelope: RedisEnvelope, client: RedisClient) async throws {
        let fields: [RedisArgument] = [
            .string(String(envelope.sequence)), .string(envelope.id), .string(String(envelope.enqueuedAtMilliseconds)),
            .string(String(envelope.priority)), .string(String(envelope.receiveCount)), .string(String(envelope.claims)),
            .string(String(envelope.firstReceivedAtMilliseconds)), .string(String(envelope.lastReceivedAtMilliseconds)), .bytes(envelope.body),
            .string(envelope.traceContext ?? ""),
        ]
        let reply = try await client.send(
            RedisCommand("EVAL", [.string(script), 0, "prefix", "queue", .bytes(envelope.encoded())] + fields)
        )
        let values = try #require(reply.array)
        try #require(values.count == 7)
        // Lua reads what Swift wrote, field by field, and writes it back byte for byte.
        #expect(values[0].bytes == envelope.encoded(), "\(envelope)")
        #expect(values[1].bytes == envelope.encoded(padded: true), "\(envelope)")
        #expect(values[3].string == envelope.id)
        #expect(values[4].bytes == envelope.body)
        let numbers = [
            envelope.sequence, envelope.enqueuedAtMilliseconds, Int64(envelope.priority), Int64(envelope.receiveCount), Int64(envelope.claims),
            envelope.firstReceivedAtMilliseconds, envelope.lastReceivedAtMilliseconds,
        ].map(String.init).joined(separator: "|")
        #expect(values[5].string == numbers)
        #expect(values[6].string == (envelope.traceContext ?? ""))
        // Swift reads what Lua wrote from the same fields, and the delayed set's padded form too.
        #expect(RedisEnvelope.parse(try #require(values[2].bytes)) == envelope)
        #expect(RedisEnvelope.parse(try #require(values[1].bytes)) == envelope)
    }

    @Test func edgeCasesAgree() async throws {
        let client = try Self.client()
        defer { client.close() }
        let base = RedisEnvelope(
            sequence: 1,
            id: "01J0000000000000000000000A",
            enqueuedAtMilliseconds: 1_733_400_000_000,
            priority: 0,
            receiveCount: 0,
            claims: 0,
            firstReceivedAtMilliseconds: 0,
            lastReceivedAtMilliseconds: 0,
            body: ByteBuffer(string: "{}")
        )
        var cases = [base]
        for body in ["", "|", "a|b|c|d|e|f|g|h|i|j", "\"x\"", "\u{0}\u{1}\r\n", String(repeating: "9", count: 70_000)] {
            var envelope = base
            envelope.body = ByteBuffer(string: body)
            cases.append(envelope)
        }
        // Sequence numbers crossing a digit, and the padded form's 16 digits reached.
        for sequence: Int64 in [9, 10, 99, 100, 999_999_999_999_999, 1_000_000_000_000_000, 9_007_199_254_740_991] {
            var envelope = base
            envelope.sequence = sequence
            cases.append(envelope)
        }
        var busy = base
        (busy.priority, busy.receiveCount, busy.claims) = (9, 1_000_000, 2_147_483_647)
        (busy.firstReceivedAtMilliseconds, busy.lastReceivedAtMilliseconds) = (1_733_400_000_001, 4_102_444_800_000)
        cases.append(busy)
        var binary = base
        binary.body = ByteBuffer(bytes: (0...255).map { UInt8($0) })
        cases.append(binary)
        // Version 3: a trace context before the body, whose bytes may look like envelope fields.
        for (trace, body) in Self.tracedCases {
            var traced = base
            traced.traceContext = trace
            traced.body = ByteBuffer(string: body)
            cases.append(traced)
            traced.sequence = 1_000_000_000_000_000
            cases.append(traced)
        }
        for envelope in cases { try await Self.check(envelope, client: client) }
    }

    static let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    static let tracedCases: [(String, String)] = [
        (traceparent, "{}"),
        (traceparent, ""),
        (traceparent + "\nvendor=a|b|c,other=9", "3|1|x|1|0|0|0|0|0|5|hello"),
        (traceparent + "\n" + String(repeating: "k=v,", count: 128).dropLast(), "|"),
    ]

    /// Random envelopes (fields within what the scripts store, bodies of any bytes).
    @Test func randomEnvelopesAgree() async throws {
        let client = try Self.client()
        defer { client.close() }
        let numbers = zip(
            Gen.int64(in: 0...9_007_199_254_740_991),
            Gen.int64(in: 0...4_102_444_800_000),
            Gen.int(in: 0...9),
            Gen.int(in: 0...1_000_000),
            Gen.int(in: 0...1_000_000)
        )
        let times = zip(Gen.int64(in: 0...4_102_444_800_000), Gen.int64(in: 0...4_102_444_800_000))
        let body = Gen.uint8().array(of: 0...300)
        let trace = Gen.int(in: -1...(Self.tracedCases.count - 1))
        await propertyCheck(count: 300, input: numbers, times, body, trace) { numbers, times, body, trace in
            let envelope = RedisEnvelope(
                sequence: numbers.0,
                id: MessageID.make(),
                enqueuedAtMilliseconds: numbers.1,
                priority: numbers.2,
                receiveCount: numbers.3,
                claims: numbers.4,
                firstReceivedAtMilliseconds: times.0,
                lastReceivedAtMilliseconds: times.1,
                body: ByteBuffer(bytes: body),
                traceContext: trace < 0 ? nil : Self.tracedCases[trace].0
            )
            do { try await Self.check(envelope, client: client) } catch { Issue.record("\(error)") }
        }
    }

    @Test func swiftRefusesWhatIsNotAnEnvelope() {
        for text in [
            "", "2|", "1|5|id|1|0|0|x", "2|1|id|1|0|0|0|0|", "2|1||1|0|0|0|0|0|b", "2|x|id|1|0|0|0|0|0|b", "3|1|id|1|0|0|0|0|0|b",
            "3|1|id|1|0|0|0|0|0|0|b", "3|1|id|1|0|0|0|0|0|99|b", "4|1|id|1|0|0|0|0|0|b",
        ] {
            #expect(RedisEnvelope.parse(ByteBuffer(string: text)) == nil, "\(text.debugDescription)")
        }
        #expect(RedisEnvelope.parse(ByteBuffer(string: "2|1|id|1|0|0|0|0|0|")) != nil)
        let traced = RedisEnvelope.parse(ByteBuffer(string: "3|1|id|1|0|0|0|0|0|3|a|b{}"))
        #expect(traced?.traceContext == "a|b")
        #expect(traced?.body == ByteBuffer(string: "{}"))
    }
}
