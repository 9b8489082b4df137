import Foundation
import SkiffAPI
import Testing

/// `SKIFF_API_KEYS`, `SKIFF_API_KEYS_FILE`, `METRICS_REQUIRE_AUTH`, `METRICS_PORT`, `RATE_LIMIT_*`, `ACCESS_LOG`.
@Suite("Access configuration")
struct AccessConfigurationTests {
    let secret = "k3y-0123456789abcdef"

    @Test func defaultsAreOpenUnlimitedWithProtectedMetrics() throws {
        let configuration = try SkiffConfiguration.fromEnvironment([:])
        #expect(configuration.apiKeys.isEmpty)
        #expect(configuration.metricsRequireAuth)
        #expect(configuration.rateLimit == nil)
        #expect(configuration.accessLog)
    }

    @Test func readsInlineKeys() throws {
        let document =
            #"[{"key": "\#(secret)", "scopes": ["send", "receive"], "queuePrefix": "orders-"}, {"key": "\#(secret)-2", "scopes": ["admin"], "name": "ops"}]"#
        let configuration = try SkiffConfiguration.fromEnvironment(["SKIFF_API_KEYS": document])
        #expect(
            configuration.apiKeys.map(\.grant) == [
                AccessGrant(keyName: "#0", scopes: [.send, .receive], queuePrefix: "orders-"),
                AccessGrant(keyName: "ops", scopes: [.admin], queuePrefix: nil),
            ])
    }

    @Test func readsKeysFromAFile() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("skiff-keys-\(UUID().uuidString).json").path
        try #"[{"key": "\#(secret)", "scopes": ["receive"]}]"#.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let configuration = try SkiffConfiguration.fromEnvironment(["SKIFF_API_KEYS_FILE": path])
        #expect(configuration.apiKeys.map(\.grant.scopes) == [[.receive]])

        let missing = try #require(throws: ConfigurationError.self) {
            try SkiffConfiguration.fromEnvironment(["SKIFF_API_KEYS_FILE": path + ".missing"])
        }
        #expect(missing.description.contains("SKIFF_API_KEYS_FILE"))
        #expect(missing.description.contains(path + ".missing"))
    }

    @Test(arguments: [
        ("{", "not valid JSON"),
        (#"{"key": "x"}"#, "JSON array"),
        ("[]", "holds no keys"),
        (#"["abc"]"#, "[0] must be an object"),
        (#"[{"scopes": ["send"]}]"#, "[0].key"),
        (#"[{"key": "short", "scopes": ["send"]}]"#, "[0].key must be 16"),
        (#"[{"key": "has space 0123456789", "scopes": ["send"]}]"#, "[0].key must be printable"),
        (#"[{"key": "k3y-0123456789abcdef", "scopes": ["send"]}, {"key": "k3y-0123456789abcdef", "scopes": ["send"]}]"#, "[1].key repeats"),
        (#"[{"key": "k3y-0123456789abcdef"}]"#, "[0].scopes"),
        (#"[{"key": "k3y-0123456789abcdef", "scopes": []}]"#, "[0].scopes"),
        (#"[{"key": "k3y-0123456789abcdef", "scopes": ["send"]}, {"key": "k3y-0123456789abcdeF", "scopes": ["write"]}]"#, "[1].scopes"),
        (#"[{"key": "k3y-0123456789abcdef", "scopes": ["send"], "queuePrefix": "a:b"}]"#, "[0].queuePrefix"),
        (#"[{"key": "k3y-0123456789abcdef", "scopes": ["send"], "queuePrefix": 7}]"#, "[0].queuePrefix"),
        (#"[{"key": "k3y-0123456789abcdef", "scopes": ["send"], "queue_prefix": "a-"}]"#, #"[0] has an unknown field "queue_prefix""#),
        (#"[{"key": "k3y-0123456789abcdef", "scopes": ["send"], "name": ""}]"#, "[0].name"),
    ])
    func aBadKeysDocumentNamesTheEntryAndField(document: String, expected: String) throws {
        let error = try #require(throws: ConfigurationError.self) {
            try SkiffConfiguration.fromEnvironment(["SKIFF_API_KEYS": document])
        }
        #expect(error.description.hasPrefix("SKIFF_API_KEYS: "))
        #expect(error.description.contains(expected), "\(error.description)")
        #expect(!error.description.contains("k3y-0123456789abcde"), "errors never repeat a secret")
    }

    @Test func bothKeySourcesAtOnceIsAnError() throws {
        let error = try #require(throws: ConfigurationError.self) {
            try SkiffConfiguration.fromEnvironment(["SKIFF_API_KEYS": "[]", "SKIFF_API_KEYS_FILE": "/x"])
        }
        #expect(error.description.contains("not both"))
    }

    @Test func readsRateLimitAndSwitches() throws {
        let configuration = try SkiffConfiguration.fromEnvironment([
            "RATE_LIMIT_PER_SECOND": "2.5", "RATE_LIMIT_BURST": "10", "METRICS_REQUIRE_AUTH": "false", "ACCESS_LOG": "off",
        ])
        #expect(configuration.rateLimit == RateLimitSettings(requestsPerSecond: 2.5, burst: 10))
        #expect(!configuration.metricsRequireAuth)
        #expect(!configuration.accessLog)
        #expect(try SkiffConfiguration.fromEnvironment(["METRICS_PORT": "9464"]).metricsPort == 9464)
        #expect(try SkiffConfiguration.fromEnvironment([:]).metricsPort == nil)
        #expect(try SkiffConfiguration.fromEnvironment(["RATE_LIMIT_PER_SECOND": "2.5"]).rateLimit?.burst == 3)
        #expect(try SkiffConfiguration.fromEnvironment(["RATE_LIMIT_PER_SECOND": "0"]).rateLimit == nil)
        for environment in [
            ["RATE_LIMIT_PER_SECOND": "-1"], ["RATE_LIMIT_PER_SECOND": "fast"], ["RATE_LIMIT_BURST": "5"],
            ["RATE_LIMIT_PER_SECOND": "1", "RATE_LIMIT_BURST": "0"], ["METRICS_REQUIRE_AUTH": "maybe"],
            ["METRICS_PORT": "0"], ["METRICS_PORT": "70000"], ["METRICS_PORT": "8080"], ["METRICS_PORT": "9000", "PORT": "9000"],
        ] {
            #expect(throws: ConfigurationError.self, "\(environment)") { try SkiffConfiguration.fromEnvironment(environment) }
        }
    }
}
