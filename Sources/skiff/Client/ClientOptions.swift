import ArgumentParser
import Foundation
import NIOCore
import SkiffClient

/// What every client subcommand takes: where the server is, the key, and the output form.
struct ClientOptions: ParsableArguments {
    @Option(name: .long, help: "The server's URL (env SKIFF_URL, default http://localhost:8080).")
    var url: String?

    @Flag(name: .long, help: "Print JSON for scripts instead of text for people.")
    var json = false

    /// The key comes from the environment only (SKIFF_API_KEY): a command line is visible to
    /// every local user.
    func client() -> SkiffClient {
        let environment = ProcessInfo.processInfo.environment
        var configuration = SkiffClientConfiguration.fromEnvironment(environment)
        if let url { configuration = SkiffClientConfiguration(url: url, apiKey: configuration.apiKey) }
        return SkiffClient(configuration: configuration)
    }
}

/// The exit codes of the client subcommands (README, "Clients").
enum ClientExit {
    /// The server refused the request (its message is printed).
    static let refused = ExitCode(1)
    /// The server could not be reached, or did not answer in time.
    static let unreachable = ExitCode(2)
    /// `recv` (without `--follow`) got no message within its wait; `ack` found a stale receipt.
    static let nothing = ExitCode(3)
}

/// Runs a client command: errors are printed to stderr with what to do, and become exit codes.
func runClient(_ options: ClientOptions, _ body: (SkiffClient) async throws -> Void) async throws {
    let client = options.client()
    do {
        try await body(client)
        try? await client.shutdown()
    } catch let error as SkiffClientError {
        try? await client.shutdown()
        printError("skiff: \(error)")
        switch error.kind {
        case .connection, .timeout: throw ClientExit.unreachable
        case .server, .unexpectedAnswer, .invalidArgument: throw ClientExit.refused
        }
    } catch {
        try? await client.shutdown()
        throw error
    }
}

func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

/// One JSON line for scripts: the fields in order, `body` inserted as raw JSON.
func jsonLine(_ fields: [(String, Any?)], rawBody: ByteBuffer? = nil) -> String {
    var parts: [String] = []
    for (name, value) in fields {
        guard let value else { continue }
        let data = try? JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed, .withoutEscapingSlashes])
        let encoded = data.map { String(decoding: $0, as: UTF8.self) } ?? "null"
        parts.append("\"\(name)\":\(encoded)")
    }
    if let rawBody { parts.append("\"body\":\(String(buffer: rawBody))") }
    return "{" + parts.joined(separator: ",") + "}"
}

/// A table with aligned columns, for people.
func table(_ header: [String], _ rows: [[String]]) -> String {
    let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
    func line(_ cells: [String]) -> String {
        zip(cells, widths).enumerated().map { index, pair in
            index == 0 ? pair.0.padding(toLength: pair.1, withPad: " ", startingAt: 0) : String(repeating: " ", count: pair.1 - pair.0.count) + pair.0
        }.joined(separator: "  ")
    }
    return ([line(header)] + rows.map(line)).joined(separator: "\n")
}

extension Duration {
    static func milliseconds(_ value: Int?) -> Duration? { value.map { .milliseconds($0) } }
}
