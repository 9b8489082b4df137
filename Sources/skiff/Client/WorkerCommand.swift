import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import SkiffClient
import Synchronization

/// `skiff worker <queue> -- <command>`: runs the command once per message, the body on its stdin;
/// exit 0 acks the message, anything else nacks it (retried with the queue's backoff). The
/// Worker's rules hold: acknowledged receive, the visibility renewed while the command runs, a
/// graceful stop on SIGINT/SIGTERM that lets running commands finish.
struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Run a command per message (body on stdin): exit 0 acks, anything else nacks.",
        discussion: """
            The command gets SKIFF_QUEUE, SKIFF_MESSAGE_ID, SKIFF_RECEIVE_COUNT in its environment. One
            argument is run by /bin/sh -c; several are run as they are. Example:
              skiff worker orders --concurrency 4 -- 'jq .id >> processed.txt'
            """
    )

    @Argument(help: "The queue.") var queue: String
    @Option(name: .long, help: "Commands running at once.") var concurrency = 1
    @Option(name: .long, help: "Visibility timeout of each message, ms (renewed while the command runs).") var visibility = 30_000
    @Option(name: .long, help: "On SIGTERM, how long running commands may take to finish, s.") var shutdownDeadline = 25
    @Argument(parsing: .postTerminator, help: "The command, after --.") var command: [String] = []
    @OptionGroup var options: ClientOptions

    func validate() throws {
        if command.isEmpty { throw ValidationError("give the command after --, e.g. skiff worker orders -- ./handle.sh") }
        if concurrency < 1 { throw ValidationError("--concurrency must be 1 or more") }
    }

    func run() async throws {
        // A command that exits without reading its stdin must not kill the worker.
        signal(SIGPIPE, SIG_IGN)
        let argv = command.count == 1 ? ["/bin/sh", "-c", command[0]] : ["/usr/bin/env"] + command
        let queue = self.queue
        try await runClient(options) { client in
            var logger = Logger(label: "skiff.worker")
            logger.logLevel = .notice
            let worker = Worker(
                client: client,
                configuration: WorkerConfiguration(
                    queue: queue, concurrency: concurrency, batchSize: concurrency, visibilityTimeout: .milliseconds(visibility),
                    shutdownDeadline: .seconds(shutdownDeadline)),
                logger: logger
            ) { job in
                let status = try await Self.runCommand(argv, job: job, queue: queue)
                guard status == 0 else { throw CommandFailed(status: status) }
            }
            try await ServiceGroup(services: [worker], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger).run()
        }
    }

    struct CommandFailed: Error, CustomStringConvertible {
        let status: Int32
        var description: String { "the command exited with status \(status)" }
    }

    /// How long a cancelled command has between SIGTERM and SIGKILL.
    static let terminationGrace: Duration = .seconds(5)

    /// Runs the command with the message on its stdin; its exit status. A cancelled job (a lost
    /// lease, a shutdown past its deadline) terminates the command's process group (SIGTERM, then
    /// SIGKILL after ``terminationGrace``) and waits for it to end, then throws CancellationError:
    /// a message is never given back while its command still runs.
    static func runCommand(_ argv: [String], job: WorkerJob, queue: String) async throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: argv[0])
        process.arguments = Array(argv.dropFirst())
        var environment = ProcessInfo.processInfo.environment
        environment["SKIFF_QUEUE"] = queue
        environment["SKIFF_MESSAGE_ID"] = job.message.id
        environment["SKIFF_RECEIVE_COUNT"] = String(job.message.receiveCount)
        process.environment = environment
        let input = Pipe()
        process.standardInput = input
        let exit = ProcessExit()
        process.terminationHandler = { exit.finish($0.terminationStatus) }
        try process.run()
        // On a thread of its own: a body larger than the pipe blocks until the command reads it,
        // and a command that never reads it gets EPIPE, which is ignored.
        let (writer, body) = (input.fileHandleForWriting, Data(job.message.body.readableBytesView))
        Thread {
            try? writer.write(contentsOf: body)
            try? writer.close()
        }.start()
        let pid = process.processIdentifier
        let status = await withTaskCancellationHandler {
            await exit.wait()
        } onCancel: {
            // Foundation starts the command in a process group of its own: end all of it.
            kill(-pid, SIGTERM)
            kill(pid, SIGTERM)
            Task {
                try? await Task.sleep(for: terminationGrace)
                if process.isRunning {
                    kill(-pid, SIGKILL)
                    kill(pid, SIGKILL)
                }
            }
        }
        if Task.isCancelled { throw CancellationError() }
        return status
    }

    /// A process's exit status, awaited by one caller; not ended by the caller's cancellation.
    final class ProcessExit: Sendable {
        private let state = Mutex<(status: Int32?, waiter: CheckedContinuation<Int32, Never>?)>((nil, nil))

        func finish(_ status: Int32) {
            let waiter = state.withLock { state -> CheckedContinuation<Int32, Never>? in
                state.status = status
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume(returning: status)
        }

        func wait() async -> Int32 {
            await withCheckedContinuation { continuation in
                let done = state.withLock { state -> Int32? in
                    if let status = state.status { return status }
                    state.waiter = continuation
                    return nil
                }
                if let done { continuation.resume(returning: done) }
            }
        }
    }
}
