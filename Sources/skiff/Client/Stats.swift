import ArgumentParser
import Foundation
import SkiffClient

/// `skiff stats [queue]`: one queue's figures, or every queue's depths; `--watch` refreshes.
struct Stats: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show a queue's figures, or every queue's (a table; --watch refreshes).")

    @Argument(help: "The queue (all queues when absent).") var queue: String?
    @Flag(name: .long, help: "Refresh every --interval until interrupted.") var watch = false
    @Option(name: .long, help: "Seconds between refreshes with --watch.") var interval = 2
    @OptionGroup var options: ClientOptions

    func run() async throws {
        try await runClient(options) { client in
            repeat {
                let rows: [QueueStatistics]
                if let queue {
                    rows = [try await client.stats(of: queue)]
                } else {
                    rows = try await client.queues()
                }
                if watch, !options.json { print("\u{1B}[H\u{1B}[2J", terminator: "") }
                if options.json {
                    for row in rows {
                        print(
                            jsonLine([
                                ("queue", row.queue), ("ready", row.ready), ("inFlight", row.inFlight), ("delayed", row.delayed),
                                ("deadLetter", row.deadLetter), ("oldestAgeMs", row.oldestAgeMilliseconds),
                            ]))
                    }
                } else {
                    print(
                        table(
                            ["queue", "ready", "in flight", "delayed", "dead letters", "oldest"],
                            rows.map { row in
                                [
                                    row.queue, "\(row.ready)", "\(row.inFlight)", "\(row.delayed)", row.deadLetter.map(String.init) ?? "-",
                                    row.oldestAgeMilliseconds.map { "\($0) ms" } ?? "-",
                                ]
                            }))
                }
                fflush(nil)
                if watch { try await Task.sleep(for: .seconds(max(1, interval))) }
            } while watch
        }
    }
}
