import ArgumentParser
import Foundation
import NIOCore
import SkiffClient

/// `skiff send <queue> [json]`: one message, or every NDJSON line of stdin or `--file` in batches.
struct Send: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Send a message (the JSON argument), or one message per line of stdin or --file (NDJSON) in batches.")

    @Argument(help: "The queue.") var queue: String
    @Argument(help: "The message, one JSON value. Without it: NDJSON from --file or stdin.") var message: String?
    @Option(name: .long, help: "A file of NDJSON messages, one per line.") var file: String?
    @Option(name: .long, help: "Invisible for this many milliseconds.") var delay: Int?
    @Option(name: .long, help: "0 to 9, higher first.") var priority: Int?
    @Option(name: .long, help: "Idempotency key (one message only): a repeat within the dedup window stores nothing.") var key: String?
    @Option(name: .long, help: "Bulk: bytes per batch at most, below the server's MAX_BATCH_BYTES (default 8 MiB).")
    var batchBytes = 8 << 20
    @OptionGroup var options: ClientOptions

    static let batchSize = 1000

    func run() async throws {
        let sendOptions = SendOptions(delay: .milliseconds(delay), priority: priority, idempotencyKey: key)
        try await runClient(options) { client in
            if let message {
                let sent = try await client.send(json: message, to: queue, options: sendOptions)
                print(options.json ? jsonLine([("id", sent.id), ("duplicate", sent.isDuplicate)]) : "\(sent.isDuplicate ? "already sent" : "sent") \(sent.id)")
                return
            }
            guard let input = file.map({ fopen($0, "r") }) ?? fdopen(STDIN_FILENO, "r") else {
                printError("skiff: cannot read \(file ?? "stdin")")
                throw ClientExit.refused
            }
            defer { fclose(input) }
            let progress = !options.json && isatty(STDERR_FILENO) == 1
            var batch: [ByteBuffer] = []
            var (batchBytes, firstLine, lineNumber, sent) = (0, 1, 0, 0)
            func flush() async throws {
                guard !batch.isEmpty else { return }
                do {
                    // A batch is one idempotency key: a retried batch stores once.
                    sent += try await client.sendBatch(batch, to: queue, options: SendOptions(delay: sendOptions.delay, priority: priority)).count
                } catch {
                    // A batch is stored whole or not at all: say where to resume.
                    if progress { FileHandle.standardError.write(Data("\r".utf8)) }
                    printError("skiff: sent \(sent) messages; the batch of lines \(firstLine) to \(lineNumber) was not stored (resume from line \(firstLine))")
                    throw error
                }
                batch.removeAll(keepingCapacity: true)
                batchBytes = 0
                firstLine = lineNumber + 1
                if progress { FileHandle.standardError.write(Data("\rsent \(sent)".utf8)) }
            }
            var line: UnsafeMutablePointer<CChar>?
            var capacity = 0
            defer { free(line) }
            while getline(&line, &capacity, input) >= 0, let line {
                let text = String(cString: line)
                guard !text.allSatisfy(\.isWhitespace) else {
                    lineNumber += 1
                    if batch.isEmpty { firstLine = lineNumber + 1 }
                    continue
                }
                let message = ByteBuffer(string: text.hasSuffix("\n") ? String(text.dropLast()) : text)
                // Cut before this line when it would make the batch too large.
                if !batch.isEmpty, batchBytes + message.readableBytes + 1 > self.batchBytes { try await flush() }
                lineNumber += 1
                batch.append(message)
                batchBytes += message.readableBytes + 1
                if batch.count == Self.batchSize { try await flush() }
            }
            try await flush()
            if progress { FileHandle.standardError.write(Data("\r".utf8)) }
            print(options.json ? jsonLine([("sent", sent)]) : "sent \(sent) message\(sent == 1 ? "" : "s") to \(queue)")
        }
    }
}
