public import AsyncHTTPClient
public import Foundation
public import Logging
public import NIOCore
import NIOHTTP1
import NIOPosix

/// A client of Skiff's HTTP API (README, openapi.yaml), over AsyncHTTPClient.
///
/// Every call retries what can be retried safely (``RetryPolicy``): `503`, `429` (after its
/// `Retry-After`) and connection failures, with exponential backoff and jitter.
/// - A send always carries an `Idempotency-Key` (one is made up when the caller gave none), so a
///   retry after a timeout or a lost answer stores the message once.
/// - A plain receive (no visibility timeout) is retried only when its request never reached the
///   server: once sent, it may have taken a message, and a second request would take another.
///   An acknowledged receive is retried: what a lost answer claimed comes back after its
///   visibility timeout.
/// - An ack, nack or extension is retried (a repeat of one that ran answers "stale", `false`); a
///   redrive is not (it would move more).
public final class SkiffClient: Sendable {
    public let configuration: SkiffClientConfiguration
    private let http: HTTPClient
    private let ownsHTTPClient: Bool
    let logger: Logger
    /// The WebSocket library logs each frame at debug: quieter than the client's own logger.
    var streamLogger: Logger {
        var logger = self.logger
        logger.logLevel = max(logger.logLevel, .warning)
        return logger
    }

    /// - Parameter httpClient: shared with the caller, who shuts it down; `nil`: the client
    ///   makes its own, which ``shutdown()`` closes.
    public init(configuration: SkiffClientConfiguration, httpClient: HTTPClient? = nil, logger: Logger = Logger(label: "skiff.client")) {
        self.configuration = configuration
        if let httpClient {
            self.http = httpClient
            self.ownsHTTPClient = false
        } else {
            var http = HTTPClient.Configuration()
            http.timeout = .init(connect: .seconds(5))
            http.decompression = .disabled
            // The client's own retries (RetryPolicy) decide; AsyncHTTPClient's would keep trying
            // a refused connection until the request's deadline.
            http.connectionPool.retryConnectionEstablishment = false
            self.http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: http)
            self.ownsHTTPClient = true
        }
        self.logger = logger
    }

    /// A client configured by `SKIFF_URL` and `SKIFF_API_KEY`.
    public convenience init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.init(configuration: .fromEnvironment(environment))
    }

    /// Closes the HTTP client this client made (not one it was given).
    public func shutdown() async throws {
        if ownsHTTPClient { try await http.shutdown() }
    }

    // MARK: Sending

    /// Sends one message (valid JSON), retried under one idempotency key.
    @discardableResult
    public func send(_ body: ByteBuffer, to queue: String, options: SendOptions = SendOptions()) async throws -> SentMessage {
        let key = options.idempotencyKey ?? UUID().uuidString
        let response = try await perform(
            Call(.POST, Self.path(queue), query: Self.sendQuery(options), headers: [("Idempotency-Key", key)], body: body, retry: .always))
        let document = try response.object()
        guard let id = document["id"] as? String else { throw SkiffClientError.unreadable("a send answered without an id") }
        // With a key the client made up, a duplicate is its own retry: the message was stored once, now.
        let repeated = options.idempotencyKey != nil && response.headers.first(name: "Skiff-Duplicate") == "true"
        return SentMessage(id: id, isDuplicate: repeated)
    }

    /// Sends `json` text.
    @discardableResult
    public func send(json: String, to queue: String, options: SendOptions = SendOptions()) async throws -> SentMessage {
        try await send(ByteBuffer(string: json), to: queue, options: options)
    }

    /// Sends `value` encoded as JSON.
    @discardableResult
    public func send<Value: Encodable>(_ value: Value, to queue: String, options: SendOptions = SendOptions()) async throws -> SentMessage {
        try await send(ByteBuffer(bytes: try JSONEncoder().encode(value)), to: queue, options: options)
    }

    /// Sends up to 1000 messages (each valid JSON) atomically: all are stored or none.
    /// - Returns: their ids, in order.
    public func sendBatch(_ bodies: [ByteBuffer], to queue: String, options: SendOptions = SendOptions()) async throws -> [String] {
        var ndjson = ByteBuffer()
        for body in bodies {
            var line = body
            guard !line.readableBytesView.contains(UInt8(ascii: "\n")) else {
                // An array keeps newlines inside values legal.
                return try await sendBatchArray(bodies, to: queue, options: options)
            }
            ndjson.writeBuffer(&line)
            ndjson.writeString("\n")
        }
        return try await sendBatch(ndjson, contentType: "application/x-ndjson", to: queue, options: options)
    }

    private func sendBatchArray(_ bodies: [ByteBuffer], to queue: String, options: SendOptions) async throws -> [String] {
        var array = ByteBuffer(string: "[")
        for (index, body) in bodies.enumerated() {
            if index > 0 { array.writeString(",") }
            var body = body
            array.writeBuffer(&body)
        }
        array.writeString("]")
        return try await sendBatch(array, contentType: "application/json", to: queue, options: options)
    }

    private func sendBatch(_ body: ByteBuffer, contentType: String, to queue: String, options: SendOptions) async throws -> [String] {
        let key = options.idempotencyKey ?? UUID().uuidString
        let response = try await perform(
            Call(
                .POST, Self.path(queue, "batch"), query: Self.sendQuery(options),
                headers: [("Idempotency-Key", key), ("Content-Type", contentType)], body: body, retry: .always))
        guard let ids = try response.object()["ids"] as? [String] else { throw SkiffClientError.unreadable("a batch send answered without ids") }
        return ids
    }

    /// Publishes one message to a topic (retried under one idempotency key).
    /// - Returns: the message id and how many subscriptions stored it.
    @discardableResult
    public func publish(_ body: ByteBuffer, to topic: String, options: SendOptions = SendOptions()) async throws -> (id: String, deliveredTo: Int) {
        let key = options.idempotencyKey ?? UUID().uuidString
        let response = try await perform(
            Call(.POST, "/api/topics/" + Self.escaped(topic), query: Self.sendQuery(options), headers: [("Idempotency-Key", key)], body: body, retry: .always))
        let document = try response.object()
        guard let id = document["id"] as? String else { throw SkiffClientError.unreadable("a publish answered without an id") }
        return (id, (document["deliveredTo"] as? Int) ?? 0)
    }

    // MARK: Receiving

    /// The oldest message, waiting up to `wait` for one; `nil` when none came.
    /// - Parameter visibility: `nil` for a plain receive (the message is deleted as it is handed
    ///   out); otherwise acknowledged mode: the message stays invisible this long and must be
    ///   acked (``ack(_:in:)``) with its ``ReceivedMessage/receipt``.
    public func receive(from queue: String, wait: Duration = .zero, visibility: Duration? = nil) async throws -> ReceivedMessage? {
        var query = [("timeout", String(wait.milliseconds))]
        if let visibility { query.append(("visibility", String(visibility.milliseconds))) }
        let response = try await perform(
            Call(.GET, Self.path(queue), query: query, wait: wait, retry: visibility == nil ? .onlyIfNotSent : .always))
        guard response.status == 200 else { return nil }
        let headers = response.headers
        guard let id = headers.first(name: "Skiff-Message-Id") else { throw SkiffClientError.unreadable("a receive answered without Skiff-Message-Id") }
        return ReceivedMessage(
            queue: queue,
            id: id,
            body: response.body,
            receipt: headers.first(name: "Skiff-Receipt"),
            receiveCount: Int(headers.first(name: "Skiff-Receive-Count") ?? "") ?? 1,
            priority: Int(headers.first(name: "Skiff-Priority") ?? "") ?? 0,
            enqueuedAt: headers.first(name: "Skiff-Enqueued-At")
        )
    }

    /// Up to `max` (1 to 1000) messages, waiting up to `wait` for the first; empty when none came.
    /// The retry rules are ``receive(from:wait:visibility:)``'s.
    public func receiveBatch(from queue: String, max: Int, wait: Duration = .zero, visibility: Duration? = nil) async throws -> [ReceivedMessage] {
        var query = [("max", String(max)), ("timeout", String(wait.milliseconds))]
        if let visibility { query.append(("visibility", String(visibility.milliseconds))) }
        let response = try await perform(
            Call(.GET, Self.path(queue, "batch"), query: query, wait: wait, retry: visibility == nil ? .onlyIfNotSent : .always))
        guard response.status == 200 else { return [] }
        let raw = Array(response.body.readableBytesView)
        guard let items = try JSONSerialization.jsonObject(with: Data(raw)) as? [[String: Any]], let bodies = BatchBodies.ranges(in: raw),
            bodies.count == items.count
        else {
            throw SkiffClientError.unreadable("a batch receive answered something other than an array of messages")
        }
        return try zip(items, bodies).map { item, body in
            guard let id = item["id"] as? String, let body else { throw SkiffClientError.unreadable("a batch item without id or body") }
            return ReceivedMessage(
                queue: queue,
                id: id,
                // The body's own bytes, as sent.
                body: ByteBuffer(bytes: raw[body]),
                receipt: item["receipt"] as? String,
                receiveCount: item["receiveCount"] as? Int ?? 1,
                priority: item["priority"] as? Int ?? 0,
                enqueuedAt: item["enqueuedAt"] as? String,
                unreadableBody: item["unreadable"] as? String
            )
        }
    }

    // MARK: Settling

    /// Acks (deletes) an acknowledged-mode message.
    /// - Returns: `false` when the receipt is unknown or stale (the message was redelivered since,
    ///   or acked already): the server did not delete anything for it. A `404` to a retry whose
    ///   first attempt may have run counts as acked (that attempt most likely did it).
    @discardableResult
    public func ack(_ receipt: String, in queue: String) async throws -> Bool {
        let response = try await perform(Call(.DELETE, Self.path(queue, "messages", receipt), retry: .always, accepted: [404]))
        return response.status != 404 || response.retriedAfterMaybeRun
    }

    /// Acks many receipts in one call.
    /// - Returns: how many were acked, and the receipts that were unknown or stale.
    public func ack(_ receipts: [String], in queue: String) async throws -> (acked: Int, notFound: [String]) {
        let body = try JSONSerialization.data(withJSONObject: ["receipts": receipts])
        let response = try await perform(Call(.POST, Self.path(queue, "ack"), body: ByteBuffer(bytes: body), retry: .always))
        let document = try response.object()
        return ((document["acked"] as? Int) ?? 0, (document["notFound"] as? [String]) ?? [])
    }

    /// Gives a message back: it comes back after `delay` (`nil`: the queue's backoff), or moves to
    /// the dead-letter queue when it has used its receives.
    /// - Returns: `false` for an unknown or stale receipt.
    @discardableResult
    public func nack(_ receipt: String, in queue: String, delay: Duration? = nil, reason: String? = nil) async throws -> Bool {
        let query = delay.map { [("delay", String($0.milliseconds))] } ?? []
        let body = try reason.map { ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: ["reason": $0])) }
        let response = try await perform(
            Call(.POST, Self.path(queue, "messages", receipt, "nack"), query: query, body: body, retry: .always, accepted: [404]))
        return response.status != 404 || response.retriedAfterMaybeRun
    }

    /// Keeps a message invisible for `timeout` from now (zero: visible at once).
    /// - Returns: `false` for an unknown or stale receipt: the message may be with another consumer.
    @discardableResult
    public func extendVisibility(_ receipt: String, in queue: String, by timeout: Duration) async throws -> Bool {
        let response = try await perform(
            Call(
                .POST, Self.path(queue, "messages", receipt, "visibility"), query: [("timeout", String(timeout.milliseconds))],
                retry: .always, accepted: [404]))
        return response.status != 404 || response.retriedAfterMaybeRun
    }

    // MARK: Administration

    /// The queue's figures (`GET /api/{q}/stats`).
    public func stats(of queue: String) async throws -> QueueStatistics {
        let response = try await perform(Call(.GET, Self.path(queue, "stats"), retry: .always))
        return try QueueStatistics(document: response.object())
    }

    /// The next `count` (1 to 100) ready messages in the order receives would take them, without
    /// receiving them (`GET /api/{q}/messages?peek=n`, admin scope): no receipt, and
    /// `receiveCount` is the deliveries so far (0 before the first). For people, not consumers.
    /// A body the server keeps in its payload store and cannot read back is `null`, with
    /// ``ReceivedMessage/unreadableBody`` saying why.
    public func peek(_ queue: String, count: Int) async throws -> [ReceivedMessage] {
        let response = try await perform(Call(.GET, Self.path(queue, "messages"), query: [("peek", String(count))], retry: .always))
        let raw = Array(response.body.readableBytesView)
        guard let object = try JSONSerialization.jsonObject(with: Data(raw)) as? [String: Any], let items = object["messages"] as? [[String: Any]],
            let bodies = BatchBodies.ranges(in: raw, member: "messages"), bodies.count == items.count
        else {
            throw SkiffClientError.unreadable("a peek answered something other than an object with messages")
        }
        return try zip(items, bodies).map { item, body in
            guard let id = item["id"] as? String, let body else { throw SkiffClientError.unreadable("a peeked message without id or body") }
            return ReceivedMessage(
                queue: queue,
                id: id,
                body: ByteBuffer(bytes: raw[body]),
                receipt: nil,
                receiveCount: item["receiveCount"] as? Int ?? 0,
                priority: item["priority"] as? Int ?? 0,
                enqueuedAt: item["enqueuedAt"] as? String,
                unreadableBody: item["unreadable"] as? String
            )
        }
    }

    /// The queues that exist, with their depths.
    public func queues() async throws -> [QueueStatistics] {
        let response = try await perform(Call(.GET, "/queues", retry: .always))
        guard let items = try response.object()["queues"] as? [[String: Any]] else { throw SkiffClientError.unreadable("the queue list has no queues") }
        return items.map { QueueStatistics(document: $0) }
    }

    /// The queue's settings as JSON (`GET /api/{q}/config`).
    public func settings(of queue: String) async throws -> ByteBuffer {
        try await perform(Call(.GET, Self.path(queue, "config"), retry: .always)).body
    }

    /// Replaces the queue's settings with `json` (absent fields take their defaults).
    public func updateSettings(_ json: ByteBuffer, of queue: String) async throws {
        _ = try await perform(Call(.PUT, Self.path(queue, "config"), body: json, retry: .always))
    }

    /// Deletes every message of the queue. Never retried once sent (a repeat would delete what was
    /// sent in between). - Returns: how many.
    @discardableResult
    public func purge(_ queue: String) async throws -> Int {
        let response = try await perform(Call(.POST, Self.path(queue, "purge"), retry: .onlyIfNotSent))
        return (try response.object()["purged"] as? Int) ?? 0
    }

    /// Moves up to `max` dead letters back into `queue`, `rate` per second at most. Never retried
    /// once sent (a repeat would move more). - Returns: how many moved.
    @discardableResult
    public func redrive(into queue: String, max: Int? = nil, rate: Int? = nil) async throws -> Int {
        var query: [(String, String)] = []
        if let max { query.append(("max", String(max))) }
        if let rate { query.append(("rate", String(rate))) }
        let response = try await perform(Call(.POST, Self.path(queue, "redrive"), query: query, retry: .onlyIfNotSent))
        return (try response.object()["moved"] as? Int) ?? 0
    }

    // MARK: Requests

    struct Call {
        enum Retry {
            /// Retried on any transient failure.
            case always
            /// Retried only when the server surely did nothing: `503`/`429`, or the connection
            /// failed before the request was written.
            case onlyIfNotSent
        }

        var method: HTTPMethod
        var path: String
        var query: [(String, String)] = []
        var headers: [(String, String)] = []
        var body: ByteBuffer?
        /// A long-poll's own wait, added to the request timeout.
        var wait: Duration = .zero
        var retry: Retry
        /// Error statuses the caller reads itself.
        var accepted: Set<Int> = []

        init(
            _ method: HTTPMethod, _ path: String, query: [(String, String)] = [], headers: [(String, String)] = [], body: ByteBuffer? = nil,
            wait: Duration = .zero, retry: Retry, accepted: Set<Int> = []
        ) {
            (self.method, self.path, self.query, self.headers, self.body, self.wait, self.retry, self.accepted) =
                (method, path, query, headers, body, wait, retry, accepted)
        }
    }

    struct Answer {
        let status: Int
        let headers: HTTPHeaders
        let body: ByteBuffer
        /// An earlier attempt of this call failed after its request may have reached the server.
        var retriedAfterMaybeRun = false

        func object() throws -> [String: Any] {
            guard let object = try? JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any] else {
                throw SkiffClientError.unreadable("the server answered \(status) with a body that is not a JSON object")
            }
            return object
        }
    }

    /// Answers larger than this are refused: the largest batch a server can be configured for
    /// (`MAX_BATCH_BYTES` up to 512 MiB) and its framing.
    static var maximumAnswerBytes: Int { 520 << 20 }
    /// The longest `Retry-After` the client waits for: a longer one would push a send's retry past
    /// a queue's dedup window (5 min by default), where it would store the message twice.
    static var maximumRetryAfter: Duration { .seconds(60) }

    func perform(_ call: Call) async throws -> Answer {
        var attempt = 1
        var mayHaveRun = false
        while true {
            do {
                var answer = try await performOnce(call)
                answer.retriedAfterMaybeRun = mayHaveRun
                return answer
            } catch let error as SkiffClientError {
                mayHaveRun = mayHaveRun || error.mayHaveRun
                let retryable: Bool =
                    switch call.retry {
                    case .always: error.isTransient
                    case .onlyIfNotSent: error.isTransient && !error.mayHaveRun
                    }
                guard retryable, attempt < configuration.retry.maxAttempts else { throw error }
                let delay = configuration.retry.delay(after: attempt, retryAfter: error.retryAfter.map { min($0, Self.maximumRetryAfter) })
                logger.debug("retrying", metadata: ["skiff.path": "\(call.path)", "error": "\(error)", "retry.delay": "\(delay)"])
                try await Task.sleep(for: delay)
                attempt += 1
            }
        }
    }

    private func performOnce(_ call: Call) async throws -> Answer {
        var url = configuration.url + call.path
        if !call.query.isEmpty {
            url += "?" + call.query.map { "\($0.0)=\(Self.escaped($0.1))" }.joined(separator: "&")
        }
        var request = HTTPClientRequest(url: url)
        request.method = call.method
        if let apiKey = configuration.apiKey { request.headers.add(name: "Authorization", value: "Bearer \(apiKey)") }
        for (name, value) in call.headers { request.headers.replaceOrAdd(name: name, value: value) }
        if let body = call.body {
            if !request.headers.contains(name: "Content-Type") { request.headers.add(name: "Content-Type", value: "application/json") }
            request.body = .bytes(body)
        }
        let timeout = configuration.requestTimeout + call.wait
        let response: HTTPClientResponse
        let body: ByteBuffer
        do {
            response = try await http.execute(
                request, timeout: .nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000))
            body = try await response.body.collect(upTo: Self.maximumAnswerBytes)
        } catch let error as SkiffClientError {
            throw error
        } catch {
            throw classify(error, url: url)
        }
        let status = Int(response.status.code)
        if (200..<300).contains(status) || call.accepted.contains(status) {
            return Answer(status: status, headers: response.headers, body: body)
        }
        let message =
            (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any])?["error"] as? String
            ?? "HTTP \(status) \(response.status.reasonPhrase)"
        let retryAfter = response.headers.first(name: "Retry-After").flatMap(Self.retryAfter)
        throw SkiffClientError(kind: .server, status: status, message: message, retryAfter: retryAfter)
    }

    /// Whether the request may have reached the server decides what may be retried.
    private func classify(_ error: any Error, url: String) -> SkiffClientError {
        let unreachable =
            "could not reach the Skiff server at \(configuration.url) (\(error)); is it running? Set SKIFF_URL to its address"
        if let error = error as? HTTPClientError {
            let beforeSending: [HTTPClientError] = [
                .connectTimeout, .getConnectionFromPoolTimeout, .tlsHandshakeTimeout, .socksHandshakeTimeout, .httpProxyHandshakeTimeout,
            ]
            if beforeSending.contains(error) { return SkiffClientError(kind: .connection, message: unreachable) }
            if error == .deadlineExceeded || error == .readTimeout {
                return SkiffClientError(
                    kind: .timeout, message: "no answer from \(url) in time; is SKIFF_URL the server's address, and is it overloaded?", mayHaveRun: true)
            }
            if error == .invalidURL || error == .emptyHost {
                return SkiffClientError(kind: .invalidArgument, message: "\(url) is not a URL the client can use (SKIFF_URL): \(error)")
            }
            return SkiffClientError(kind: .connection, message: "the connection to \(url) failed: \(error)", mayHaveRun: true)
        }
        if error is NIOConnectionError { return SkiffClientError(kind: .connection, message: unreachable) }
        if case .connectTimeout? = error as? ChannelError { return SkiffClientError(kind: .connection, message: unreachable) }
        if let error = error as? IOError, [ECONNREFUSED, ENETUNREACH, EHOSTUNREACH].contains(error.errnoCode) {
            return SkiffClientError(kind: .connection, message: unreachable)
        }
        if error is CancellationError { return SkiffClientError(kind: .connection, message: "cancelled", mayHaveRun: true) }
        return SkiffClientError(kind: .connection, message: "the connection to \(url) failed: \(error)", mayHaveRun: true)
    }

    /// `Retry-After` as seconds or as an HTTP date.
    static func retryAfter(_ value: String) -> Duration? {
        if let seconds = Int(value.trimmingCharacters(in: .whitespaces)) { return .seconds(max(0, seconds)) }
        let format = DateFormatter()
        format.locale = Locale(identifier: "en_US_POSIX")
        format.timeZone = TimeZone(identifier: "GMT")
        format.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard let date = format.date(from: value) else { return nil }
        return .milliseconds(max(0, Int64(date.timeIntervalSinceNow * 1000)))
    }

    // MARK: Paths

    static func path(_ queue: String, _ rest: String...) -> String {
        "/api/" + ([queue] + rest).map(escaped).joined(separator: "/")
    }

    static func escaped(_ component: String) -> String {
        component.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-_.~"))) ?? component
    }

    static func sendQuery(_ options: SendOptions) -> [(String, String)] {
        var query: [(String, String)] = []
        if let delay = options.delay { query.append(("delay", String(delay.milliseconds))) }
        if let priority = options.priority { query.append(("priority", String(priority))) }
        return query
    }
}

extension SkiffClientError {
    static func unreadable(_ message: String) -> SkiffClientError { SkiffClientError(kind: .unexpectedAnswer, message: message) }
}

extension Duration {
    /// Whole milliseconds, rounded down.
    var milliseconds: Int64 {
        components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
    }
}
