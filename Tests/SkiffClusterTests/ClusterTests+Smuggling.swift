import SkiffTestSupport
import Testing

/// Request smuggling through the local HAProxy and straight at a replica (issue 16): every
/// ``SmugglingAttempt`` (conflicting `Content-Length` and `Transfer-Encoding`, obs-fold, bare LF,
/// a request behind `Connection: close`...) is refused or read as one request, and nothing runs
/// without its answer on the same connection. Part of the serialized cluster suite, so that no
/// attempt meets a replica another test has just killed.
extension ClusterTests {
    @Test(arguments: SmugglingAttempt.all)
    func aHiddenRequestNeverRunsUnansweredThroughTheProxyOrAtAReplica(attempt: SmugglingAttempt) async throws {
        for (place, target) in [("HAProxy", Cluster.proxy), ("replica 1", Cluster.replicas[0])] {
            let (queue, hiddenQueue) = (TestEnvironment.uniqueName("outer"), TestEnvironment.uniqueName("hidden"))
            let outcome = try await SmugglingOutcome.exchange(port: target.port, attempt.bytes(queue: queue, hiddenQueue: hiddenQueue))
            // Read on replica 1, which no other test of the suite stops.
            let hiddenRan = try await Cluster.replicas[0].get(hiddenQueue, timeout: 0).status == .ok
            let behindProxy = place == "HAProxy"
            attempt.expectNoSmuggling(outcome, hiddenRan: hiddenRan, at: place, behindProxy: behindProxy)
            print("smuggling attempt \(attempt.name) at \(place): \(outcome), hidden request \(hiddenRan ? "ran" : "did not run")")
        }
    }
}
