import NIOCore
import NIOPosix
import SkiffRedis
import SkiffSupport
import Synchronization
import Testing

@testable import SkiffQueue

@Suite("Coalescer", .timeLimit(.minutes(1)))
struct CoalescerTests {
    /// Records every merged call: the members it got.
    final class Recorder: Sendable {
        let calls = Mutex<[[[Int]]]>([])
        var count: Int { calls.withLock { $0.count } }
    }

    struct Failure: Error, Equatable {
        let member: Int
    }

    /// Doubles every item; member `failing` (by its first item) gets an error of its own.
    private func doubling(_ recorder: Recorder, failing: Int? = nil) -> Coalescer<String, Int, Int> {
        Coalescer(maximumItems: 8) { _, members in
            recorder.calls.withLock { $0.append(members) }
            return members.map { items in
                if let failing, items.first == failing { return .failure(Failure(member: failing)) }
                return .success(items.map { $0 * 2 })
            }
        }
    }

    /// Starts `submissions` as tasks on one event loop, all scheduled before the first runs (as
    /// the requests of one read are), and returns their outcomes in order.
    private func concurrently(
        _ coalescer: Coalescer<String, Int, Int>,
        _ submissions: [[Int]],
        key: @escaping @Sendable (Int) -> String = { _ in "queue" }
    ) async -> [Result<[Int], any Error>] {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let executor = EventLoopTaskExecutor.shared(for: loop)
        let tasks = try! await loop.submit {
            submissions.enumerated().map { index, items in
                Task(executorPreference: executor) { () async -> Result<[Int], any Error> in
                    do { return .success(try await coalescer.submit(items, for: key(index))) } catch { return .failure(error) }
                }
            }
        }.get()
        var results: [Result<[Int], any Error>] = []
        for task in tasks { results.append(await task.value) }
        return results
    }

    @Test func concurrentCallersShareOneCallInArrivalOrder() async throws {
        let recorder = Recorder()
        let results = await concurrently(doubling(recorder), [[1], [2, 3], [4]])
        #expect(recorder.calls.withLock { $0 } == [[[1], [2, 3], [4]]])
        #expect(try results.map { try $0.get() } == [[2], [4, 6], [8]])
    }

    /// A shielded coalescer's merged call never sees a member's cancellation: the leader's task
    /// being cancelled neither cancels the call nor takes the other members' outputs with it.
    @Test func aCancelledLeaderOfAShieldedBatchStillGetsItsShare() async throws {
        let callSawCancellation = Mutex<Bool?>(nil)
        let coalescer = Coalescer<String, Int, Int>(maximumItems: 8, shielded: true) { _, members in
            try? await Task.sleep(for: .milliseconds(200))
            callSawCancellation.withLock { $0 = Task.isCancelled }
            return members.map { .success($0.map { $0 * 2 }) }
        }
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let executor = EventLoopTaskExecutor.shared(for: loop)
        let tasks = try await loop.submit {
            [1, 2].map { item in
                Task(executorPreference: executor) { try await coalescer.submit([item], for: "queue") }
            }
        }.get()
        try await Task.sleep(for: .milliseconds(50))
        tasks[0].cancel()  // the leader, inside the merged call
        #expect(try await tasks[0].value == [2])
        #expect(try await tasks[1].value == [4])
        #expect(callSawCancellation.withLock { $0 } == false)
    }

    @Test func differentKeysAreNotMerged() async throws {
        let recorder = Recorder()
        let results = await concurrently(doubling(recorder), [[1], [2], [3]], key: { "queue-\($0 % 2)" })
        #expect(recorder.count == 2)
        #expect(recorder.calls.withLock { $0 }.contains([[1], [3]]))
        #expect(try results.map { try $0.get() } == [[2], [4], [6]])
    }

    @Test func aFullBatchLeavesTheRestToTheirOwnCalls() async throws {
        let recorder = Recorder()
        // At most 8 items a call: [1..5] leads, [6,7,8] joins (8 items), [9] and [10] do not fit.
        let results = await concurrently(doubling(recorder), [[1, 2, 3, 4, 5], [6, 7, 8], [9], [10]])
        // The ones that did not fit went ahead alone while the batch waited for its leader.
        #expect(Set(recorder.calls.withLock { $0 }) == [[[1, 2, 3, 4, 5], [6, 7, 8]], [[9]], [[10]]])
        #expect(recorder.calls.withLock { $0 }.flatMap { $0 }.flatMap { $0 }.sorted() == Array(1...10))
        #expect(try results.map { try $0.get() } == [[2, 4, 6, 8, 10], [12, 14, 16], [18], [20]])
    }

    @Test func aCallerWithMoreThanABatchRunsAlone() async throws {
        let recorder = Recorder()
        let coalescer = doubling(recorder)
        #expect(try await coalescer.submit(Array(1...8), for: "queue") == Array(1...8).map { $0 * 2 })
        #expect(recorder.calls.withLock { $0 } == [[Array(1...8)]])
    }

    @Test func aFailureReachesOnlyTheMembersItBelongsTo() async throws {
        let recorder = Recorder()
        let results = await concurrently(doubling(recorder, failing: 2), [[1], [2], [3]])
        #expect(recorder.count == 1)
        #expect(try results[0].get() == [2])
        #expect(throws: Failure(member: 2)) { try results[1].get() }
        #expect(try results[2].get() == [6])
    }

    @Test func aCallThatThrowsFailsEveryMember() async throws {
        let coalescer = Coalescer<String, Int, Int>(maximumItems: 8) { _, members in
            members.map { _ in .failure(Failure(member: -1)) }
        }
        let results = await concurrently(coalescer, [[1], [2], [3]])
        for result in results { #expect(throws: Failure(member: -1)) { try result.get() } }
    }

    @Test func missingResultsFailTheirMembersInsteadOfHanging() async throws {
        let coalescer = Coalescer<String, Int, Int>(maximumItems: 8) { _, members in
            [.success(members[0])]
        }
        let results = await concurrently(coalescer, [[1], [2]])
        #expect(try results[0].get() == [1])
        #expect(throws: QueueError.self) { try results[1].get() }
    }

    @Test func sequentialCallersEachMakeTheirOwnCall() async throws {
        let recorder = Recorder()
        let coalescer = doubling(recorder)
        for value in 1...3 { #expect(try await coalescer.submit([value], for: "queue") == [value * 2]) }
        #expect(recorder.count == 3)
    }
}
