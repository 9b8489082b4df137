import Foundation
import HummingbirdTesting
import SkiffTestSupport
import Synchronization
import Testing

/// Runs against the cluster `make test` starts (Redis with AOF `appendfsync always`, three
/// replicas, HAProxy), through the proxy and directly against replicas. Serialized: some tests
/// kill parts of the cluster.
@Suite("Cluster", .serialized, .enabled(if: Cluster.isRunning), .timeLimit(.minutes(5)))
struct ClusterTests {
    @Test func aPostOnOneReplicaReachesAConsumerWaitingOnAnotherWithin100ms() async throws {
        let (sender, receiver) = (Cluster.replicas[0], Cluster.replicas[1])
        var latencies: [Duration] = []
        for _ in 0..<7 {
            let queue = TestEnvironment.uniqueName("wake")
            async let waiting = receiver.get(queue, timeout: 20_000)
            try await Task.sleep(for: .milliseconds(300))
            let sent = ContinuousClock.now
            #expect(try await sender.post(queue, #""ping""#).status == .created)
            let response = try await waiting
            latencies.append(ContinuousClock.now - sent)
            #expect(response.status == .ok)
            #expect(response.text == #""ping""#)
        }
        let median = latencies.sorted()[latencies.count / 2]
        print("cross-replica wake-up (POST sent → waiting GET answered): median \(median), all \(latencies)")
        #expect(median < .milliseconds(100))
    }

    @Test func fifoHoldsThroughTheProxy() async throws {
        let queue = TestEnvironment.uniqueName("fifo")
        for index in 0..<200 { #expect(try await Cluster.proxy.post(queue, "\(index)").status == .created) }
        for index in 0..<200 {
            let response = try await Cluster.proxy.get(queue, timeout: 2_000)
            #expect(response.text == "\(index)")
        }
        #expect(try await Cluster.proxy.get(queue, timeout: 0).status == .noContent)
    }

    @Test func twentyProducersAndTwentyConsumersExchange10000MessagesExactlyOnce() async throws {
        let history = try await runWorkload(messages: 10_000, producers: 20, consumers: 20)
        #expect(history.acknowledgedCount == 10_000)
        #expect(history.lost.isEmpty)
        #expect(history.duplicated.isEmpty)
        #expect(history.unexpected.isEmpty)
    }

    @Test func killingAReplicaMidRunLosesNothing() async throws {
        let history = try await runWorkload(messages: 3_000, producers: 8, consumers: 12) { progress in
            guard progress.sent >= 1_000, !progress.faulted else { return nil }
            return {
                try Cluster.control("kill", "2")
                // The proxy keeps serving while replica 2 is down.
                for index in 0..<20 { #expect(try await Cluster.proxy.post(TestEnvironment.uniqueName("during"), "\(index)").status == .created) }
                try await Task.sleep(for: .seconds(1))
                try Cluster.control("start", "2")
            }
        }
        #expect(history.lost.isEmpty, "lost: \(history.lost.sorted().prefix(20))")
        #expect(history.unexpected.isEmpty)
        // The one window left: a response handed to the client just before the kill, whose
        // deletion never ran, comes back after the lease. Only the killed replica can cause it.
        #expect(history.duplicated.values.allSatisfy { $0.contains(1) }, "\(history.duplicated)")
        print("kill -9 run: acknowledged \(history.acknowledgedCount), duplicates from the killed replica \(history.duplicated.count), errors \(history.errors)")
    }

    @Test func restartingRedisWithAppendfsyncAlwaysLosesNoAcknowledgedMessage() async throws {
        let history = try await runWorkload(messages: 3_000, producers: 8, consumers: 12) { progress in
            guard progress.sent >= 1_000, !progress.faulted else { return nil }
            return { try Cluster.control("restart-redis") }
        }
        #expect(history.lost.isEmpty, "lost: \(history.lost.sorted().prefix(20))")
        #expect(history.unexpected.isEmpty)
        print("redis restart run: acknowledged \(history.acknowledgedCount), duplicates \(history.duplicated.count), errors \(history.errors)")
    }

    struct Progress {
        var sent: Int
        var faulted: Bool
    }

    /// Producers post unique bodies through the proxy and to replicas directly; consumers read
    /// directly from replicas (so each delivery is attributed to one) until every acknowledged
    /// message arrived, or nothing more comes after the claim lease. `fault` may return an
    /// action to run once, mid-run.
    private func runWorkload(
        messages: Int,
        producers: Int,
        consumers: Int,
        fault: @escaping @Sendable (Progress) -> (@Sendable () async throws -> Void)? = { _ in nil }
    ) async throws -> History {
        let queue = TestEnvironment.uniqueName("load")
        let history = History()
        let counters = Counters(producers: producers)
        let replicas = Cluster.replicas
        let targets = [Cluster.proxy] + replicas
        try await withThrowingTaskGroup(of: Void.self) { group in
            for producer in 0..<producers {
                group.addTask {
                    defer { counters.producing.subtract(1, ordering: .relaxed) }
                    for index in stride(from: producer, to: messages, by: producers) {
                        let body = #""m-\#(index)""#
                        let target = targets[index % targets.count]
                        do {
                            let response = try await target.post(queue, body)
                            if response.status == .created { history.acknowledged(body) } else { history.indeterminate(body) }
                        } catch {
                            history.indeterminate(body)
                            history.error()
                        }
                        let count = counters.sent.add(1, ordering: .relaxed).newValue
                        if let action = fault(Progress(sent: count, faulted: counters.faulted.load(ordering: .relaxed))),
                            counters.faulted.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged
                        {
                            try await action()
                        }
                    }
                }
            }
            for consumer in 0..<consumers {
                group.addTask {
                    let replica = consumer % replicas.count
                    var idleSince: ContinuousClock.Instant?
                    while true {
                        let done = counters.producing.load(ordering: .relaxed) == 0
                        if done, history.lost.isEmpty { return }
                        if done, let idle = idleSince, ContinuousClock.now - idle > Cluster.claimLease * 2 + .seconds(2) { return }
                        do {
                            let response = try await replicas[replica].get(queue, timeout: 500)
                            if response.status == .ok {
                                history.delivered(response.text, by: replica)
                                idleSince = nil
                            } else if idleSince == nil {
                                idleSince = .now
                            }
                        } catch {
                            history.error()
                            if idleSince == nil { idleSince = .now }
                            try await Task.sleep(for: .milliseconds(100))
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        return history
    }
}

/// Progress shared by a workload's tasks.
private final class Counters: Sendable {
    let sent = Atomic<Int>(0)
    let faulted = Atomic<Bool>(false)
    let producing: Atomic<Int>

    init(producers: Int) { producing = Atomic(producers) }
}
