import ArgumentParser
import Foundation
import SkiffClient

/// `skiff peek <queue>`: the next messages without receiving them (admin scope).
struct Peek: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the next ready messages in receive order without receiving them (nothing changes; admin scope).")

    @Argument(help: "The queue (a dead-letter queue by its name, e.g. orders-dlq).") var queue: String
    @Option(name: .short, help: "How many messages, 1 to 100 (default 10).") var n = 10
    @OptionGroup var options: ClientOptions

    func validate() throws {
        if !(1...100).contains(n) { throw ValidationError("-n must be 1 to 100") }
    }

    func run() async throws {
        try await runClient(options) { client in
            let messages = try await client.peek(queue, count: n)
            for message in messages {
                if options.json {
                    print(
                        jsonLine(
                            [
                                ("id", message.id), ("receiveCount", message.receiveCount), ("priority", message.priority),
                                ("enqueuedAt", message.enqueuedAt), ("unreadable", message.unreadableBody),
                            ], rawBody: message.body))
                } else {
                    let body = message.unreadableBody.map { "(unreadable: \($0))" } ?? message.text
                    print("\(message.id)\tp\(message.priority)\treceived \(message.receiveCount)\t\(body)")
                }
            }
            if messages.isEmpty, !options.json { printError("skiff: \(queue) has no ready message") }
        }
    }
}
