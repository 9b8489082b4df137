import ArgumentParser
import NIOCore
import SkiffClient

/// `skiff config get|set <queue> [json]`.
struct ConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Show or replace a queue's settings.",
        subcommands: [Get.self, Set.self]
    )

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a queue's settings (JSON).")
        @Argument(help: "The queue.") var queue: String
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await runClient(options) { client in print(String(buffer: try await client.settings(of: queue))) }
        }
    }

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Replace a queue's settings with a JSON object (absent fields take their defaults).")
        @Argument(help: "The queue.") var queue: String
        @Argument(help: #"The settings, e.g. '{"maxReceiveCount": 5}'."#) var settings: String
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await runClient(options) { client in
                try await client.updateSettings(ByteBuffer(string: settings), of: queue)
                print(String(buffer: try await client.settings(of: queue)))
            }
        }
    }
}
