import Foundation
import SkiffQueue

/// Where message bodies over the offload threshold go (`PAYLOADS_*`, docs/payloads.md), as read
/// from the configuration; the store itself is made when the replica is assembled.
public struct PayloadSettings: Sendable, Equatable {
    public enum Location: Sendable, Equatable {
        /// `file:///absolute/dir`: one host (`make run`, the local cluster, tests).
        case directory(String)
        /// `gs://bucket`: Cloud Storage, with the metadata server's token, or with none through
        /// an emulator at `endpoint`.
        case bucket(String, endpoint: String?)
    }

    public var location: Location
    /// Bodies larger than this are kept in the store (`PAYLOADS_OFFLOAD_THRESHOLD_BYTES`).
    public var thresholdBytes: Int
    /// The largest queue message with a store (`PAYLOADS_MAX_MESSAGE_BYTES`, at most 32 MiB,
    /// Cloud Run's HTTP/1 request limit). `MAX_MESSAGE_BYTES` still bounds what Redis keeps
    /// whole: topic publishes, which are not offloaded.
    public var maximumMessageBytes: Int
    /// Bytes of bodies read back that a replica holds at once (`PAYLOADS_MAX_READ_BYTES`).
    public var maximumHeldBytes: Int = 256 << 20
    /// Objects older than this are deleted by the sweep (`PAYLOADS_RETENTION_MS`, 30 days): above
    /// the longest life of a message with the longest settings, 14 days in its queue and 14 in its
    /// dead-letter queue (docs/payloads.md).
    public var retention: Duration = .seconds(30 * 86_400)
    /// How often each replica sweeps (`PAYLOADS_SWEEP_INTERVAL_MS`, an hour).
    public var sweepInterval: Duration = .seconds(3_600)
    /// Signs the links of a filesystem store's objects (`PAYLOADS_URL_SECRET`, at least 32 bytes,
    /// the same on every replica); `nil`: receives cannot ask for `payload=url`.
    public var urlSecret: [UInt8]?
    /// The service account whose IAM `signBlob` signs Cloud Storage V4 URLs
    /// (`PAYLOADS_GCS_SIGNING_ACCOUNT`); `nil`: receives cannot ask for `payload=url`.
    public var signingServiceAccount: String?

    public static let largestMessageBytes = 32 << 20

    public init(location: Location, thresholdBytes: Int = 256 << 10, maximumMessageBytes: Int = PayloadSettings.largestMessageBytes) {
        self.location = location
        self.thresholdBytes = thresholdBytes
        self.maximumMessageBytes = maximumMessageBytes
    }

    /// Parses `PAYLOADS_STORE`: `file:///absolute/dir` or `gs://bucket` (a trailing `/` allowed).
    static func location(_ text: String, endpoint: String?) throws(ConfigurationError) -> Location {
        if text.hasPrefix("file://") {
            let path = String(text.dropFirst("file://".count))
            guard path.hasPrefix("/"), path.count > 1 else {
                throw ConfigurationError("PAYLOADS_STORE file:// needs an absolute directory (file:///var/lib/skiff/payloads), got '\(text)'")
            }
            return .directory(path)
        }
        if text.hasPrefix("gs://") {
            var bucket = String(text.dropFirst("gs://".count))
            if bucket.hasSuffix("/") { bucket.removeLast() }
            // Cloud Storage's bucket names: 3 to 63 of a-z 0-9 - _ . (no prefix inside the bucket yet).
            guard (3...63).contains(bucket.utf8.count),
                bucket.utf8.allSatisfy({
                    (UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0)
                        || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".")
                })
            else {
                throw ConfigurationError("PAYLOADS_STORE gs:// needs a bucket name (3 to 63 of a-z 0-9 - _ .) and no path, got '\(text)'")
            }
            if let endpoint, !(endpoint.hasPrefix("http://") || endpoint.hasPrefix("https://")) {
                throw ConfigurationError("PAYLOADS_GCS_ENDPOINT must be an http:// or https:// URL, got '\(endpoint)'")
            }
            return .bucket(bucket, endpoint: endpoint)
        }
        throw ConfigurationError("PAYLOADS_STORE must be file:///dir or gs://bucket, got '\(text)'")
    }
}

extension SkiffConfiguration {
    /// `PAYLOADS_STORE` and its companions; with a store, messages (sent or published) may reach
    /// `PAYLOADS_MAX_MESSAGE_BYTES`, and `MAX_MESSAGE_BYTES` bounds what Redis keeps whole.
    mutating func readPayloadSettings(_ settings: SettingsReader) throws {
        guard let store = settings.text(Settings.payloadsStore) else {
            for setting in [
                Settings.payloadsOffloadThresholdBytes, Settings.payloadsMaxMessageBytes, Settings.payloadsGCSEndpoint, Settings.payloadsRetention,
                Settings.payloadsSweepInterval, Settings.payloadsMaxReadBytes, Settings.payloadsURLSecret, Settings.payloadsGCSSigningAccount,
            ]
            where settings.text(setting) != nil {
                throw ConfigurationError("\(setting.environmentVariable) needs PAYLOADS_STORE")
            }
            return
        }
        var payloads = PayloadSettings(location: try PayloadSettings.location(store, endpoint: settings.text(Settings.payloadsGCSEndpoint)))
        if let bytes = try settings.integer(Settings.payloadsMaxMessageBytes, in: 1...PayloadSettings.largestMessageBytes) {
            payloads.maximumMessageBytes = bytes
        }
        if let bytes = try settings.integer(Settings.payloadsOffloadThresholdBytes, in: 1...PayloadSettings.largestMessageBytes) {
            payloads.thresholdBytes = bytes
        }
        if let bytes = try settings.integer(Settings.payloadsMaxReadBytes, in: (1 << 20)...(64 << 30)) { payloads.maximumHeldBytes = bytes }
        if let milliseconds = try settings.integer(Settings.payloadsRetention, in: 3_600_000...(3_650 * 86_400_000)) {
            payloads.retention = .milliseconds(milliseconds)
        }
        if let milliseconds = try settings.integer(Settings.payloadsSweepInterval, in: 1_000...(30 * 86_400_000)) {
            payloads.sweepInterval = .milliseconds(milliseconds)
        }
        if let secret = settings.text(Settings.payloadsURLSecret) {
            guard case .directory = payloads.location else {
                throw ConfigurationError("PAYLOADS_URL_SECRET signs links of a file:// store; a gs:// store's are signed by PAYLOADS_GCS_SIGNING_ACCOUNT")
            }
            guard secret.utf8.count >= PayloadURLSigner.minimumSecretBytes else {
                throw ConfigurationError("PAYLOADS_URL_SECRET must be at least \(PayloadURLSigner.minimumSecretBytes) bytes (openssl rand -hex 32)")
            }
            payloads.urlSecret = Array(secret.utf8)
        }
        if let account = settings.text(Settings.payloadsGCSSigningAccount) {
            guard case .bucket(_, nil) = payloads.location else {
                throw ConfigurationError("PAYLOADS_GCS_SIGNING_ACCOUNT needs a gs:// store reached with Google's credentials (not PAYLOADS_GCS_ENDPOINT)")
            }
            guard account.contains("@"), account.utf8.count <= 254, !account.contains("/") else {
                throw ConfigurationError("PAYLOADS_GCS_SIGNING_ACCOUNT must be a service account's email, got '\(account)'")
            }
            payloads.signingServiceAccount = account
        }
        // With a store, no message Redis would take may be refused.
        guard payloads.maximumMessageBytes >= api.maximumMessageBytes else {
            throw ConfigurationError(
                "PAYLOADS_MAX_MESSAGE_BYTES (\(payloads.maximumMessageBytes)) must not be below MAX_MESSAGE_BYTES (\(api.maximumMessageBytes))"
            )
        }
        // A body kept whole in Redis must be one MAX_MESSAGE_BYTES allows.
        guard payloads.thresholdBytes <= api.maximumMessageBytes else {
            throw ConfigurationError(
                "PAYLOADS_OFFLOAD_THRESHOLD_BYTES (\(payloads.thresholdBytes)) must not pass MAX_MESSAGE_BYTES (\(api.maximumMessageBytes)), the largest body Redis keeps"
            )
        }
        if case .directory(let path) = payloads.location {
            do {
                try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            } catch {
                throw ConfigurationError("PAYLOADS_STORE: cannot create \(path): \(error)")
            }
        }
        usePayloadStore(payloads)
    }

    /// Turns the payload store on: queue messages may reach its ``PayloadSettings/maximumMessageBytes``,
    /// topic publishes keep ``APISettings/maximumMessageBytes`` (what Redis keeps whole).
    public mutating func usePayloadStore(_ payloads: PayloadSettings) {
        if self.payloads == nil { api.inlineMessageBytes = api.maximumMessageBytes }
        api.maximumMessageBytes = max(payloads.maximumMessageBytes, api.largestInlineMessageBytes)
        api.offloadThresholdBytes = payloads.thresholdBytes
        self.payloads = payloads
    }
}
