import NIOCore
import SkiffQueue
import SkiffTestSupport
import Testing

/// A message's trace context stays with it through every move a backend makes (in Redis, the
/// version 3 envelope every script rewrites as it read it).
@Suite("Trace context through the lifecycle", .timeLimit(.minutes(2)))
struct TraceContextContractTests {
    static let trace = MessageTraceContext(traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", tracestate: "k=a|b,x=1")!

    @Test(arguments: BackendKind.available)
    func theContextStaysWithItsMessageThroughEveryMove(kind: BackendKind) async throws {
        // A short claim lease: an auto-acknowledged claim never completed comes back by recovery.
        let fixture = try await BackendFixture.make(kind, claimLease: .seconds(1), sweepInterval: .milliseconds(250))
        defer { fixture.close() }
        let backend = fixture.backend
        let queue = uniqueQueue("traced")
        var settings = try await backend.settings(of: queue)
        // Receives: released (taken back), nacked, recovered, nacked into the dead-letter queue.
        settings.maxReceiveCount = 3
        try await backend.updateSettings(settings, of: queue)
        let traced = SendOptions(traceContext: Self.trace)

        let sent = try await backend.send("{\"n\":1}", to: queue, options: traced)
        _ = try await backend.send("2", to: queue, options: SendOptions())
        // Read without moving: peek and lookup.
        let peeked = try await backend.peek(queue, limit: 10, maximumBytes: 1 << 20)
        #expect(peeked.map(\.traceContext) == [Self.trace, nil])
        guard case .found(let found, _) = try await backend.lookUp(sent.id, in: queue) else {
            Issue.record("not found")
            return
        }
        #expect(found.traceContext == Self.trace && String(buffer: found.body) == "{\"n\":1}")

        // Claimed and released (the consumer never got it): back at the head, context kept.
        let first = try #require(try await backend.receiveAcknowledged(from: queue).first)
        #expect(first.message.traceContext == Self.trace && String(buffer: first.message.body) == "{\"n\":1}")
        try await backend.release([first])
        // Claimed and nacked: the retry keeps it.
        let again = try #require(try await backend.receiveAcknowledged(from: queue).first)
        #expect(again.message.id == sent.id && again.message.traceContext == Self.trace)
        #expect(try await backend.reject(again.receipt, in: queue, delay: .zero, reason: "once"))
        // Auto-acknowledged and never completed: recovered after the claim lease.
        let lost = try #require(try await backend.receive(from: queue, max: 1, timeout: .zero, mode: .autoAcknowledge).first)
        #expect(lost.message.id == sent.id && lost.message.traceContext == Self.trace)
        let plain = try #require(try await backend.receiveAcknowledged(from: queue).first)
        #expect(String(buffer: plain.message.body) == "2" && plain.message.traceContext == nil)
        #expect(try await backend.acknowledge([plain.receipt], in: queue) == [true])
        let recovered = try #require(try await backend.receiveAcknowledged(from: queue, timeout: .seconds(20)).first)
        #expect(recovered.message.id == sent.id && recovered.message.traceContext == Self.trace)
        // Past maxReceiveCount: the dead letter keeps it, and so does the redriven message.
        #expect(try await backend.reject(recovered.receipt, in: queue, delay: .zero, reason: "twice"))
        let deadLetterQueue = settings.deadLetterQueue(of: queue)
        let dead = try await backend.peek(deadLetterQueue, limit: 10, maximumBytes: 1 << 20)
        #expect(dead.map(\.id) == [sent.id] && dead.first?.traceContext == Self.trace)
        #expect(try await backend.redrive(into: queue, max: 10) == 1)
        let redriven = try #require(try await backend.receiveAcknowledged(from: queue).first)
        #expect(redriven.message.id == sent.id && redriven.message.traceContext == Self.trace)
        #expect(String(buffer: redriven.message.body) == "{\"n\":1}")

        // Delayed, then due; a batch of a send keeps one context for each message.
        _ = try await backend.send(ByteBuffer(string: "3"), to: queue, options: SendOptions(delay: .milliseconds(100), traceContext: Self.trace))
        let due = try #require(try await backend.receiveAcknowledged(from: queue, timeout: .seconds(10)).first)
        #expect(String(buffer: due.message.body) == "3" && due.message.traceContext == Self.trace)
        _ = try await backend.send(["4", "5", "6"].map { ByteBuffer(string: $0) }, to: queue, options: traced)
        let batch = try await backend.receiveAcknowledged(from: queue, max: 10)
        #expect(batch.map { String(buffer: $0.message.body) } == ["4", "5", "6"])
        #expect(batch.allSatisfy { $0.message.traceContext == Self.trace })
        try await backend.delete(queue)
        try await backend.delete(deadLetterQueue)
    }
}
