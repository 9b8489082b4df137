import ArgumentParser
import SkiffClient

/// `skiff redrive <queue>`.
struct Redrive: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Move dead letters back into their queue.")

    @Argument(help: "The queue whose dead letters go back.") var queue: String
    @Option(name: .long, help: "Messages to move at most.") var max: Int?
    @Option(name: .long, help: "Messages per second at most.") var rate: Int?
    @OptionGroup var options: ClientOptions

    func run() async throws {
        try await runClient(options) { client in
            let moved = try await client.redrive(into: queue, max: max, rate: rate)
            print(options.json ? jsonLine([("moved", moved)]) : "moved \(moved) message\(moved == 1 ? "" : "s") back into \(queue)")
        }
    }
}
