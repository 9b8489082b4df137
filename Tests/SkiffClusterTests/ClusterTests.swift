import Foundation
import HTTPTypes
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

    /// The cluster's replicas share the payload store and the secret that signs links: a body
    /// sent to one, received as a link from another, is served by a third.
    @Test func aLargeBodyTravelsAcrossReplicasAsBytesAndAsASignedLink() async throws {
        let queue = TestEnvironment.uniqueName("large")
        let body = "\"" + String(repeating: "L", count: 400_000) + "\""
        #expect(try await Cluster.replicas[0].post(queue, body).status == .created)
        #expect(try await Cluster.replicas[0].post(queue, body).status == .created)
        let bytes = try await Cluster.replicas[1].request(.get, "/api/\(queue)?timeout=0")
        #expect(bytes.text == body && bytes.headers[HTTPField.Name("Skiff-Payload")!] == "offloaded")
        let linked = try await Cluster.replicas[1].request(.get, "/api/\(queue)?timeout=0&visibility=30000&payload=url")
        #expect(linked.status == .ok && linked.headers[HTTPField.Name("Skiff-Payload")!] == "url")
        let link = try #require(try JSONSerialization.jsonObject(with: Data(linked.text.utf8)) as? [String: Any])
        let fetched = try await Cluster.replicas[2].request(.get, try #require(link["url"] as? String))
        #expect(fetched.status == .ok && fetched.text == body)
        let receipt = try #require(linked.headers[HTTPField.Name("Skiff-Receipt")!])
        #expect(try await Cluster.proxy.request(.delete, "/api/\(queue)/messages/\(receipt)").status == .noContent)
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
        print(
            "kill -9 run: acknowledged \(history.acknowledgedCount), duplicates from the killed replica \(history.duplicated.count), errors \(history.errors)")
    }

    /// A single Redis only: on a Redis Cluster the same fault is a primary killed and its replica
    /// promoted, which `make chaos-cluster-ci` runs with and without `REDIS_WAIT_REPLICAS`.
    @Test(.enabled(if: !Cluster.redisIsCluster))
    func restartingRedisWithAppendfsyncAlwaysLosesNoAcknowledgedMessage() async throws {
        let history = try await runWorkload(messages: 3_000, producers: 8, consumers: 12) { progress in
            guard progress.sent >= 1_000, !progress.faulted else { return nil }
            return { try Cluster.control("restart-redis") }
        }
        #expect(history.lost.isEmpty, "lost: \(history.lost.sorted().prefix(20))")
        #expect(history.unexpected.isEmpty)
        print("redis restart run: acknowledged \(history.acknowledgedCount), duplicates \(history.duplicated.count), errors \(history.errors)")
    }

    /// A worker process receives in acknowledged mode, is killed with SIGKILL mid-task, and never
    /// acks: the message stays invisible for the visibility timeout, then comes back to another
    /// consumer with its receive count raised.
    @Test func aWorkerKilledMidTaskGetsItsMessageRedeliveredAfterTheVisibilityTimeout() async throws {
        let queue = TestEnvironment.uniqueName("worker")
        #expect(try await Cluster.proxy.post(queue, #""task""#).status == .created)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnvironment.uniqueName("worker"))
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let body = directory.appendingPathComponent("body").path
        let worker = Process()
        worker.executableURL = URL(fileURLWithPath: "/bin/sh")
        // The worker takes the message, then "works" (sleeps) without acking.
        worker.arguments = [
            "-c",
            "curl -s -o '\(body)' 'http://127.0.0.1:\(Cluster.replicas[0].port)/api/\(queue)?timeout=5000&visibility=3000'; exec sleep 60",
        ]
        try worker.run()
        var received = false
        for _ in 0..<200 where !received {
            received = (try? String(contentsOfFile: body, encoding: .utf8)) == #""task""#
            if !received { try await Task.sleep(for: .milliseconds(25)) }
        }
        #expect(received)
        let killedAt = ContinuousClock.now
        kill(worker.processIdentifier, SIGKILL)
        worker.waitUntilExit()
        // Invisible to other consumers while its visibility timeout lasts.
        #expect(try await Cluster.replicas[1].get(queue, timeout: 0).status == .noContent)
        let redelivered = try await Cluster.replicas[2].request(.get, "/api/\(queue)?timeout=15000&visibility=5000")
        #expect(redelivered.status == .ok)
        #expect(redelivered.text == #""task""#)
        #expect(redelivered.headers[.init("Skiff-Receive-Count")!] == "2")
        #expect(ContinuousClock.now - killedAt >= .milliseconds(2500))
        let receipt = try #require(redelivered.headers[.init("Skiff-Receipt")!])
        #expect(try await Cluster.proxy.request(.delete, "/api/\(queue)/messages/\(receipt)").status == .noContent)
    }

    /// Cloud Run's shutdown: SIGTERM to a replica process with 100 consumers waiting and one
    /// response being read. Waits end with 204 at once, the response in flight is finished, no
    /// message is lost, and the process exits 0 within Cloud Run's 10 s.
    @Test func sigtermEndsWaitsWith204FinishesInFlightWorkAndExitsZero() async throws {
        let environment = ProcessInfo.processInfo.environment
        let binary = try #require(environment["SKIFF_BIN"])
        let port = try RedisServerProcess.freePort()
        let replica = Process()
        replica.executableURL = URL(fileURLWithPath: binary)
        replica.arguments = ["serve"]
        replica.environment = environment.merging(
            ["REDIS_URL": Cluster.redisURL, "HOST": "127.0.0.1", "PORT": "\(port)", "LOG_LEVEL": "warning"]
        ) { $1 }
        try replica.run()
        defer { if replica.isRunning { kill(replica.processIdentifier, SIGKILL) } }
        let probe = Probe(port: port)
        var ready = false
        for _ in 0..<200 where !ready {
            ready = (try? await probe.request(.get, "/ready", timeout: .seconds(1)).status) == .ok
            if !ready { try await Task.sleep(for: .milliseconds(50)) }
        }
        try #require(ready)

        let queue = TestEnvironment.uniqueName("sigterm")
        let waiting = (0..<100).map { _ in Task { try await probe.get(queue, timeout: 50_000).status } }
        // A large message on another queue, whose response is being written when SIGTERM lands.
        let large = TestEnvironment.uniqueName("sigterm-large")
        let body = "\"" + String(repeating: "y", count: 900_000) + "\""
        #expect(try await Cluster.proxy.post(large, body).status == .created)
        try await Task.sleep(for: .milliseconds(500))
        let inFlight = Task { try await probe.get(large, timeout: 5_000) }
        let signalled = ContinuousClock.now
        kill(replica.processIdentifier, SIGTERM)

        for waiter in waiting { #expect(try await waiter.value == .noContent) }
        let answeredIn = ContinuousClock.now - signalled
        // The large message was either delivered whole, or never taken (and is still in its queue).
        // (Its connection may also have been refused, if SIGTERM came before it was accepted.)
        let response = try? await inFlight.value
        if let response, response.status == .ok {
            #expect(response.text == body)
        } else {
            #expect(try await Cluster.proxy.get(large, timeout: 2_000).text == body)
        }
        while replica.isRunning, ContinuousClock.now - signalled < .seconds(15) { try await Task.sleep(for: .milliseconds(50)) }
        let exitedIn = ContinuousClock.now - signalled
        #expect(!replica.isRunning)
        #expect(replica.terminationStatus == 0)
        #expect(replica.terminationReason == .exit)
        #expect(exitedIn < .seconds(10))
        // Nothing was claimed for the waiters and left behind: the queue is empty and usable.
        #expect(try await Cluster.proxy.post(queue, #""after""#).status == .created)
        #expect(try await Cluster.proxy.get(queue, timeout: 2_000).text == #""after""#)
        print("SIGTERM: 100 waits answered in \(answeredIn), process exited 0 in \(exitedIn)")
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
