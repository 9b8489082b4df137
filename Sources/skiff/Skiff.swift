import ArgumentParser

@main
struct Skiff: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "skiff",
        abstract: "A distributed message queue over HTTP, with queues shared through Redis.",
        discussion: "The client subcommands reach the server at SKIFF_URL (default http://localhost:8080) with SKIFF_API_KEY.",
        subcommands: [
            Serve.self, Healthcheck.self, Send.self, Receive.self, Ack.self, Peek.self, Stats.self, Queues.self, Purge.self, Redrive.self,
            ConfigCommand.self, WorkerCommand.self,
        ],
        defaultSubcommand: Serve.self
    )
}
