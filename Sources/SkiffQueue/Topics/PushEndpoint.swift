/// Where a push subscription delivers: each message its filter matches is POSTed to ``url``
/// (docs/topics.md, "Push subscriptions").
///
/// The matched copies wait in the subscription's queue, which every replica's push delivery
/// consumes in acknowledged mode: a copy is pushed under a lease of ``timeoutMilliseconds`` plus a
/// margin, settled by a 2xx answer, retried after the queue's backoff otherwise, and moved to the
/// queue's dead-letter queue after ``maxAttempts``. So a replica that dies mid-push loses nothing,
/// and a receiver may see a message more than once (at-least-once; it drops repeats by the
/// delivery id).
public struct PushEndpoint: Sendable, Equatable {
    /// `https://...` (`http://` only for hosts in the push allowlist). Checked against the
    /// address rules when the subscription is stored and before each push.
    public var url: String
    /// The key of the HMAC-SHA256 signature on every push. Never shown in an answer, a log or a metric.
    public var secret: String
    /// How long one push may take, from connecting to the end of the answer.
    public var timeoutMilliseconds: Int64
    /// Pushes of one message at most, the first included; then it is dead-lettered.
    public var maxAttempts: Int
    /// The retry delay after the first failed attempt; it doubles per attempt up to
    /// ``backoffCapMilliseconds``, with jitter (between half and all of it).
    public var backoffBaseMilliseconds: Int64
    public var backoffCapMilliseconds: Int64
    /// Pushes in flight at once for this subscription, per replica.
    public var concurrency: Int
    /// Where messages go after ``maxAttempts`` (`nil`: the subscription queue's `-dlq`).
    public var deadLetterQueue: QueueName?

    public static let defaultTimeoutMilliseconds: Int64 = 10_000
    public static let timeoutRange: ClosedRange<Int64> = 100...60_000
    public static let defaultMaxAttempts = 5
    public static let defaultBackoffBaseMilliseconds: Int64 = 1_000
    public static let defaultBackoffCapMilliseconds: Int64 = 60_000
    public static let defaultConcurrency = 4
    public static let maximumConcurrency = 64
    public static let maximumURLBytes = 2048
    public static let secretLengths: ClosedRange<Int> = 16...256
    /// Push subscriptions a service holds at most, over all topics: every replica runs up to
    /// ``concurrency`` consumers for each.
    public static let maximumSubscriptions = 1000

    public init(
        url: String,
        secret: String,
        timeoutMilliseconds: Int64 = PushEndpoint.defaultTimeoutMilliseconds,
        maxAttempts: Int = PushEndpoint.defaultMaxAttempts,
        backoffBaseMilliseconds: Int64 = PushEndpoint.defaultBackoffBaseMilliseconds,
        backoffCapMilliseconds: Int64 = PushEndpoint.defaultBackoffCapMilliseconds,
        concurrency: Int = PushEndpoint.defaultConcurrency,
        deadLetterQueue: QueueName? = nil
    ) {
        self.url = url
        self.secret = secret
        self.timeoutMilliseconds = timeoutMilliseconds
        self.maxAttempts = maxAttempts
        self.backoffBaseMilliseconds = backoffBaseMilliseconds
        self.backoffCapMilliseconds = backoffCapMilliseconds
        self.concurrency = concurrency
        self.deadLetterQueue = deadLetterQueue
    }

    /// Reads the `push` object of a subscription document (API names), defaults filled in.
    /// - Throws: ``QueueError`` `.invalidArgument` naming the first field that is wrong.
    public init(document: [String: JSONValue]) throws(QueueError) {
        let known: Set<String> = ["url", "secret", "timeoutMs", "maxAttempts", "backoff", "concurrency", "deadLetterQueue"]
        if let unknown = document.keys.sorted().first(where: { !known.contains($0) }) {
            throw .invalidArgument("unknown push field '\(unknown)': a push endpoint has \(known.sorted().joined(separator: ", "))")
        }
        guard case .string(let url)? = document["url"] else { throw .invalidArgument("push.url must be a string: \"https://...\"") }
        guard case .string(let secret)? = document["secret"] else {
            throw .invalidArgument("push.secret must be a string of \(Self.secretLengths.lowerBound) to \(Self.secretLengths.upperBound) characters")
        }
        self.init(url: url, secret: secret)
        timeoutMilliseconds = try Self.integer(document["timeoutMs"], "push.timeoutMs") ?? timeoutMilliseconds
        maxAttempts = Int(try Self.integer(document["maxAttempts"], "push.maxAttempts") ?? Int64(maxAttempts))
        concurrency = Int(try Self.integer(document["concurrency"], "push.concurrency") ?? Int64(concurrency))
        switch document["backoff"] {
        case nil, .null?: break
        case .object(let backoff)?:
            if let unknown = backoff.keys.sorted().first(where: { $0 != "baseMs" && $0 != "capMs" }) {
                throw .invalidArgument("unknown push.backoff field '\(unknown)': the backoff has baseMs and capMs")
            }
            backoffBaseMilliseconds = try Self.integer(backoff["baseMs"], "push.backoff.baseMs") ?? backoffBaseMilliseconds
            backoffCapMilliseconds = try Self.integer(backoff["capMs"], "push.backoff.capMs") ?? max(backoffCapMilliseconds, backoffBaseMilliseconds)
        default: throw .invalidArgument("push.backoff must be an object: {\"baseMs\": 1000, \"capMs\": 60000}")
        }
        switch document["deadLetterQueue"] {
        case nil, .null?: break
        case .string(let name)?:
            guard let queue = QueueName(name) else {
                throw .invalidArgument("push.deadLetterQueue must be 1 to 128 characters from A-Z, a-z, 0-9, '_' and '-', and not 'topics'")
            }
            deadLetterQueue = queue
        default: throw .invalidArgument("push.deadLetterQueue must be a queue name")
        }
        try validate()
    }

    private static func integer(_ value: JSONValue?, _ field: String) throws(QueueError) -> Int64? {
        switch value {
        case nil, .null?: return nil
        case .number(let number)? where number == number.rounded() && abs(number) < 1e15: return Int64(number)
        default: throw .invalidArgument("\(field) must be an integer")
        }
    }

    /// Checks every field's bounds and the URL's form (not where it resolves: ``PushAddressRules``).
    /// - Throws: ``QueueError`` `.invalidArgument` naming the field.
    public func validate() throws(QueueError) {
        guard url.utf8.count <= Self.maximumURLBytes else { throw .invalidArgument("push.url is longer than \(Self.maximumURLBytes) bytes") }
        _ = try PushURL(url)
        guard Self.secretLengths.contains(secret.utf8.count), secret.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw .invalidArgument(
                "push.secret must be \(Self.secretLengths.lowerBound) to \(Self.secretLengths.upperBound) printable ASCII characters without spaces"
            )
        }
        guard Self.timeoutRange.contains(timeoutMilliseconds) else {
            throw .invalidArgument("push.timeoutMs must be from \(Self.timeoutRange.lowerBound) to \(Self.timeoutRange.upperBound)")
        }
        guard (1...QueueSettings.maximumReceiveCountLimit).contains(maxAttempts) else {
            throw .invalidArgument("push.maxAttempts must be from 1 to \(QueueSettings.maximumReceiveCountLimit)")
        }
        guard (0...QueueSettings.maximumVisibilityTimeoutMilliseconds).contains(backoffBaseMilliseconds) else {
            throw .invalidArgument("push.backoff.baseMs must be from 0 to \(QueueSettings.maximumVisibilityTimeoutMilliseconds) (12 hours)")
        }
        guard (backoffBaseMilliseconds...QueueSettings.maximumVisibilityTimeoutMilliseconds).contains(backoffCapMilliseconds) else {
            throw .invalidArgument("push.backoff.capMs must be from push.backoff.baseMs to \(QueueSettings.maximumVisibilityTimeoutMilliseconds) (12 hours)")
        }
        guard (1...Self.maximumConcurrency).contains(concurrency) else {
            throw .invalidArgument("push.concurrency must be from 1 to \(Self.maximumConcurrency)")
        }
    }

    /// The settings of the subscription's queue that make it a push queue: the lease outlasts a
    /// push by `leaseMarginMilliseconds`; receives, backoff and dead letters follow the endpoint.
    public func queueSettings(from current: QueueSettings, leaseMarginMilliseconds: Int64) -> QueueSettings {
        var settings = current
        settings.visibilityTimeoutMilliseconds = timeoutMilliseconds + leaseMarginMilliseconds
        settings.maxReceiveCount = maxAttempts
        settings.retryBackoffBaseMilliseconds = backoffBaseMilliseconds
        settings.retryBackoffCapMilliseconds = backoffCapMilliseconds
        settings.deadLetterQueue = deadLetterQueue
        return settings
    }

    // MARK: Stored form

    /// The endpoint as a backend stores it: a JSON object with the API's names (the secret too).
    public var storedText: String {
        var fields: [String: JSONValue] = [
            "url": .string(url), "secret": .string(secret), "timeoutMs": .number(Double(timeoutMilliseconds)),
            "maxAttempts": .number(Double(maxAttempts)), "concurrency": .number(Double(concurrency)),
            "backoff": .object(["baseMs": .number(Double(backoffBaseMilliseconds)), "capMs": .number(Double(backoffCapMilliseconds))]),
        ]
        if let deadLetterQueue { fields["deadLetterQueue"] = .string(deadLetterQueue.rawValue) }
        return JSONValue.object(fields).jsonText
    }

    /// An endpoint read back from ``storedText``; `nil` when it does not parse or validate.
    public init?(stored text: String) {
        guard case .object(let document)? = try? JSONValue(parsing: Array(text.utf8)), let endpoint = try? PushEndpoint(document: document) else {
            return nil
        }
        self = endpoint
    }
}

/// A push URL taken apart: scheme, host (a name, or an IP address without brackets), port and
/// the request target. Only `http` and `https`, no user info, no fragment.
public struct PushURL: Sendable, Equatable {
    public var isHTTPS: Bool
    public var host: String
    public var port: Int
    public var target: String

    public init(_ url: String) throws(QueueError) {
        let lowered = url.lowercased()
        let rest: Substring
        if lowered.hasPrefix("https://") {
            (isHTTPS, rest) = (true, url.dropFirst(8))
        } else if lowered.hasPrefix("http://") {
            (isHTTPS, rest) = (false, url.dropFirst(7))
        } else {
            throw .invalidArgument("push.url must start with https://")
        }
        guard url.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw .invalidArgument("push.url must be printable ASCII without spaces (percent-encode the rest)")
        }
        guard !url.contains("#") else { throw .invalidArgument("push.url must not have a fragment") }
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        guard !authority.contains("@") else { throw .invalidArgument("push.url must not carry user info; sign with the secret instead") }
        var hostPart = authority
        var portPart: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw .invalidArgument("push.url has an unclosed IPv6 address") }
            hostPart = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw .invalidArgument("push.url has text after its IPv6 address") }
                portPart = after.dropFirst()
            }
        } else if let colon = authority.lastIndex(of: ":") {
            hostPart = authority[..<colon]
            portPart = authority[authority.index(after: colon)...]
        }
        guard !hostPart.isEmpty else { throw .invalidArgument("push.url has no host") }
        // Exactly what the HTTP client will connect to: no percent-encoding (decoded, it could
        // name another host than the one checked), no characters a resolver reads otherwise.
        let isIPv6Literal = authority.hasPrefix("[")
        guard
            hostPart.utf8.allSatisfy({ byte in
                (byte >= 0x30 && byte <= 0x39) || (byte | 0x20 >= 0x61 && byte | 0x20 <= 0x7A) || byte == UInt8(ascii: ".")
                    || (isIPv6Literal ? byte == UInt8(ascii: ":") : (byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_")))
            })
        else {
            throw .invalidArgument("push.url's host may hold letters, digits, '.', '-' and '_' only (or an IPv6 address in brackets)")
        }
        host = String(hostPart).lowercased()
        if let portPart {
            guard let port = Int(portPart), (1...65535).contains(port) else { throw .invalidArgument("push.url has a port outside 1 to 65535") }
            self.port = port
        } else {
            port = isHTTPS ? 443 : 80
        }
        let path = rest[authorityEnd...]
        target = path.isEmpty ? "/" : (path.hasPrefix("?") ? "/" + path : String(path))
    }
}
