import NIOCore
import SkiffQueue
import SkiffTestSupport
import Testing

/// Messages deleted for good without an ack (purged, deleted with their queue, expired) leave the
/// ids of their stored bodies in the backend's graveyard, in the same step; messages that moved
/// (dead-lettered, redriven) and messages acked do not (an ack's object is deleted by its caller).
@Suite("Payload graveyard", .timeLimit(.minutes(2)))
struct PayloadGraveyardTests {
    /// Redis keys of its own: a replica of another test drains the graveyard under its prefix.
    static func fixture(_ kind: BackendKind) async throws -> BackendFixture {
        try await BackendFixture.make(kind, keyPrefix: TestEnvironment.uniqueName("graveyard"))
    }

    static func sendOffloaded(_ backend: any ClaimingBackend, _ count: Int, to queue: QueueName) async throws -> [String] {
        let ids = (0..<count).map { _ in MessageID.make(offloaded: true) }
        _ = try await backend.send(
            Array(repeating: ByteBuffer(string: "\"pointer\""), count: count), to: queue, options: SendOptions(messageIDs: ids))
        return ids
    }

    static func takeAll(_ backend: any ClaimingBackend) async throws -> Set<String> {
        var taken: Set<String> = []
        while true {
            let page = try await backend.takeBuriedPayloads(max: 2)
            taken.formUnion(page)
            if page.count < 2 { return taken }
        }
    }

    @Test(arguments: BackendKind.available)
    func purgeAndDeleteBuryTheBodiesOfTheMessagesTheyDeleteAndNoOthers(kind: BackendKind) async throws {
        let fixture = try await Self.fixture(kind)
        defer { fixture.close() }
        let backend = fixture.backend
        let queue = uniqueQueue("graves")
        var settings = try await backend.settings(of: queue)
        settings.maxReceiveCount = 1
        try await backend.updateSettings(settings, of: queue)
        let deadLetterQueue = settings.deadLetterQueue(of: queue)

        // One dead-lettered (it moves with its body), one acked, one in flight, two ready, one
        // delayed, one kept in Redis whole (not tagged).
        let failing = try await Self.sendOffloaded(backend, 1, to: queue)[0]
        let failed = try #require(try await backend.receiveAcknowledged(from: queue).first)
        #expect(failed.message.id == failing)
        #expect(try await backend.reject(failed.receipt, in: queue, delay: .zero, reason: "no"))
        let acked = try await Self.sendOffloaded(backend, 1, to: queue)[0]
        let ackedDelivery = try #require(try await backend.receiveAcknowledged(from: queue).first)
        #expect(try await backend.acknowledge([ackedDelivery.receipt], in: queue) == [true])
        #expect(ackedDelivery.message.id == acked)
        let inFlight = try await Self.sendOffloaded(backend, 1, to: queue)[0]
        #expect(try await backend.receiveAcknowledged(from: queue, visibility: .seconds(600)).first?.message.id == inFlight)
        let ready = try await Self.sendOffloaded(backend, 2, to: queue)
        let delayedID = MessageID.make(offloaded: true)
        _ = try await backend.send(ByteBuffer(string: "1"), to: queue, options: SendOptions(delay: .seconds(3600), messageIDs: [delayedID]))
        _ = try await backend.send("\"whole\"", to: queue)
        #expect(try await Self.takeAll(backend).isEmpty)

        #expect(try await backend.purge(queue) == 5)
        #expect(try await Self.takeAll(backend) == Set(ready + [inFlight, delayedID]))
        // The dead letter kept its body through the purge of the queue it left.
        #expect(try await backend.peek(deadLetterQueue, limit: 10, maximumBytes: 1 << 20).map(\.id) == [failing])

        // Back in the queue by a redrive, it goes with the queue's delete, not the dead-letter queue's.
        #expect(try await backend.redrive(into: queue, max: 10) == 1)
        #expect(try await backend.delete(deadLetterQueue))
        #expect(try await Self.takeAll(backend).isEmpty)
        #expect(try await backend.delete(queue))
        #expect(try await Self.takeAll(backend) == [failing])
    }

    /// On the memory backend, whose clock a test can move: an offloaded message that outlives its
    /// retention is buried when it is removed.
    @Test func anExpiredMessageIsBuried() async throws {
        let fixture = try await BackendFixture.make(.memory)
        defer { fixture.close() }
        let (backend, clock, queue) = (fixture.backend, try #require(fixture.wallClock), uniqueQueue("expiring"))
        let ids = try await Self.sendOffloaded(backend, 2, to: queue)
        _ = try await backend.send("\"whole\"", to: queue)
        clock.advance(by: QueueSettings().retentionMilliseconds + 1)
        #expect(try await backend.receive(from: queue, timeout: .zero) == nil)
        #expect(try await Self.takeAll(backend) == Set(ids))
    }
}
