import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import SkiffAPI
import SkiffTestSupport
import Testing

/// `REDIS_AUTH=iam`, as on Memorystore for Redis Cluster and for Valkey: the replica asks the
/// metadata server (`GCE_METADATA_HOST`, a fake one here) for its service account's token and
/// sends it as the password of every new Redis connection.
@Suite("Redis IAM authentication", .enabled(if: TestEnvironment.hasRedis), .timeLimit(.minutes(1)))
struct RedisIAMAuthenticationTests {
    @Test func aReplicaAuthenticatesWithTheMetadataServersTokenAndServes() async throws {
        let metadata = FakeMetadataServer()
        metadata.answer(with: .token("ya29.replica", expiresIn: 3599))
        let redis = try RedisServerProcess()
        try redis.start(extraArguments: ["--requirepass", "ya29.replica"])
        try await metadata.run { host in
            let configuration = try SkiffConfiguration.fromEnvironment([
                "REDIS_URL": redis.url, "REDIS_AUTH": "iam", "GCE_METADATA_HOST": host, "REDIS_COMMAND_TIMEOUT_MS": "5000",
            ])
            #expect(configuration.redisAuthentication == .googleIAM(metadataHost: host))
            try await buildApplication(configuration: configuration, logger: Logger(label: "test")).test(.router) { client in
                let queue = TestEnvironment.uniqueName("iam")
                let sent = try await client.execute(uri: "/api/\(queue)", method: .post, body: ByteBuffer(string: #"{"n":1}"#))
                #expect(sent.status == .created)
                let received = try await client.execute(uri: "/api/\(queue)?timeout=0", method: .get)
                #expect(received.status == .ok)
                #expect(String(buffer: received.body) == #"{"n":1}"#)
            }
            // Every connection of the replica (commands, subscriber) shared one token.
            #expect(metadata.requests == 1)
            #expect(metadata.refusedWithoutFlavor == 0)
        }
    }

    @Test func aReplicaWithoutATokenAnswers503AndStoresNothing() async throws {
        let metadata = FakeMetadataServer()
        metadata.answer(with: .failure(status: 404, body: "service account not found"))
        let redis = try RedisServerProcess()
        try redis.start(extraArguments: ["--requirepass", "ya29.replica"])
        try await metadata.run { host in
            let configuration = try SkiffConfiguration.fromEnvironment([
                "REDIS_URL": redis.url, "REDIS_AUTH": "iam", "GCE_METADATA_HOST": host, "REDIS_COMMAND_TIMEOUT_MS": "5000",
            ])
            try await buildApplication(configuration: configuration, logger: Logger(label: "test")).test(.router) { client in
                let sent = try await client.execute(uri: "/api/\(TestEnvironment.uniqueName("iam"))", method: .post, body: ByteBuffer(string: "1"))
                #expect(sent.status == .serviceUnavailable)
                #expect(String(buffer: sent.body).contains("\"error\""))
            }
        }
    }

    @Test func theSettingIsPasswordOrIAMAndIAMTakesNoPassword() throws {
        #expect(try SkiffConfiguration.fromEnvironment(["REDIS_URL": "redis://h"]).redisAuthentication == .password)
        #expect(
            try SkiffConfiguration.fromEnvironment(["REDIS_URL": "redis://127.0.0.1:6379", "REDIS_AUTH": "iam"]).redisAuthentication
                == .googleIAM(metadataHost: "metadata.google.internal"))
        #expect(
            try SkiffConfiguration.fromEnvironment(["REDIS_URL": "rediss+cluster://a:6379,b:6379", "REDIS_AUTH": "IAM"]).redisAuthentication
                == .googleIAM(metadataHost: "metadata.google.internal"))
        let conflicts: [[String: String]] = [
            ["REDIS_URL": "redis://:secret@h", "REDIS_AUTH": "iam"],
            ["REDIS_HOST": "h", "REDIS_PASSWORD": "secret", "REDIS_AUTH": "iam"],
            ["REDIS_AUTH": "iam"],
            ["REDIS_URL": "redis://h", "REDIS_AUTH": "token"],
            ["REDIS_URL": "rediss://h", "REDIS_AUTH": "iam", "GCE_METADATA_HOST": "http://169.254.169.254/"],
            ["REDIS_URL": "rediss://app:@h", "REDIS_AUTH": "iam"],
            ["REDIS_HOST": "h", "REDIS_TLS": "true", "REDIS_USERNAME": "app", "REDIS_AUTH": "iam"],
            // A token in clear text over a network.
            ["REDIS_URL": "redis://10.0.0.3", "REDIS_AUTH": "iam"],
            ["REDIS_URL": "redis+cluster://127.0.0.1:7000,10.0.0.3:7000", "REDIS_AUTH": "iam"],
        ]
        for environment in conflicts {
            #expect(throws: ConfigurationError.self, "\(environment)") { try SkiffConfiguration.fromEnvironment(environment) }
        }
    }
}
