import ArgumentParser
import SkiffClient

/// `skiff ack <queue> <receipt>...`.
struct Ack: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Ack messages by receipt (exit 3 if a receipt was unknown or stale).")

    @Argument(help: "The queue.") var queue: String
    @Argument(help: "Receipts, from recv --visibility.") var receipts: [String]
    @OptionGroup var options: ClientOptions

    func run() async throws {
        var stale: [String] = []
        try await runClient(options) { client in
            let result = try await client.ack(receipts, in: queue)
            stale = result.notFound
            print(
                options.json
                    ? jsonLine([("acked", result.acked), ("notFound", result.notFound)])
                    : "acked \(result.acked)" + (stale.isEmpty ? "" : "; unknown or stale: \(stale.joined(separator: " "))"))
        }
        if !stale.isEmpty { throw ClientExit.nothing }
    }
}
