import HummingbirdTesting
import Logging
import ServiceLifecycle
import SkiffAPI
import SkiffTestSupport
import Synchronization
import Testing

@Suite("Graceful shutdown", .timeLimit(.minutes(2)))
struct GracefulShutdownTests {
    @Test(arguments: BackendKind.available)
    func waitingConsumersGet204AtOnceAndTheReplicaStops(kind: BackendKind) async throws {
        let port = try RedisServerProcess.freePort()
        let app = try makeApplication(kind) { $0.port = port }
        let group = ServiceGroup(configuration: .init(services: [app], logger: Logger(label: "shutdown-test")))
        let running = Task { try await group.run() }
        let probe = Probe(port: port)
        for _ in 0..<100 where !RedisServerProcess.canConnect(port: port) { try await Task.sleep(for: .milliseconds(20)) }

        let queue = TestEnvironment.uniqueName("shutdown")
        let statuses = LockedBox<[Int]>([])
        let waiters = Task {
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                for _ in 0..<100 {
                    tasks.addTask {
                        let response = try await probe.get(queue, timeout: 50_000)
                        statuses.value.withLock { $0.append(Int(response.status.code)) }
                    }
                }
                try await tasks.waitForAll()
            }
        }
        // All 100 must be waiting before the shutdown (opening them takes a while on a busy machine).
        for _ in 0..<400 {
            let health = try await probe.request(.get, "/health")
            if health.text.contains(#""waiters":"100""#) { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(try await probe.request(.get, "/health").text.contains(#""waiters":"100""#))
        let started = ContinuousClock.now
        await group.triggerGracefulShutdown()
        try await waiters.value
        try await running.value
        let elapsed = ContinuousClock.now - started
        #expect(statuses.value.withLock { $0 } == Array(repeating: 204, count: 100))
        // Far inside Cloud Run's 10 s, and nowhere near the 50 s the waits asked for.
        #expect(elapsed < .seconds(10))
    }
}
