import Foundation
import SkiffTestSupport
import Synchronization

/// The cluster `make test` started with `scripts/cluster.sh up`, and control over its parts.
enum Cluster {
    static var isRunning: Bool { ProcessInfo.processInfo.environment["SKIFF_CLUSTER_PROXY_PORT"] != nil }

    static var proxy: Probe { Probe(port: Int(environment("SKIFF_CLUSTER_PROXY_PORT"))!) }

    static var replicas: [Probe] {
        environment("SKIFF_CLUSTER_REPLICA_PORTS").split(separator: ",").map { Probe(port: Int($0)!) }
    }

    /// The Redis the replicas use: a single Redis, or a Redis Cluster (`redis+cluster://`) when
    /// `make test` runs the suite again with `REDIS_MODE=cluster`.
    static var redisURL: String { environment("SKIFF_CLUSTER_REDIS_URL") }

    static var redisIsCluster: Bool { redisURL.hasPrefix("redis+cluster://") }

    /// How long before a dead replica's claims come back.
    static var claimLease: Duration { .milliseconds(Int(environment("SKIFF_CLUSTER_CLAIM_LEASE_MS"))!) }

    /// Runs `scripts/cluster.sh <arguments>` and waits for it.
    static func control(_ arguments: String...) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: environment("SKIFF_CLUSTER_SCRIPT"))
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw CocoaError(.executableLoad, userInfo: [NSLocalizedDescriptionKey: "cluster.sh \(arguments) exited \(process.terminationStatus)"])
        }
    }

    private static func environment(_ name: String) -> String {
        guard let value = ProcessInfo.processInfo.environment[name] else { fatalError("\(name) is not set: run through `make test`") }
        return value
    }
}

/// What a workload saw: which sends were acknowledged and what each consumer received.
final class History: Sendable {
    private struct State {
        var acknowledged: Set<String> = []
        var indeterminate: Set<String> = []
        var deliveries: [String: [Int]] = [:]
        var errors = 0
    }

    private let state = Mutex(State())

    func acknowledged(_ body: String) { state.withLock { _ = $0.acknowledged.insert(body) } }
    func indeterminate(_ body: String) { state.withLock { _ = $0.indeterminate.insert(body) } }
    func delivered(_ body: String, by replica: Int) { state.withLock { $0.deliveries[body, default: []].append(replica) } }
    func error() { state.withLock { $0.errors += 1 } }

    var deliveredCount: Int { state.withLock { $0.deliveries.count } }
    var errors: Int { state.withLock { $0.errors } }

    /// Acknowledged sends never delivered.
    var lost: Set<String> { state.withLock { $0.acknowledged.subtracting($0.deliveries.keys) } }
    /// Messages delivered more than once, with the replicas that delivered them.
    var duplicated: [String: [Int]] { state.withLock { $0.deliveries.filter { $0.value.count > 1 } } }
    /// Deliveries of bodies that were never sent.
    var unexpected: Set<String> {
        state.withLock { Set($0.deliveries.keys).subtracting($0.acknowledged).subtracting($0.indeterminate) }
    }
    var acknowledgedCount: Int { state.withLock { $0.acknowledged.count } }
}
