import ArgumentParser
import SkiffClient

/// `skiff purge <queue>`.
struct Purge: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Delete every message of a queue (its settings stay).")

    @Argument(help: "The queue.") var queue: String
    @OptionGroup var options: ClientOptions

    func run() async throws {
        try await runClient(options) { client in
            let purged = try await client.purge(queue)
            print(options.json ? jsonLine([("purged", purged)]) : "purged \(purged) message\(purged == 1 ? "" : "s") from \(queue)")
        }
    }
}
