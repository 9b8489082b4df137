import ArgumentParser
import SkiffClient

/// `skiff queues`: the queues with their depths.
struct Queues: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the queues with their depths.")

    @OptionGroup var options: ClientOptions

    func run() async throws {
        try await runClient(options) { client in
            let queues = try await client.queues()
            if options.json {
                for queue in queues {
                    print(jsonLine([("queue", queue.queue), ("ready", queue.ready), ("inFlight", queue.inFlight), ("delayed", queue.delayed)]))
                }
            } else {
                print(table(["queue", "ready", "in flight", "delayed"], queues.map { [$0.queue, "\($0.ready)", "\($0.inFlight)", "\($0.delayed)"] }))
            }
        }
    }
}
