import SkiffTestSupport
import Testing

/// Request smuggling straight at a live replica (issue 16), fast path on and off: every
/// ``SmugglingAttempt`` is refused or read as one request, a request behind `Connection: close`
/// never runs, and nothing runs without its answer on the same connection. The fast path answers
/// each attempt as the routes alone do. Serialized: two live replicas per attempt at a time is
/// enough load beside the other suites.
@Suite("Request smuggling against the fast path", .serialized, .timeLimit(.minutes(3)))
struct FastPathSmugglingTests {
    @Test(arguments: SmugglingAttempt.all)
    func aHiddenRequestNeverRunsUnanswered(attempt: SmugglingAttempt) async throws {
        var outcomes: [String] = []
        for fastPath in [true, false] {
            let app = try makeApplication(.memory) { $0.fastPath = fastPath }
            let seen = try await app.test(.live) { client in
                let port = try #require(client.port)
                let (queue, hiddenQueue) = (TestEnvironment.uniqueName("outer"), TestEnvironment.uniqueName("hidden"))
                let outcome = try await SmugglingOutcome.exchange(port: port, attempt.bytes(queue: queue, hiddenQueue: hiddenQueue))
                let hiddenRan = try await Probe(port: port).get(hiddenQueue, timeout: 0).status == .ok
                attempt.expectNoSmuggling(outcome, hiddenRan: hiddenRan, at: fastPath ? "fast path" : "routes only")
                return "\(outcome), hidden request \(hiddenRan ? "ran" : "did not run")"
            }
            outcomes.append(seen)
        }
        let comparison = "fast path: \(outcomes[0]); routes only: \(outcomes[1])"
        #expect(outcomes[0] == outcomes[1], "\(comparison)")
    }
}
