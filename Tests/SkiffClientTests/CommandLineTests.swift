import Foundation
import Hummingbird
import NIOCore
import SkiffClient
import SkiffTestSupport
import Testing

/// The `skiff` client subcommands through the real executable (built with the tests, in
/// `.build/debug`): send → recv round trips, `--json` parsed, bulk NDJSON, the worker, exit codes.
@Suite("skiff command line", .timeLimit(.minutes(2)))
struct CommandLineTests {
    static let executable = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../.build/debug/skiff").standardized

    struct Run {
        let status: Int32
        let output: String
        let errors: String
    }

    static func skiff(_ arguments: [String], url: String, input: String? = nil, terminateAfter: Duration? = nil) async throws -> Run {
        try #require(FileManager.default.isExecutableFile(atPath: executable.path), "build the executable first: swift build (\(executable.path))")
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["SKIFF_URL"] = url
        environment["SKIFF_API_KEY"] = nil
        process.environment = environment
        // Files, not pipes: reading a pipe blocks a thread of the cooperative pool, which the
        // in-process server needs (two cores, two threads).
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnvironment.uniqueName("skiff-cli"))
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let (outputPath, errorsPath) = (directory.appendingPathComponent("out"), directory.appendingPathComponent("err"))
        _ = FileManager.default.createFile(atPath: outputPath.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errorsPath.path, contents: nil)
        let stdin = Pipe()
        process.standardOutput = try FileHandle(forWritingTo: outputPath)
        process.standardError = try FileHandle(forWritingTo: errorsPath)
        process.standardInput = stdin
        let (exits, exited) = AsyncStream.makeStream(of: Int32.self)
        process.terminationHandler = { exited.yield($0.terminationStatus) }
        try process.run()
        if let input {
            // Written off the cooperative pool too: a large input fills the pipe until the child reads.
            let writer = stdin.fileHandleForWriting
            let thread = Thread {
                writer.write(Data(input.utf8))
                try? writer.close()
            }
            thread.start()
        } else {
            try stdin.fileHandleForWriting.close()
        }
        if let terminateAfter {
            try await Task.sleep(for: terminateAfter)
            process.terminate()
        }
        var iterator = exits.makeAsyncIterator()
        let status = await iterator.next() ?? -1
        return Run(
            status: status,
            output: try String(contentsOf: outputPath, encoding: .utf8),
            errors: try String(contentsOf: errorsPath, encoding: .utf8)
        )
    }

    static func object(_ line: Substring) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
    }

    @Test func sendAndReceiveRoundTripWithJSONOutputAndExitCodes() async throws {
        try await withServer(.memory) { client in
            let url = client.configuration.url
            let queue = TestEnvironment.uniqueName("cli")
            let sent = try await Self.skiff(["send", queue, #"{"order":17}"#, "--priority", "4", "--json"], url: url)
            #expect(sent.status == 0, "\(sent.errors)")
            let id = try #require(try Self.object(Substring(sent.output.trimmingCharacters(in: .newlines)))["id"] as? String)

            let received = try await Self.skiff(["recv", queue, "--json", "--visibility", "30000", "--ack"], url: url)
            #expect(received.status == 0, "\(received.errors)")
            let message = try Self.object(Substring(received.output.trimmingCharacters(in: .newlines)))
            #expect(message["id"] as? String == id && message["priority"] as? Int == 4 && message["receipt"] is String)
            #expect((message["body"] as? [String: Any])?["order"] as? Int == 17)
            #expect(try await client.stats(of: queue).totals["acked"] == 1, "--ack acked it")

            let none = try await Self.skiff(["recv", queue, "--wait", "0"], url: url)
            #expect(none.status == 3 && none.errors.contains("no message"))
            let bad = try await Self.skiff(["send", queue, "{nope"], url: url)
            #expect(bad.status == 1 && bad.errors.contains("400") && bad.errors.contains("JSON"))
            let usage = try await Self.skiff(["recv", queue, "--ack"], url: url)
            #expect(usage.status == 64 && usage.errors.contains("--visibility"))
        }
    }

    /// `skiff peek` and the client's `peek` show the next messages, bodies byte for byte, and
    /// change nothing: the receive after them is the first.
    @Test func peekShowsTheNextMessagesAndChangesNothing() async throws {
        try await withServer(.memory) { client in
            let url = client.configuration.url
            let queue = TestEnvironment.uniqueName("peek")
            for body in [#"{"a": 1.50}"#, "[2]", #""three""#] { _ = try await client.send(ByteBuffer(string: body), to: queue) }
            let peeked = try await client.peek(queue, count: 2)
            #expect(peeked.map(\.text) == [#"{"a": 1.50}"#, "[2]"])
            #expect(peeked.allSatisfy { $0.receipt == nil && $0.receiveCount == 0 })
            let run = try await Self.skiff(["peek", queue, "-n", "5", "--json"], url: url)
            #expect(run.status == 0, "\(run.errors)")
            let lines = run.output.split(separator: "\n")
            #expect(lines.count == 3)
            #expect(try lines.map { try Self.object($0)["receiveCount"] as? Int } == [0, 0, 0])
            let text = try await Self.skiff(["peek", queue, "-n", "1"], url: url)
            #expect(text.output.hasSuffix("\tp0\treceived 0\t{\"a\": 1.50}\n"), "\(text.output)")
            #expect(try await client.receive(from: queue)?.receiveCount == 1)
            let usage = try await Self.skiff(["peek", queue, "-n", "0"], url: url)
            #expect(usage.status == 64)
        }
    }

    /// A body the server keeps in its payload store and cannot read back comes as `null` with the
    /// reason: the client says so, and so do both outputs of `skiff peek`.
    @Test func aPeekedBodyTheServerCannotReadBackIsShownAsSuch() async throws {
        let reason = "the body of message m1 (object m/m1) is missing from the payload store"
        let document =
            #"{"queue":"q","messages":[{"id":"m1","enqueuedAt":"2026-12-06T00:00:00.000Z","receiveCount":3,"priority":0,"body":null,"unreadable":""#
            + reason + #""},{"id":"m2","enqueuedAt":"2026-12-06T00:00:00.000Z","receiveCount":0,"priority":0,"body":[2]}]}"#
        try await StubServer.with(respond: { _, _ in
            Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: document)))
        }) { _, url in
            let client = SkiffClient(configuration: SkiffClientConfiguration(url: url))
            defer { Task { try await client.shutdown() } }
            let peeked = try await client.peek("q", count: 2)
            #expect(peeked.map(\.unreadableBody) == [reason, nil])
            #expect(peeked.map(\.text) == ["null", "[2]"])
            let text = try await Self.skiff(["peek", "q", "-n", "2"], url: url)
            #expect(text.output.hasPrefix("m1\tp0\treceived 3\t(unreadable: \(reason))\n"), "\(text.output)")
            let json = try await Self.skiff(["peek", "q", "-n", "2", "--json"], url: url)
            let first = try Self.object(try #require(json.output.split(separator: "\n").first))
            #expect(first["unreadable"] as? String == reason && first["body"] is NSNull)
        }
    }

    @Test func anUnreachableServerExits2NamingTheURLAndTheSetting() async throws {
        let run = try await Self.skiff(["queues"], url: "http://127.0.0.1:1")
        #expect(run.status == 2)
        #expect(run.errors.contains("http://127.0.0.1:1") && run.errors.contains("SKIFF_URL"))
    }

    @Test func bulkNDJSONIsSentInBatchesAndCounted() async throws {
        try await withServer(.memory) { client in
            let queue = TestEnvironment.uniqueName("bulk")
            let lines = (0..<2500).map { #"{"n":\#($0)}"# }.joined(separator: "\n") + "\n\n"
            let run = try await Self.skiff(["send", queue], url: client.configuration.url, input: lines)
            #expect(run.status == 0 && run.output.contains("sent 2500 messages"), "\(run.output) \(run.errors)")
            #expect(try await client.stats(of: queue).ready == 2500)
            let stats = try await Self.skiff(["stats", queue], url: client.configuration.url)
            #expect(stats.output.contains(queue) && stats.output.contains("2500"))
            let first = try await Self.skiff(["recv", queue, "-n", "3"], url: client.configuration.url)
            #expect(first.output == "{\"n\":0}\n{\"n\":1}\n{\"n\":2}\n")
        }
    }

    /// Bulk sends cut batches by bytes too, and a batch the server refuses says where to resume;
    /// the batches before it are stored.
    @Test func bulkBatchesAreCutByBytesAndAFailureSaysWhereToResume() async throws {
        try await withServer(.memory) { client in
            let queue = TestEnvironment.uniqueName("bulk-bytes")
            var lines = (1...30).map { #"{"n":\#($0),"pad":"\#(String(repeating: "x", count: 40))"}"# }
            lines[24] = "{not json"
            let run = try await Self.skiff(["send", queue, "--batch-bytes", "300"], url: client.configuration.url, input: lines.joined(separator: "\n"))
            #expect(run.status == 1)
            // About 60 bytes a line, 300 a batch: 5 lines per batch; line 25 is in the batch 21-25.
            #expect(run.errors.contains("sent 20 messages") && run.errors.contains("resume from line 21"), "\(run.errors)")
            #expect(try await client.stats(of: queue).ready == 20)
        }
    }

    /// `skiff worker` runs the command per message: exit 0 acks, anything else nacks; SIGTERM
    /// stops it gracefully.
    @Test func theWorkerRunsACommandPerMessageAndSettlesByItsExitStatus() async throws {
        try await withServer(.memory) { client in
            let queue = TestEnvironment.uniqueName("cmd")
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnvironment.uniqueName("worker"))
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: directory) }
            // A body larger than a pipe holds, for a command that never reads it: no crash, acked.
            let large = "\"" + String(repeating: "b", count: 200_000) + "\""
            let ids = try await client.sendBatch([ByteBuffer(string: #""good""#), ByteBuffer(string: #""bad""#), ByteBuffer(string: large)], to: queue)
            try await client.updateSettings(ByteBuffer(string: #"{"maxReceiveCount":1}"#), of: queue)
            let log = directory.appendingPathComponent("seen").path
            let script = #"[ "$SKIFF_MESSAGE_ID" = \#(ids[2]) ] && exit 0; body=$(cat); echo "$body $SKIFF_RECEIVE_COUNT" >> \#(log); [ "$body" = '"good"' ]"#
            let worker = Task {
                try await Self.skiff(["worker", queue, "--concurrency", "2", "--", script], url: client.configuration.url, terminateAfter: .seconds(3))
            }
            let stats = try await eventually(until: { $0.totals["acked"] == 2 && $0.deadLetter == 1 }) { try await client.stats(of: queue) }
            #expect(stats.totals["acked"] == 2 && stats.deadLetter == 1, "the failing command's message was nacked into the dead letters")
            let run = try await worker.value
            #expect(run.status == 0, "a SIGTERM is a graceful stop: \(run.errors)")
            let seen = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").sorted()
            #expect(seen == [#""bad" 1"#, #""good" 1"#])
        }
    }
}
