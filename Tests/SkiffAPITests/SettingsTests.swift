import Configuration
import Foundation
import SkiffRedis
import Testing

@testable import SkiffAPI

/// The settings are declared once (``Settings``) and read alike from flags, the environment and
/// a JSON file; the README documents exactly them.
@Suite("Settings")
struct SettingsTests {
    @Test func everySettingsEnvironmentVariableIsTheOneSwiftConfigurationReads() {
        for setting in Settings.all {
            let provider = EnvironmentVariablesProvider(environmentVariables: [setting.environmentVariable: "7"])
            #expect(SettingsReader(ConfigReader(provider: provider)).text(setting) == "7", "\(setting.key) as \(setting.environmentVariable)")
        }
        #expect(Settings.redisCommandTimeout.environmentVariable == "REDIS_COMMAND_TIMEOUT_MS")
        #expect(Settings.redisTLSCAFile.environmentVariable == "REDIS_TLS_CA_FILE")
        #expect(Settings.apiKeysFile.environmentVariable == "SKIFF_API_KEYS_FILE")
        #expect(Settings.redisCommandTimeout.flag == "--redis-command-timeout-ms")
        #expect(Set(Settings.all.map(\.environmentVariable)).count == Settings.all.count)
    }

    @Test func aFlagWinsOverTheEnvironmentWhichWinsOverTheFile() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("skiff-settings-\(UInt32.random(in: 0...UInt32.max)).json").path
        try Data(#"{"port": 9001, "maxQueues": 12, "fastPath": false, "redis": {"url": "redis://file-host:7000", "commandTimeoutMs": 250}}"#.utf8)
            .write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let flags = InMemoryProvider(name: "flags", values: try Settings.parseFlags(["--port", "9003", "--replica-id=r1"]))
        let environment = EnvironmentVariablesProvider(environmentVariables: ["PORT": "9002", "MAX_QUEUES": "13", "REPLICA_ID": "env"])
        let file = try await FileProvider<JSONSnapshot>(filePath: .init(path))
        let configuration = try SkiffConfiguration(reading: ConfigReader(providers: [flags, environment, file]))
        #expect(configuration.port == 9003)
        #expect(configuration.replicaID == "r1")
        #expect(configuration.maximumQueues == 13)
        #expect(!configuration.fastPath)
        #expect(configuration.redis?.host == "file-host")
        #expect(configuration.redis?.port == 7000)
        #expect(configuration.redis?.commandTimeout == .milliseconds(250))
    }

    @Test func flagsAreKnownSettingsAndNeverSecrets() throws {
        let values = try Settings.parseFlags(["--max-message-bytes", "10", "--redis-url=redis://h:1"])
        #expect(values.count == 2)
        for bad in [["--prot", "1"], ["--skiff-api-keys", "[]"], ["--redis-password", "x"], ["--port"], ["8080"]] {
            #expect(throws: ConfigurationError.self, "\(bad)") { try Settings.parseFlags(bad) }
        }
    }

    @Test func aValueOutOfBoundsNamesItsVariable() {
        #expect {
            try SkiffConfiguration.fromEnvironment(["MAX_QUEUES": "0"])
        } throws: { error in
            (error as? ConfigurationError)?.description == "MAX_QUEUES must be an integer from 1 to 10000000, got '0'"
        }
        #expect(throws: ConfigurationError.self) { try SkiffConfiguration.fromEnvironment(["REDIS_TLS": "maybe", "REDIS_HOST": "h"]) }
        #expect(throws: ConfigurationError.self) { try SkiffConfiguration.fromEnvironment(["REDIS_URL": "http://h"]) }
    }

    @Test func redisIsReadFromItsURLOrItsSeparateVariables() throws {
        #expect(try SkiffConfiguration.fromEnvironment([:]).redis == nil)
        let separate = try #require(
            try SkiffConfiguration.fromEnvironment([
                "REDIS_HOST": "10.0.0.3", "REDIS_PORT": "6380", "REDIS_PASSWORD": "pw", "REDIS_TLS": "true", "REDIS_TLS_SKIP_HOSTNAME_VERIFICATION": "true",
            ]).redis
        )
        #expect(separate.host == "10.0.0.3" && separate.port == 6380 && separate.password == "pw" && separate.tls && separate.tlsSkipHostnameVerification)
        let url = try #require(try SkiffConfiguration.fromEnvironment(["REDIS_URL": "rediss://u:p@h:1/2", "REDIS_PASSWORD": "ignored"]).redis)
        #expect(url.username == "u" && url.password == "p" && url.database == 2 && url.tls)
        let urlWithoutPassword = try #require(try SkiffConfiguration.fromEnvironment(["REDIS_URL": "redis://h:1", "REDIS_PASSWORD": "pw"]).redis)
        #expect(urlWithoutPassword.password == "pw")
    }

    /// README's configuration table lists every setting, and nothing else.
    @Test func theReadmeDocumentsExactlyTheseSettings() throws {
        let readme = try String(contentsOfFile: Self.repositoryRoot + "/README.md", encoding: .utf8)
        let section = try #require(readme.components(separatedBy: "## Configuration").dropFirst().first?.components(separatedBy: "\n## ").first)
        var documented: Set<String> = []
        for line in section.split(separator: "\n") where line.hasPrefix("| `") {
            let firstColumn = line.dropFirst(2).prefix { $0 != "|" }
            for match in firstColumn.matches(of: /`([A-Z][A-Z0-9_]*)`/) { documented.insert(String(match.output.1)) }
        }
        #expect(documented == Set(Settings.all.map(\.environmentVariable)))
    }

    static var repositoryRoot: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    }
}
