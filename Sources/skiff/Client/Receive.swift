import ArgumentParser
import Foundation
import SkiffClient

/// `skiff recv <queue>`: prints messages as they come (the body, or JSON lines with `--json`).
struct Receive: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "recv",
        abstract: "Receive messages and print their bodies (exit 3 when none came within the wait).")

    @Argument(help: "The queue.") var queue: String
    @Option(name: .short, help: "Messages to receive at most (default 1; with --follow, no limit).") var n: Int?
    @Flag(name: .long, help: "Keep receiving until interrupted.") var follow = false
    @Option(name: .long, help: "Acknowledged mode: messages stay invisible this many milliseconds and print their receipt.")
    var visibility: Int?
    @Flag(name: .long, help: "With --visibility: ack each message once it is printed.") var ack = false
    @Option(name: .long, help: "How long to wait for a message, ms (default 10000).") var wait = 10_000
    @OptionGroup var options: ClientOptions

    func validate() throws {
        if ack, visibility == nil { throw ValidationError("--ack needs --visibility (a plain receive deletes as it hands out)") }
        if let n, n < 1 { throw ValidationError("-n must be 1 or more") }
    }

    func run() async throws {
        let limit = n ?? (follow ? Int.max : 1)
        var received = 0
        var refusedAck = false
        try await runClient(options) { client in
            while received < limit {
                let batch = try await client.receiveBatch(
                    from: queue, max: min(limit - received, 100), wait: .milliseconds(wait), visibility: .milliseconds(visibility))
                if batch.isEmpty {
                    if follow { continue }
                    break
                }
                for message in batch {
                    if options.json {
                        print(
                            jsonLine(
                                [
                                    ("id", message.id), ("receipt", message.receipt), ("receiveCount", message.receiveCount),
                                    ("priority", message.priority), ("enqueuedAt", message.enqueuedAt),
                                ], rawBody: message.body))
                    } else {
                        print(message.receipt.map { "\(message.text)\t\($0)" } ?? message.text)
                    }
                    fflush(nil)
                    if ack, let receipt = message.receipt, try await !client.ack(receipt, in: queue) {
                        printError("skiff: the ack of \(message.id) was refused: its visibility timeout ran out and it may be delivered again")
                        refusedAck = true
                    }
                    received += 1
                }
            }
        }
        if refusedAck { throw ClientExit.nothing }
        if received == 0 {
            if !options.json { printError("skiff: no message in \(queue) within \(wait) ms") }
            throw ClientExit.nothing
        }
    }
}
