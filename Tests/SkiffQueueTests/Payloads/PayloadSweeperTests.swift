import Foundation
import Logging
import NIOCore
import SkiffQueue
import SkiffTestSupport
import Synchronization
import Testing

/// The sweep of objects past their retention (issue 23 item 3), on every payload store.
@Suite("Payload sweep", .timeLimit(.minutes(2)))
struct PayloadSweeperTests {
    @Test(arguments: PayloadStoreFixture.kinds)
    func anObjectLeftBetweenUploadAndEnqueueIsSweptOnceItsRetentionHasPassed(kind: PayloadStoreFixture.Kind) async throws {
        try await PayloadStoreFixture.with(kind) { fixture in
            // What a replica killed between the upload and the enqueue leaves: an object, no message.
            let orphan = try PayloadOffload.key(of: MessageID.make(offloaded: true))
            _ = try await fixture.store.put(key: orphan, body: TestBody(TestBody.random(1000)), size: 1000)
            // Not a message object: never the sweep's to delete.
            let other = try fixture.key("other")
            _ = try await fixture.store.put(key: other, body: TestBody(TestBody.random(10)), size: 10)
            let clock = TestDate()
            let sweeper = PayloadSweeper(store: fixture.store, retention: .seconds(3_600), interval: .seconds(60), logger: Logger(label: "sweep")) {
                clock.now()
            }
            #expect(try await sweeper.sweep() == 0)
            #expect(try await fixture.leftovers(orphan).count == 1)
            clock.advance(by: 3_601)
            #expect(try await sweeper.sweep() >= 1)
            #expect(try await fixture.leftovers(orphan).isEmpty)
            #expect(try await fixture.leftovers(other).count == 1)
            try await fixture.store.delete(key: other)
        }
    }
}

/// A wall clock tests move by hand.
final class TestDate: Sendable {
    private let offset = Mutex<TimeInterval>(0)
    func now() -> Date { Date().addingTimeInterval(offset.withLock { $0 }) }
    func advance(by seconds: TimeInterval) { offset.withLock { $0 += seconds } }
}
