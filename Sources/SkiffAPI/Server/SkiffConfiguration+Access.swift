import Foundation

extension SkiffConfiguration {
    /// Reads API keys, rate limits and the access-log and metrics switches:
    /// `SKIFF_API_KEYS` or `SKIFF_API_KEYS_FILE`, `METRICS_REQUIRE_AUTH`, `METRICS_PORT`, `RATE_LIMIT_PER_SECOND`,
    /// `RATE_LIMIT_BURST`, `ACCESS_LOG`, `FAST_PATH`.
    mutating func readAccessSettings(_ settings: SettingsReader) throws {
        switch (settings.text(Settings.apiKeys), settings.text(Settings.apiKeysFile)) {
        case (.some, .some):
            throw ConfigurationError("set either SKIFF_API_KEYS or SKIFF_API_KEYS_FILE, not both")
        case (let inline?, nil):
            apiKeys = try APIKey.parseDocument(inline, source: "SKIFF_API_KEYS")
        case (nil, let path?):
            let text: String
            do {
                text = try String(contentsOfFile: path, encoding: .utf8)
            } catch {
                throw ConfigurationError("SKIFF_API_KEYS_FILE: cannot read '\(path)': \(error.localizedDescription)")
            }
            apiKeys = try APIKey.parseDocument(text, source: "SKIFF_API_KEYS_FILE (\(path))")
        case (nil, nil):
            apiKeys = []
        }

        if let required = try settings.boolean(Settings.metricsRequireAuth) { metricsRequireAuth = required }
        if let port = try settings.integer(Settings.metricsPort, in: 1...65535) {
            guard port != self.port else { throw ConfigurationError("METRICS_PORT must differ from PORT (\(port))") }
            metricsPort = port
        }
        if let enabled = try settings.boolean(Settings.accessLog) { accessLog = enabled }
        if let enabled = try settings.boolean(Settings.fastPath) { fastPath = enabled }

        let burst = try settings.integer(Settings.rateLimitBurst, in: 1...1_000_000)
        if let rate = try settings.number(Settings.rateLimitPerSecond, in: 0...1_000_000) {
            rateLimit = rate > 0 ? RateLimitSettings(requestsPerSecond: rate, burst: burst) : nil
        } else if burst != nil {
            throw ConfigurationError("RATE_LIMIT_BURST needs RATE_LIMIT_PER_SECOND")
        }
    }
}
