public import Configuration
import Foundation

/// One setting of a replica. Its key names it everywhere, through swift-configuration's rules: the
/// environment variable is the key in upper snake case (`redis.commandTimeoutMs` is
/// `REDIS_COMMAND_TIMEOUT_MS`), the `skiff serve` flag in kebab case (`--redis-command-timeout-ms`),
/// and a JSON settings file nests it (`{"redis": {"commandTimeoutMs": 800}}`).
public struct Setting: Sendable, Hashable {
    /// Dot-separated components, each in camel case.
    public let key: String
    /// The default, as the README and `--help` show it.
    public let defaultValue: String
    public let meaning: String
    /// Never logged.
    public let isSecret: Bool
    /// A `skiff serve` flag may set it; not so for a key or password (a command line is visible
    /// to every local user).
    public let hasFlag: Bool

    init(_ key: String, default defaultValue: String, _ meaning: String, secret: Bool = false, flag: Bool = true) {
        self.key = key
        self.defaultValue = defaultValue
        self.meaning = meaning
        self.isSecret = secret
        self.hasFlag = flag
    }

    var configKey: ConfigKey { ConfigKey(key) }

    /// `REDIS_COMMAND_TIMEOUT_MS` for `redis.commandTimeoutMs`.
    public var environmentVariable: String {
        words.map { $0.uppercased() }.joined(separator: "_")
    }

    /// `--redis-command-timeout-ms` for `redis.commandTimeoutMs`.
    public var flag: String {
        "--" + words.map { $0.lowercased() }.joined(separator: "-")
    }

    /// The key's words: components split where a lower-case letter meets an upper-case one.
    private var words: [String] {
        key.split(separator: ".").flatMap { component -> [String] in
            var words: [String] = []
            var word = ""
            var previous: Character?
            for character in component {
                if let previous, previous.isLowercase, character.isUppercase {
                    words.append(word)
                    word = ""
                }
                word.append(character)
                previous = character
            }
            words.append(word)
            return words
        }
    }
}

/// Every setting of `skiff serve`, declared once with its default and meaning. The configuration
/// reads them from flags, then the environment, then a JSON settings file (`--settings-file` or
/// `SKIFF_SETTINGS_FILE`), in that order; `--help` lists them and a test holds the README's table
/// to this list.
public enum Settings {
    public static let host = Setting("host", default: "0.0.0.0", "address to listen on")
    public static let port = Setting("port", default: "8080", "HTTP port")
    public static let redisURL = Setting(
        "redis.url",
        default: "unset",
        "redis://[user:password@]host:port[/db] or rediss://... (TLS); unset (and no REDIS_HOST): in-memory queues",
        secret: true
    )
    public static let redisHost = Setting("redis.host", default: "unset", "Redis host, when REDIS_URL is not set")
    public static let redisPort = Setting("redis.port", default: "6379", "Redis port, with REDIS_HOST")
    public static let redisPassword = Setting("redis.password", default: "unset", "Redis password", secret: true, flag: false)
    public static let redisAuth = Setting(
        "redis.auth",
        default: "password",
        "password (REDIS_PASSWORD or the URL's, if any) or iam: a Google access token from the metadata server, for Memorystore's IAM authentication"
    )
    public static let gceMetadataHost = Setting(
        "gce.metadataHost", default: "metadata.google.internal", "host[:port] of the metadata server that REDIS_AUTH=iam asks for tokens")
    public static let redisUsername = Setting("redis.username", default: "unset", "Redis ACL user, with REDIS_HOST")
    public static let redisTLS = Setting("redis.tls", default: "false", "TLS to Redis, with REDIS_HOST")
    public static let redisTLSCAFile = Setting("redis.tlsCaFile", default: "system roots", "PEM file of the CA that signs Redis's certificate")
    public static let redisTLSServerName = Setting("redis.tlsServerName", default: "the host", "name to verify Redis's certificate against")
    public static let redisTLSSkipHostnameVerification = Setting(
        "redis.tlsSkipHostnameVerification",
        default: "false",
        "verify the certificate chain only (Memorystore certificates do not name the IP)"
    )
    public static let redisCommandTimeout = Setting("redis.commandTimeoutMs", default: "800", "deadline of every Redis command, ms")
    public static let redisConnectTimeout = Setting("redis.connectTimeoutMs", default: "500", "deadline to connect to Redis, ms")
    public static let redisKeyPrefix = Setting("redis.keyPrefix", default: "skiff", "prefix of every Redis key")
    public static let redisWaitReplicas = Setting("redis.waitReplicas", default: "0", "Redis replicas that must confirm a message before POST answers 201")
    public static let redisWaitTimeout = Setting("redis.waitTimeoutMs", default: "100", "how long a POST waits for those replicas, ms")
    public static let defaultTimeout = Setting("defaultTimeout", default: "10000", "wait of a GET without timeout, ms")
    public static let maxTimeout = Setting("maxTimeout", default: "60000", "largest accepted timeout, ms")
    public static let maxMessageBytes = Setting("maxMessageBytes", default: "1048576", "largest message body")
    public static let maxBatchBytes = Setting("maxBatchBytes", default: "16777216", "largest batch, both ways")
    public static let maxQueues = Setting("maxQueues", default: "10000", "queues the service holds")
    public static let maxConnections = Setting("maxConnections", default: "20000", "open client connections per replica")
    public static let requestHeadTimeout = Setting("requestHeadTimeoutMs", default: "10000", "time from a request's first byte to its complete head, ms")
    public static let idleTimeout = Setting("idleTimeoutMs", default: "90000", "a connection idle between requests is closed after it, ms")
    public static let maxStreams = Setting("maxStreams", default: "10000", "open WebSocket streams per replica (503 past it)")
    public static let streamPingInterval = Setting(
        "streamPingIntervalMs", default: "15000", "a stream is pinged this often and closed when a ping goes unanswered, ms")
    public static let queueHistoryInterval = Setting(
        "queueHistoryIntervalMs", default: "30000", "each queue's history (the console's charts) keeps one sample per interval for an hour, ms")
    public static let pushEnabled = Setting(
        "push.enabled", default: "true", "this replica delivers push subscriptions (on Cloud Run, keep CPU allocated: docs/deploy.md)")
    public static let pushAllowedNetworks = Setting(
        "push.allowedNetworks",
        default: "unset",
        "comma-separated CIDR ranges push URLs may resolve to besides public addresses (also allows http:// to them)"
    )
    public static let payloadsStore = Setting(
        "payloads.store", default: "unset", "where bodies over the offload threshold are kept: file:///dir or gs://bucket (docs/payloads.md)")
    public static let payloadsOffloadThresholdBytes = Setting(
        "payloads.offloadThresholdBytes", default: "262144", "with a payload store, bodies larger than this are kept there, not in Redis")
    public static let payloadsMaxMessageBytes = Setting(
        "payloads.maxMessageBytes", default: "33554432", "with a payload store, the largest message, sent or published (at most 32 MiB)")
    public static let payloadsMaxReadBytes = Setting(
        "payloads.maxReadBytes", default: "268435456", "bodies read back from the store a replica holds at once (503 past it)")
    public static let payloadsRetention = Setting(
        "payloads.retentionMs", default: "2592000000", "stored bodies older than this are swept (above the longest message life)")
    public static let payloadsSweepInterval = Setting("payloads.sweepIntervalMs", default: "3600000", "how often each replica sweeps the payload store, ms")
    public static let payloadsURLSecret = Setting(
        "payloads.urlSecret", default: "unset",
        "with a file:// store, the secret (32+ bytes, the same on every replica) that signs payload=url links; unset: no links",
        secret: true, flag: false)
    public static let payloadsGCSSigningAccount = Setting(
        "payloads.gcsSigningAccount", default: "unset",
        "with a gs:// store, the service account whose signBlob signs payload=url links (needs iam.serviceAccounts.signBlob on itself)")
    public static let payloadsGCSEndpoint = Setting(
        "payloads.gcsEndpoint", default: "Google's", "the Cloud Storage JSON API's base URL: an emulator, reached without a token")
    public static let otlpEndpoint = Setting(
        "otel.exporter.otlpEndpoint", default: "unset", "OTLP/HTTP collector for traces (docs/tracing.md); unset: tracing off")
    public static let otlpTracesEndpoint = Setting(
        "otel.exporter.otlpTracesEndpoint", default: "endpoint + /v1/traces", "full URL spans are posted to, instead of the above")
    public static let otlpProtocol = Setting("otel.exporter.otlpProtocol", default: "http/protobuf", "http/protobuf or http/json")
    public static let storeTraceContext = Setting(
        "storeTraceContext", default: "true", "messages keep the traceparent they were sent with (false: first step of an upgrade)")
    public static let otelServiceName = Setting("otel.serviceName", default: "skiff", "service.name of this replica's spans")
    public static let claimLease = Setting("claimLeaseMs", default: "30000", "how long before messages claimed by a crashed replica return, ms")
    public static let replicaID = Setting("replicaId", default: "host name", "this replica's name in logs and /health")
    public static let logLevel = Setting("logLevel", default: "info", "trace, debug, info, notice, warning, error or critical")
    public static let logFormat = Setting("logFormat", default: "json", "json (Cloud Logging fields) or text")
    public static let accessLog = Setting("accessLog", default: "true", "one info line per request")
    public static let fastPath = Setting("fastPath", default: "true", "plain single-message POST and GET skip the router")
    public static let apiKeys = Setting(
        "skiff.apiKeys", default: "unset", "the API keys as a JSON document; unset, and no file: open", secret: true, flag: false)
    public static let apiKeysFile = Setting("skiff.apiKeysFile", default: "unset", "a file holding the API keys document")
    public static let metricsRequireAuth = Setting("metricsRequireAuth", default: "true", "GET /metrics needs the admin scope when keys are set")
    public static let metricsPort = Setting(
        "metricsPort",
        default: "unset",
        "also serve GET /metrics, with no key, on 127.0.0.1 at this port: for a collector beside the server (the Cloud Run sidecar)"
    )
    public static let rateLimitPerSecond = Setting(
        "rateLimitPerSecond",
        default: "0 (off)",
        "requests per second per API key and queue, per replica"
    )
    public static let rateLimitBurst = Setting("rateLimitBurst", default: "the rate, rounded up", "requests a rate-limit bucket holds")
    public static let settingsFile = Setting("skiff.settingsFile", default: "unset", "a JSON file of settings, read after flags and the environment")

    public static let all: [Setting] = [
        host, port, redisURL, redisHost, redisPort, redisPassword, redisAuth, gceMetadataHost, redisUsername, redisTLS, redisTLSCAFile, redisTLSServerName,
        redisTLSSkipHostnameVerification, redisCommandTimeout, redisConnectTimeout, redisKeyPrefix, redisWaitReplicas, redisWaitTimeout,
        defaultTimeout, maxTimeout, maxMessageBytes, maxBatchBytes, maxQueues, maxConnections, requestHeadTimeout, idleTimeout, maxStreams,
        streamPingInterval, queueHistoryInterval, pushEnabled, pushAllowedNetworks, payloadsStore, payloadsOffloadThresholdBytes, payloadsMaxMessageBytes,
        payloadsMaxReadBytes, payloadsRetention, payloadsSweepInterval, payloadsURLSecret, payloadsGCSSigningAccount, payloadsGCSEndpoint, otlpEndpoint,
        otlpTracesEndpoint, otlpProtocol, otelServiceName, storeTraceContext, claimLease,
        replicaID, logLevel, logFormat, accessLog, fastPath, apiKeys, apiKeysFile, metricsRequireAuth, metricsPort, rateLimitPerSecond, rateLimitBurst,
        settingsFile,
    ]

    /// The list `skiff serve --help` prints.
    public static var help: String {
        all.map { setting in
            let flag = setting.hasFlag ? setting.flag : "(no flag)"
            return "\(flag) / \(setting.environmentVariable) (default \(setting.defaultValue)): \(setting.meaning)"
        }.joined(separator: "\n")
    }

    /// Reads `--flag value` and `--flag=value` pairs of known, non-secret settings.
    public static func parseFlags(_ arguments: [String]) throws(ConfigurationError) -> [AbsoluteConfigKey: ConfigValue] {
        let byFlag = Dictionary(uniqueKeysWithValues: all.map { ($0.flag, $0) })
        var values: [AbsoluteConfigKey: ConfigValue] = [:]
        var index = arguments.startIndex
        while index < arguments.endIndex {
            let argument = arguments[index]
            index += 1
            var flag = argument
            var value: String?
            if let equals = argument.firstIndex(of: "=") {
                flag = String(argument[..<equals])
                value = String(argument[argument.index(after: equals)...])
            }
            guard let setting = byFlag[flag] else {
                throw ConfigurationError("unknown setting '\(argument)'; `skiff serve --help` lists them")
            }
            guard setting.hasFlag else {
                throw ConfigurationError("\(setting.environmentVariable) is a secret: set it in the environment, not on the command line")
            }
            if value == nil {
                guard index < arguments.endIndex else { throw ConfigurationError("\(flag) needs a value") }
                value = arguments[index]
                index += 1
            }
            values[AbsoluteConfigKey(setting.configKey)] = ConfigValue(.string(value!), isSecret: setting.isSecret)
        }
        return values
    }
}

/// Reads settings through a `ConfigReader`, with Skiff's bounds and error messages (which name the
/// environment variable). A value given as a JSON number, boolean or string is read alike.
public struct SettingsReader: Sendable {
    let config: ConfigReader

    public init(_ config: ConfigReader) {
        self.config = config
    }

    /// The value as text, `nil` when absent or empty.
    public func text(_ setting: Setting) -> String? {
        let key = setting.configKey
        let secret = setting.isSecret
        let value =
            config.string(forKey: key, isSecret: secret) ?? config.int(forKey: key, isSecret: secret).map(String.init)
            ?? config.double(forKey: key, isSecret: secret).map { String($0) } ?? config.bool(forKey: key, isSecret: secret).map(String.init)
        guard let value, !value.trimmingCharacters(in: .whitespaces).isEmpty else { return nil }
        return value
    }

    public func integer(_ setting: Setting, in range: ClosedRange<Int>) throws(ConfigurationError) -> Int? {
        guard let raw = text(setting) else { return nil }
        guard let value = Int(raw), range.contains(value) else {
            throw ConfigurationError("\(setting.environmentVariable) must be an integer from \(range.lowerBound) to \(range.upperBound), got '\(raw)'")
        }
        return value
    }

    public func boolean(_ setting: Setting) throws(ConfigurationError) -> Bool? {
        guard let raw = text(setting) else { return nil }
        switch raw.lowercased() {
        case "true", "1", "yes", "on": return true
        case "false", "0", "no", "off": return false
        default: throw ConfigurationError("\(setting.environmentVariable) must be true or false, got '\(raw)'")
        }
    }

    public func number(_ setting: Setting, in range: ClosedRange<Double>) throws(ConfigurationError) -> Double? {
        guard let raw = text(setting) else { return nil }
        guard let value = Double(raw), value.isFinite, range.contains(value) else {
            throw ConfigurationError("\(setting.environmentVariable) must be a number from \(range.lowerBound) to \(range.upperBound), got '\(raw)'")
        }
        return value
    }
}
