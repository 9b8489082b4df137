import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOWebSocket
import SkiffQueue

/// What a WebSocket upgrade to `/api/{queue}/stream` opens: its parameters, and the caller's
/// grant or why it must close at once (1008: a browser cannot read an HTTP 401, a close reason it can).
struct StreamOpening: Sendable {
    var parameters: StreamParameters
    var access: Result<AccessGrant?, StreamAccessRefusal>
    /// The subprotocol the answer selects: `skiff` when offered, else the key's (a browser fails a
    /// handshake that offered subprotocols and got none back).
    var subprotocol: String?
}

struct StreamAccessRefusal: Error, Equatable {
    var reason: String
}

/// Whether a request opens a stream. `.refuse` carries the HTTP answer of a declined upgrade
/// (the request then goes on to the route, which gives it).
enum StreamDecision: Sendable {
    case open(StreamOpening)
    case refuse(APIError)
}

/// What the server channel needs to upgrade a connection to a stream and run it, whatever the backend.
protocol StreamUpgrading: Sendable {
    /// The largest frame (and reassembled message) a stream accepts.
    var maximumFrameBytes: Int { get }
    /// `nil` when `uri` is not a stream's.
    func decide(uri: String, authorization: String?, subprotocols: String?) -> StreamDecision?
    func run(_ channel: NIOAsyncChannel<WebSocketFrame, Never>, opening: StreamOpening, logger: Logger) async
}

/// The streams of one replica: decides upgrades (the same decision answers a declined one's
/// route), counts open streams against `MAX_STREAMS`, and runs each one's session.
struct StreamEndpoint<Backend: QueueBackend>: StreamUpgrading {
    let exchange: MessageExchange<Backend>
    let policy: AccessPolicy
    let rateLimiter: RateLimiter?
    let streams: ConnectionLimiter
    let pingInterval: Duration
    let accessLog: Bool

    /// A publish frame's fields around its body fit in this much.
    static var frameEnvelopeBytes: Int { 16 << 10 }
    /// The subprotocol a client offers, and the prefix of the one that carries its API key.
    static var subprotocol: String { "skiff" }
    static var keySubprotocolPrefix: String { "skiff.key." }

    var maximumFrameBytes: Int { exchange.settings.maximumMessageBytes + Self.frameEnvelopeBytes }

    func decide(uri: String, authorization: String?, subprotocols: String?) -> StreamDecision? {
        let (path, query) = Self.split(uri)
        let segments = path.split(separator: "/", omittingEmptySubsequences: true)
        guard segments.count == 3, segments[0] == "api", segments[2] == "stream" else { return nil }
        guard let queue = QueueName(segments[1]) else {
            return .refuse(APIError(.badRequest, "queue name must be 1 to 128 characters from A-Z, a-z, 0-9, '_' and '-'"))
        }
        let parameters: StreamParameters
        do {
            parameters = try StreamParameters(queue: queue, query: Self.pairs(query))
            if parameters.signedPayloadURLs { try exchange.checkSignsPayloadURLs() }
        } catch {
            return .refuse(error)
        }
        guard streams.count < streams.maximum else {
            return .refuse(
                APIError(
                    .serviceUnavailable,
                    "this replica holds its maximum of \(streams.maximum) streams (MAX_STREAMS); retry shortly",
                    headers: [.retryAfter: "1"]
                )
            )
        }
        let offered = (subprotocols ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        var authorization = authorization
        if authorization == nil, let key = offered.first(where: { $0.hasPrefix(Self.keySubprotocolPrefix) }) {
            let encoded = key.dropFirst(Self.keySubprotocolPrefix.count)
            // An undecodable key is no key: the policy words the refusal.
            authorization = Self.base64URLDecoded(encoded).map { "Bearer " + $0 } ?? "Bearer -"
        }
        let access: Result<AccessGrant?, StreamAccessRefusal>
        switch policy.decide(method: .get, path: "/api/\(segments[1])/stream", authorization: authorization) {
        case .allow(let grant):
            if parameters.credit > 0, let grant, !grant.scopes.contains(.receive) {
                access = .failure(StreamAccessRefusal(reason: "this API key lacks the 'receive' scope: open with credit=0 to publish only"))
            } else {
                access = .success(grant)
            }
        case .unauthenticated(let reason), .forbidden(let reason):
            access = .failure(StreamAccessRefusal(reason: reason))
        }
        let selected = offered.contains(Self.subprotocol) ? Self.subprotocol : offered.first { $0.hasPrefix(Self.keySubprotocolPrefix) }
        return .open(StreamOpening(parameters: parameters, access: access, subprotocol: selected))
    }

    func run(_ channel: NIOAsyncChannel<WebSocketFrame, Never>, opening: StreamOpening, logger: Logger) async {
        var logger = logger
        logger[metadataKey: "queue.name"] = "\(opening.parameters.queue)"
        let output = WebSocketStreamOutput(channel: channel.channel)
        let grant: AccessGrant?
        switch opening.access {
        case .failure(let refusal):
            logger.debug("stream refused: not allowed", metadata: ["auth.reason": "\(refusal.reason)"])
            await Self.refuse(channel, output: output, code: .policyViolation, reason: refusal.reason)
            return
        case .success(let allowed):
            grant = allowed
        }
        // Counted here, not at the upgrade decision: two upgrades racing for the last place
        // cannot both pass.
        guard streams.admit() else {
            await Self.refuse(
                channel, output: output, code: WebSocketErrorCode(codeNumber: 1013), reason: "too many streams on this replica (MAX_STREAMS); retry")
            return
        }
        defer { streams.release() }
        let session = StreamSession(
            parameters: opening.parameters,
            exchange: exchange,
            grant: grant,
            rateLimiter: rateLimiter,
            output: output,
            logger: logger,
            // A client may also settle over HTTP: a full window looks now and then.
            reconcileInterval: .seconds(1)
        )
        let watcher = try? await channel.channel.pipeline.handler(type: StreamPongWatcher.self).get()
        let connection = WebSocketStreamConnection(
            session: session,
            output: output,
            pingInterval: pingInterval,
            maximumMessageBytes: maximumFrameBytes,
            liveness: watcher?.liveness ?? StreamLiveness()
        )
        let started = ContinuousClock.now
        exchange.metrics.streamOpened()
        await connection.run(channel)
        exchange.metrics.streamClosed()
        if accessLog {
            let counts = session.summary
            logger.info(
                "stream closed",
                metadata: [
                    "auth.key": "\(grant?.keyName ?? "-")",
                    "stream.delivered": "\(counts.delivered)",
                    "stream.published": "\(counts.published)",
                    "stream.acked": "\(counts.acked)",
                    "stream.released": "\(counts.released)",
                    "stream.close_code": "\(connection.sentCloseCode.map { String(UInt16(webSocketErrorCode: $0)) } ?? "-")",
                    "duration_ms": "\((ContinuousClock.now - started).milliseconds)",
                ]
            )
        }
    }

    /// Closes a stream that may not open, with `code` and `reason`, and waits (briefly) for the
    /// client's answer so the reason reaches it before the TCP connection ends.
    private static func refuse(_ channel: NIOAsyncChannel<WebSocketFrame, Never>, output: WebSocketStreamOutput, code: WebSocketErrorCode, reason: String) async
    {
        let raw = channel.channel
        try? await channel.executeThenClose { inbound in
            _ = output.control(.connectionClose, WebSocketStreamOutput.closeData(code, reason: reason))
            raw.eventLoop.scheduleTask(in: TimeAmount(streamCloseTimeout)) { raw.close(promise: nil) }
            for try await frame in inbound where frame.opcode == .connectionClose { return }
        }
    }

    // MARK: Request parts

    static func split(_ uri: String) -> (path: Substring, query: Substring) {
        guard let mark = uri.firstIndex(of: "?") else { return (Substring(uri), "") }
        return (uri[..<mark], uri[uri.index(after: mark)...])
    }

    /// `name=value` pairs as sent (the values Skiff reads are digits and words: nothing to decode).
    static func pairs(_ query: Substring) -> [(name: Substring, value: Substring)] {
        query.split(separator: "&").map { pair in
            guard let equals = pair.firstIndex(of: "=") else { return (pair, "") }
            return (pair[..<equals], pair[pair.index(after: equals)...])
        }
    }

    /// base64url without padding (RFC 4648 §5), as a subprotocol token can carry any key.
    static func base64URLDecoded(_ text: Substring) -> String? {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.utf8.count % 4 != 0 { base64 += "=" }
        guard let data = Data(base64Encoded: base64) else { return nil }
        return String(data: data, encoding: .utf8)
    }
}

/// `GET /api/{queue}/stream` when it was not upgraded: says why, with the status a client can act
/// on (426 without an upgrade, 400 for bad parameters, 503 past MAX_STREAMS).
struct StreamController: Sendable {
    typealias Context = SkiffRequestContext
    let streams: any StreamUpgrading

    func addRoutes(to router: Router<Context>) {
        router.get("/api/:queue/stream", use: declined)
        router.addMethodNotAllowed(path: "/api/:queue/stream", allowed: [.get])
    }

    @Sendable func declined(request: Request, context: Context) async throws -> Response {
        let decision = streams.decide(
            uri: request.uri.description,
            authorization: request.headers[.authorization],
            subprotocols: request.headers[values: .secWebSocketProtocol].joined(separator: ",")
        )
        // An invalid name or parameter first, whatever else is wrong with the request.
        if case .refuse(let error)? = decision, error.status == .badRequest { throw error }
        guard request.headers[.upgrade]?.lowercased() == "websocket" else {
            throw APIError(
                .init(code: 426, reasonPhrase: "Upgrade Required"),
                "this is a WebSocket endpoint: connect with a WebSocket client (Upgrade: websocket); see docs/streams.md",
                headers: [.upgrade: "websocket", .connection: "Upgrade"]
            )
        }
        if case .refuse(let error)? = decision { throw error }
        guard request.headers[.secWebSocketKey] != nil, request.headers[.secWebSocketVersion] == "13" else {
            throw APIError(.badRequest, "not a WebSocket handshake: Sec-WebSocket-Key and Sec-WebSocket-Version: 13 are required")
        }
        // NIO upgrades only a connection's first request; or MAX_STREAMS filled up meanwhile.
        throw APIError(
            .serviceUnavailable,
            "the stream could not be opened on this connection (an upgrade must be its first request); retry on a new connection",
            headers: [.retryAfter: "1"]
        )
    }

}
