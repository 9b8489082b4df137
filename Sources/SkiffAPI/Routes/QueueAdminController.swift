import HTTPTypes
public import Hummingbird
import NIOCore
public import SkiffQueue
import SkiffSupport

/// Queue management routes, over any ``QueueBackend``.
///
/// - `GET`/`PUT /api/{queue}/config`: the queue's settings as JSON (camelCase, milliseconds).
/// - `POST /api/{queue}/redrive?max=n&rate=per-second`: dead letters back into the queue.
/// - `GET /api/{queue}/messages?peek=n`: the first n ready messages, changing nothing.
/// - `GET /api/{queue}/messages/{id}`: one message by id, wherever it is, changing nothing.
/// - `GET /api/{queue}/history`: the queue's figures over the last hour (the console's charts).
/// - `GET /api/{queue}/stats`, `POST /api/{queue}/purge`, `DELETE /api/{queue}`, `GET /queues`.
public struct QueueAdminController<Backend: QueueBackend>: Sendable {
    public typealias Context = SkiffRequestContext
    let backend: Backend
    /// The step of the queues' histories (`QUEUE_HISTORY_INTERVAL_MS`), told to their readers.
    let historyInterval: Duration

    public init(backend: Backend, historyInterval: Duration = .seconds(30)) {
        self.backend = backend
        self.historyInterval = historyInterval
    }

    public func addRoutes(to router: Router<Context>) {
        router.get("/api/:queue/config", use: settings)
        router.put("/api/:queue/config", use: updateSettings)
        router.addMethodNotAllowed(path: "/api/:queue/config", allowed: [.get, .put])
        router.post("/api/:queue/redrive", use: redrive)
        router.addMethodNotAllowed(path: "/api/:queue/redrive", allowed: [.post])
        router.get("/api/:queue/messages", use: peek)
        router.addMethodNotAllowed(path: "/api/:queue/messages", allowed: [.get])
        router.get("/api/:queue/messages/:receipt", use: lookUp)
        router.get("/api/:queue/history", use: history)
        router.addMethodNotAllowed(path: "/api/:queue/history", allowed: [.get])
        router.get("/api/:queue/stats", use: stats)
        router.addMethodNotAllowed(path: "/api/:queue/stats", allowed: [.get])
        router.post("/api/:queue/purge", use: purge)
        router.addMethodNotAllowed(path: "/api/:queue/purge", allowed: [.post])
        router.delete("/api/:queue", use: delete)
        router.addMethodNotAllowed(path: "/api/:queue", allowed: [.get, .post, .delete])
        router.get("/queues", use: list)
        router.addMethodNotAllowed(path: "/queues", allowed: [.get])
    }

    // MARK: Settings

    @Sendable func settings(request: Request, context: Context) async throws -> Response {
        let queue = try QueueController<Backend>.queueName(context)
        let settings = try await backend.settings(of: queue)
        return QueueController<Backend>.json(status: .ok, settings.json(of: queue))
    }

    @Sendable func updateSettings(request: Request, context: Context) async throws -> Response {
        let queue = try QueueController<Backend>.queueName(context)
        let body = try await request.body.collect(upTo: 64 << 10)
        let object = try JSONDocument.object(body)
        var settings = try QueueSettings(json: object)
        // A PUT replaces the settings, except that a body without `partitions` keeps the count
        // (it can only grow): setting a retention should not need to know it.
        if object["partitions"] == nil || object["partitions"] == .null {
            settings.partitions = try await backend.settings(of: queue).partitions
        }
        do {
            try settings.validate(for: queue)
        } catch {
            throw APIError(.badRequest, error.description)
        }
        try Self.checkAccess(context, to: settings.deadLetterQueue(of: queue), named: "deadLetterQueue")
        try await backend.updateSettings(settings, of: queue)
        context.logger.info("queue settings replaced", metadata: ["queue.name": "\(queue)"])
        return QueueController<Backend>.json(status: .ok, settings.json(of: queue))
    }

    // MARK: Redrive

    /// Moves dead letters back in steps of at most `rate / 10` (or 1000) messages, pacing the steps
    /// so the rate holds. Each step is atomic, so the count is exact even if the client leaves.
    @Sendable func redrive(request: Request, context: Context) async throws -> Response {
        let queue = try QueueController<Backend>.queueName(context)
        let query = request.uri.queryParameters
        let maximum = try query["max"].map { Int(try QueueController<Backend>.integer($0, name: "max", range: 1...100_000_000)) }
        let rate = try query["rate"].map { Int(try QueueController<Backend>.integer($0, name: "rate", range: 1...1_000_000)) }
        // The source is named by stored settings, which another key may have written.
        try Self.checkAccess(context, to: try await backend.settings(of: queue).deadLetterQueue(of: queue), named: "the dead-letter queue")
        // Without `max`, what is there now: messages that fail again and return mid-way are not
        // moved twice by one call.
        var target = maximum ?? 0
        if maximum == nil { target = try await backend.stats(of: queue).deadLetterReady }
        let step = rate.map { Swift.max(1, Swift.min(1000, $0 / 10)) } ?? 1000
        let started = ContinuousClock.now
        var moved = 0
        while moved < target, !Task.isCancelled {
            let count = try await backend.redrive(into: queue, max: Swift.min(step, target - moved))
            moved += count
            if count == 0 { break }
            if let rate, moved < target {
                let due = started + .milliseconds(Int64(moved) * 1000 / Int64(rate))
                if due > .now { try? await Task.sleep(until: due) }
            }
        }
        context.logger.info("redrive", metadata: ["queue.name": "\(queue)", "message.count": "\(moved)"])
        return QueueController<Backend>.json(status: .ok, #"{"moved":"# + String(moved) + "}")
    }

    /// Every queue a request makes the server touch passes the caller's access check, not only
    /// the one in the path: a name in a body or in stored settings (a dead-letter queue, a
    /// redrive source) could otherwise reach another tenant's queue.
    static func checkAccess(_ context: Context, to queue: QueueName, named role: String) throws {
        guard let grant = context.accessGrant, !grant.permits(queue: queue.rawValue) else { return }
        throw APIError(
            .forbidden,
            "\(role) '\(queue)' is outside this API key's queues: it may only use queues whose names start with '\(grant.queuePrefix ?? "")'"
        )
    }

    // MARK: Peek

    /// Messages a peek answers at most, and the bodies' bytes it stops before.
    static var maximumPeek: Int64 { 100 }
    static var maximumPeekBytes: Int { 4 << 20 }

    /// `GET /api/{queue}/messages?peek=n` (1 to 100): the first n ready messages in the order
    /// receives would take them, with their receive counts, last nack reasons and, in a
    /// dead-letter queue, where they failed. Nothing changes: no receive is counted and no
    /// visibility timeout starts. A body kept in the payload store that cannot be read back is
    /// `null`, with `unreadable` saying why. Fewer than n when the queue has fewer ready, or when the next
    /// one would take the bodies past 4 MiB (one message always comes).
    @Sendable func peek(request: Request, context: Context) async throws -> Response {
        let queue = try QueueController<Backend>.queueName(context)
        guard let raw = request.uri.queryParameters["peek"] else {
            throw APIError(.badRequest, "peek=n (1 to \(Self.maximumPeek)) is required: GET /api/{queue}/messages reads messages without receiving them")
        }
        let limit = Int(try QueueController<Backend>.integer(raw, name: "peek", range: 1...Self.maximumPeek))
        let messages = try await backend.peek(queue, limit: limit, maximumBytes: Self.maximumPeekBytes)
        let bytes = messages.reduce(0) { $0 + $1.body.readableBytes }
        var body = ByteBufferAllocator().buffer(capacity: 64 + bytes + 256 * messages.count)
        body.writeString(#"{"queue":"# + JSONText.quoted(queue.rawValue) + #","messages":["#)
        for (index, message) in messages.enumerated() {
            if index > 0 { body.writeStaticString(",") }
            Self.write(message, to: &body)
        }
        body.writeStaticString("]}")
        return QueueController<Backend>.json(status: .ok, body)
    }

    /// One message as a peek or a lookup shows it: `{"id", "enqueuedAt", "receiveCount",
    /// "priority"[, "lastError"][, "deadLetter"][, "state"], "body"}`, the body as posted (or
    /// `null` with `unreadable`).
    static func write(_ message: QueueMessage, state: MessageState? = nil, to body: inout ByteBuffer) {
        var head =
            #"{"id":"# + JSONText.quoted(message.id) + #","enqueuedAt":"#
            + JSONText.quoted(JSONText.timestamp(milliseconds: message.enqueuedAtMilliseconds)) + #","receiveCount":"#
            + String(message.receiveCount) + #","priority":"# + String(message.priority)
        if let state { head += #","state":"# + JSONText.quoted(state.rawValue) }
        if let lastError = message.lastError { head += #","lastError":"# + JSONText.quoted(lastError) }
        if let history = message.deadLetter {
            head +=
                #","deadLetter":{"sourceQueue":"# + JSONText.quoted(history.sourceQueue.rawValue) + #","receiveCount":"#
                + String(history.receiveCount) + #","firstReceivedAt":"#
                + JSONText.quoted(JSONText.timestamp(milliseconds: history.firstReceivedAtMilliseconds)) + #","lastReceivedAt":"#
                + JSONText.quoted(JSONText.timestamp(milliseconds: history.lastReceivedAtMilliseconds))
                + (history.lastError.map { #","lastError":"# + JSONText.quoted($0) } ?? "") + "}"
        }
        if let unreadable = message.unreadableBody {
            body.writeString(head + #","body":null,"unreadable":"# + JSONText.quoted(unreadable) + "}")
            return
        }
        body.writeString(head + #","body":"#)
        body.writeImmutableBuffer(message.body)
        body.writeStaticString("}")
    }

    /// `GET /api/{queue}/messages/{id}`: the message with that id, wherever it is in the queue, as
    /// a peek shows it plus its `state` (`ready`, `delayed`, `inFlight`). Nothing changes. In
    /// flight it is found at once; ready messages (in receive order) and then delayed ones are
    /// searched through at most ``MessageLookup/maximumScanned`` per partition (a Redis script has
    /// no index by id), and the 404 says when that bound stopped the search.
    @Sendable func lookUp(request: Request, context: Context) async throws -> Response {
        let queue = try QueueController<Backend>.queueName(context)
        let id = context.parameters.get("receipt") ?? ""
        switch try await backend.lookUp(id, in: queue) {
        case .found(let message, let state):
            var body = ByteBufferAllocator().buffer(capacity: 256 + message.body.readableBytes)
            Self.write(message, state: state, to: &body)
            return QueueController<Backend>.json(status: .ok, body)
        case .notFound(let searchedAll):
            guard searchedAll else {
                throw APIError(
                    .notFound,
                    "no message \(id) in flight in \(queue) nor among the first \(MessageLookup.maximumScanned) ready and delayed messages of each of its partitions (the search stops there)"
                )
            }
            throw APIError(.notFound, "no message \(id) in \(queue)")
        }
    }

    /// `GET /api/{queue}/history`: the queue's samples of the last hour, oldest first, one per
    /// `intervalMs` at most (fewer when replicas were down, or the queue is younger):
    /// `{"queue", "intervalMs", "samples": [{"at", "measuredAt", "ready", "inFlight", "delayed",
    /// "deadLetter", "enqueued", "delivered", "acked"}]}`, `at` (the interval's start) and
    /// `measuredAt` in Unix milliseconds, the last three running totals (rates are their
    /// differences over the `measuredAt` differences). `deadLetter` is `null` for a key that may not see
    /// the dead-letter queue, as in the stats.
    @Sendable func history(request: Request, context: Context) async throws -> Response {
        let queue = try QueueController<Backend>.queueName(context)
        let samples = try await backend.history(of: queue)
        var showsDeadLetters = true
        if let grant = context.accessGrant, grant.queuePrefix != nil {
            showsDeadLetters = grant.permits(queue: try await backend.settings(of: queue).deadLetterQueue(of: queue).rawValue)
        }
        var json = #"{"queue":"# + JSONText.quoted(queue.rawValue) + #","intervalMs":"# + String(historyInterval.milliseconds) + #","samples":["#
        for (index, sample) in samples.enumerated() {
            json +=
                (index == 0 ? "" : ",") + #"{"at":"# + String(sample.atMilliseconds) + #","measuredAt":"# + String(sample.measuredAtMilliseconds)
                + #","ready":"# + String(sample.ready) + #","inFlight":"#
                + String(sample.inFlight) + #","delayed":"# + String(sample.delayed) + #","deadLetter":"#
                + (showsDeadLetters ? String(sample.deadLetter) : "null") + #","enqueued":"# + String(sample.enqueued) + #","delivered":"#
                + String(sample.delivered) + #","acked":"# + String(sample.acknowledged) + "}"
        }
        return QueueController<Backend>.json(status: .ok, json + "]}")
    }

    // MARK: Stats and management

    @Sendable func stats(request: Request, context: Context) async throws -> Response {
        let queue = try QueueController<Backend>.queueName(context)
        let stats = try await backend.stats(of: queue)
        // The dead-letter depth is another queue's figure: shown only if the key may see that queue.
        var deadLetterReady: Int? = stats.deadLetterReady
        if let grant = context.accessGrant, grant.queuePrefix != nil,
            !grant.permits(queue: try await backend.settings(of: queue).deadLetterQueue(of: queue).rawValue)
        {
            deadLetterReady = nil
        }
        func counters(_ counters: QueueCounters) -> String {
            #"{"enqueued":"# + String(counters.enqueued) + #","delivered":"# + String(counters.delivered) + #","acked":"#
                + String(counters.acknowledged) + #","retried":"# + String(counters.retried) + #","deadLettered":"#
                + String(counters.deadLettered) + #","expired":"# + String(counters.expired) + "}"
        }
        func rates(_ counters: QueueCounters) -> String {
            func perSecond(_ value: Int64) -> String { String(Double(value) / 60) }
            return #"{"enqueued":"# + perSecond(counters.enqueued) + #","delivered":"# + perSecond(counters.delivered) + #","acked":"#
                + perSecond(counters.acknowledged) + #","retried":"# + perSecond(counters.retried) + #","deadLettered":"#
                + perSecond(counters.deadLettered) + #","expired":"# + perSecond(counters.expired) + "}"
        }
        let json =
            #"{"queue":"# + JSONText.quoted(queue.rawValue) + #","ready":"# + String(stats.ready) + #","inFlight":"# + String(stats.inFlight)
            + #","delayed":"# + String(stats.delayed) + #","deadLetter":"# + (deadLetterReady.map { String($0) } ?? "null") + #","oldestAgeMs":"#
            + (stats.oldestReadyAgeMilliseconds.map { String($0) } ?? "null") + #","totals":"# + counters(stats.totals)
            + #","lastMinute":"# + counters(stats.lastMinute) + #","ratesPerSecond":"# + rates(stats.lastMinute) + "}"
        return QueueController<Backend>.json(status: .ok, json)
    }

    @Sendable func purge(request: Request, context: Context) async throws -> Response {
        let queue = try QueueController<Backend>.queueName(context)
        let purged = try await backend.purge(queue)
        context.logger.notice("queue purged", metadata: ["queue.name": "\(queue)", "message.count": "\(purged)"])
        return QueueController<Backend>.json(status: .ok, #"{"purged":"# + String(purged) + "}")
    }

    @Sendable func delete(request: Request, context: Context) async throws -> Response {
        let queue = try QueueController<Backend>.queueName(context)
        guard try await backend.delete(queue) else { throw APIError(.notFound, "no queue named \(queue)") }
        context.logger.notice("queue deleted", metadata: ["queue.name": "\(queue)"])
        return Response(status: .noContent)
    }

    @Sendable func list(request: Request, context: Context) async throws -> Response {
        // A key limited to a queue prefix sees only its own queues.
        let queues = try await backend.queues().filter { context.accessGrant?.permits(queue: $0.name.rawValue) ?? true }
        var json = #"{"queues":["#
        for (index, queue) in queues.enumerated() {
            if index > 0 { json += "," }
            json +=
                #"{"name":"# + JSONText.quoted(queue.name.rawValue) + #","ready":"# + String(queue.ready) + #","inFlight":"#
                + String(queue.inFlight) + #","delayed":"# + String(queue.delayed) + "}"
        }
        return QueueController<Backend>.json(status: .ok, json + "]}")
    }
}
