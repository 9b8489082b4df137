import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import SkiffQueue

extension HTTPField.Name {
    static let skiffMessageID = Self("Skiff-Message-Id")!
    static let skiffEnqueuedAt = Self("Skiff-Enqueued-At")!
    static let skiffReceiveCount = Self("Skiff-Receive-Count")!
}

/// The queue routes, over any ``QueueBackend``.
///
/// - `POST /api/{queue}`: store one JSON value, 201.
/// - `GET /api/{queue}?timeout=ms`: the oldest message (200) or nothing once the wait ends (204).
public struct QueueController<Backend: QueueBackend>: Sendable {
    public typealias Context = SkiffRequestContext
    let backend: Backend
    let settings: APISettings

    public init(backend: Backend, settings: APISettings) {
        self.backend = backend
        self.settings = settings
    }

    public func addRoutes(to router: Router<Context>) {
        router.post("/api/:queue", use: send)
        router.get("/api/:queue", use: receive)
        router.addMethodNotAllowed(path: "/api/:queue", allowed: [.get, .post])
    }

    @Sendable func send(request: Request, context: Context) async throws -> Response {
        let queue = try Self.queueName(context)
        if let declared = request.headers[.contentLength].flatMap(Int.init), declared > settings.maximumMessageBytes {
            throw tooLarge()
        }
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: settings.maximumMessageBytes)
        } catch is NIOTooManyBytesError {
            throw tooLarge()
        }
        if let error = JSONValidator.validate(body) {
            throw APIError(.badRequest, "body is not valid JSON: \(error)")
        }
        let sent = try await backend.send(body, to: queue)
        context.logger.debug("message enqueued", metadata: ["queue.name": "\(queue)", "message.id": "\(sent.id)"])
        let json =
            #"{"id":"# + JSONText.quoted(sent.id) + #","queue":"# + JSONText.quoted(queue.rawValue) + #","enqueuedAt":"#
            + JSONText.quoted(JSONText.timestamp(milliseconds: sent.enqueuedAtMilliseconds)) + "}"
        return Self.json(status: .created, json)
    }

    @Sendable func receive(request: Request, context: Context) async throws -> Response {
        let queue = try Self.queueName(context)
        let timeout = try parseTimeout(request.uri.queryParameters["timeout"].map(String.init))
        let backend = self.backend
        // Hummingbird does not cancel a handler when its client leaves: the wait is cancelled
        // when the client's side of the connection closes, and graceful shutdown ends it with 204.
        let receiving = Task {
            try await cancelWhenGracefulShutdown {
                try await backend.receive(from: queue, timeout: .milliseconds(timeout))
            }
        }
        let presence = await ClientPresence.watch(context.channel) { receiving.cancel() }
        let delivery: Delivery?
        do {
            delivery = try await withTaskCancellationHandler {
                try await receiving.value
            } onCancel: {
                receiving.cancel()
            }
        } catch is CancellationError {
            return Response(status: .noContent)
        }
        guard let delivery else { return Response(status: .noContent) }
        let settlement = DeliverySettlement(delivery: delivery, backend: backend, logger: context.logger)
        // The client left while the message was being claimed for it: nobody will read it.
        if presence.hasDeparted {
            await settlement.release()
            return Response(status: .noContent)
        }
        // The fence: if this replica stalled past half the lease since the claim, the message may
        // have been recovered and handed out elsewhere; then it is not ours to give.
        guard try await backend.confirm(delivery) else {
            settlement.abandon()
            return Response(status: .noContent)
        }
        return deliver(settlement)
    }

    /// The 200 response. The message is deleted for good only after its bytes were handed to the
    /// client's connection; if that fails it goes back to the head of its queue.
    private func deliver(_ settlement: DeliverySettlement<Backend>) -> Response {
        let delivery = settlement.delivery
        let backend = self.backend
        let message = delivery.message
        var headers: HTTPFields = [
            .contentType: "application/json",
            .skiffMessageID: message.id,
            .skiffEnqueuedAt: JSONText.timestamp(milliseconds: message.enqueuedAtMilliseconds),
            .skiffReceiveCount: String(message.receiveCount),
        ]
        headers[.contentLength] = String(message.body.readableBytes)
        return Response(
            status: .ok,
            headers: headers,
            body: ResponseBody(contentLength: message.body.readableBytes) { writer in
                // Fence again for a stall between the handler and this write (free unless one happened).
                guard try await backend.confirm(delivery) else {
                    settlement.abandon()
                    throw APIError(.serviceUnavailable, "the message was recovered by another replica")
                }
                do {
                    try await writer.write(message.body)
                } catch {
                    await settlement.release()
                    throw error
                }
                // The whole body is handed to the client's connection: delivered. Nothing that
                // happens after this proves otherwise: a fast client reads the response and closes
                // at once, so `finish` failing or the client leaving must not put the message back.
                await settlement.complete()
                try await writer.finish(nil)
            }
        )
    }

    private func parseTimeout(_ raw: String?) throws -> Int {
        guard let raw else { return settings.defaultTimeoutMilliseconds }
        let maximum = settings.maximumTimeoutMilliseconds
        guard !raw.isEmpty, raw.utf8.count <= 6, raw.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
            let value = Int(raw), value <= maximum
        else {
            throw APIError(.badRequest, "timeout must be an integer number of milliseconds from 0 to \(maximum)")
        }
        return value
    }

    private func tooLarge() -> APIError {
        APIError(.contentTooLarge, "message body is larger than MAX_MESSAGE_BYTES (\(settings.maximumMessageBytes) bytes)")
    }

    static func queueName(_ context: Context) throws -> QueueName {
        let raw = context.parameters.get("queue") ?? ""
        guard let name = QueueName(raw) else {
            throw APIError(.badRequest, "queue name must be 1 to 128 characters from A-Z, a-z, 0-9, '_' and '-'")
        }
        return name
    }

    static func json(status: HTTPResponse.Status, _ text: String) -> Response {
        let body = ByteBuffer(string: text)
        return Response(
            status: status,
            headers: [.contentType: "application/json; charset=utf-8", .contentLength: String(body.readableBytes)],
            body: .init(byteBuffer: body)
        )
    }
}

extension Router {
    /// Answers 405 with an `Allow` header for the methods a path does not serve.
    func addMethodNotAllowed(path: RouterPath, allowed: [HTTPRequest.Method]) {
        let allow = allowed.map(\.rawValue).joined(separator: ", ")
        let others: [HTTPRequest.Method] = [.get, .post, .put, .delete, .patch, .options].filter { !allowed.contains($0) }
        for method in others {
            on(path, method: method) { _, _ -> Response in
                throw APIError(.methodNotAllowed, "method not allowed here; use \(allow)", headers: [.allow: allow])
            }
        }
    }
}
