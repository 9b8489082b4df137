import Foundation

extension SkiffConfiguration {
    /// Reads API keys, rate limits and the access-log and metrics switches:
    /// `SKIFF_API_KEYS` or `SKIFF_API_KEYS_FILE`, `METRICS_REQUIRE_AUTH`, `RATE_LIMIT_PER_SECOND`,
    /// `RATE_LIMIT_BURST`, `ACCESS_LOG`, `FAST_PATH`.
    mutating func readAccessSettings(from environment: [String: String]) throws {
        func nonEmpty(_ name: String) -> String? {
            guard let value = environment[name], !value.trimmingCharacters(in: .whitespaces).isEmpty else { return nil }
            return value
        }
        func boolean(_ name: String) throws -> Bool? {
            guard let raw = nonEmpty(name) else { return nil }
            switch raw.lowercased() {
            case "true", "1", "yes", "on": return true
            case "false", "0", "no", "off": return false
            default: throw ConfigurationError("\(name) must be true or false, got '\(raw)'")
            }
        }

        switch (nonEmpty("SKIFF_API_KEYS"), nonEmpty("SKIFF_API_KEYS_FILE")) {
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

        if let required = try boolean("METRICS_REQUIRE_AUTH") { metricsRequireAuth = required }
        if let enabled = try boolean("ACCESS_LOG") { accessLog = enabled }
        if let enabled = try boolean("FAST_PATH") { fastPath = enabled }

        let burst: Int?
        if let raw = nonEmpty("RATE_LIMIT_BURST") {
            guard let value = Int(raw), (1...1_000_000).contains(value) else {
                throw ConfigurationError("RATE_LIMIT_BURST must be an integer from 1 to 1000000, got '\(raw)'")
            }
            burst = value
        } else {
            burst = nil
        }
        if let raw = nonEmpty("RATE_LIMIT_PER_SECOND") {
            guard let rate = Double(raw), rate.isFinite, rate >= 0, rate <= 1_000_000 else {
                throw ConfigurationError("RATE_LIMIT_PER_SECOND must be a number from 0 (off) to 1000000, got '\(raw)'")
            }
            rateLimit = rate > 0 ? RateLimitSettings(requestsPerSecond: rate, burst: burst) : nil
        } else if burst != nil {
            throw ConfigurationError("RATE_LIMIT_BURST needs RATE_LIMIT_PER_SECOND")
        }
    }
}
