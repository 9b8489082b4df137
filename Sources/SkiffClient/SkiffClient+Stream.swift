import Foundation
import HTTPTypes
import Logging
import NIOCore
import WSClient

/// Consuming over a WebSocket (`GET /api/{q}/stream`, README "Streams"): no request per message.
extension SkiffClient {
    /// Consumes `queue` over one WebSocket until the task is cancelled (then the stream closes and
    /// the server releases what it held) or the server closes it.
    ///
    /// Each message goes to `handler` in order; when it returns, the message is acked on the
    /// stream; when it throws, it is nacked (the queue's backoff). At most `credit` messages are
    /// unsettled at once: the server sends the next as the client settles one. Delivery is
    /// acknowledged underneath, so a message whose handler never finished comes back after
    /// `visibility` (the queue's visibility timeout when `nil`), or at once when the stream ends.
    /// - Throws: ``SkiffClientError`` when the stream cannot be opened or the server ends it with
    ///   an error (its close code and reason in the message).
    public func stream(
        from queue: String,
        credit: Int = 100,
        visibility: Duration? = nil,
        handler: @escaping @Sendable (ReceivedMessage) async throws -> Void
    ) async throws {
        var url = configuration.url.replacingOccurrences(of: "http://", with: "ws://").replacingOccurrences(of: "https://", with: "wss://")
        url += Self.path(queue, "stream") + "?credit=\(max(1, credit))"
        if let visibility { url += "&visibility=\(visibility.milliseconds)" }
        var headers = HTTPFields()
        if let apiKey = configuration.apiKey { headers[.authorization] = "Bearer \(apiKey)" }
        let logger = self.logger
        let close: WebSocketCloseFrame?
        do {
            close = try await WebSocketClient.connect(
                url: url, configuration: .init(maxFrameSize: Self.maximumAnswerBytes, additionalHeaders: headers), logger: self.streamLogger
            ) { inbound, outbound, _ in
                for try await frame in inbound.messages(maxSize: Self.maximumAnswerBytes) {
                    guard case .text(let text) = frame else { continue }
                    let bytes = Array(text.utf8)
                    guard let object = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] else { continue }
                    switch object["op"] as? String {
                    case "message":
                        guard let id = object["id"] as? String, let receipt = object["receipt"] as? String,
                            let body = BatchBodies.ranges(in: Array("[".utf8) + bytes + Array("]".utf8))?.first ?? nil
                        else { continue }
                        let message = ReceivedMessage(
                            queue: queue,
                            id: id,
                            // The body's own bytes, as sent (shifted by the "[" around the frame).
                            body: ByteBuffer(bytes: bytes[(body.lowerBound - 1)..<(body.upperBound - 1)]),
                            receipt: receipt,
                            receiveCount: object["receiveCount"] as? Int ?? 1,
                            priority: object["priority"] as? Int ?? 0,
                            enqueuedAt: object["enqueuedAt"] as? String
                        )
                        let receiptText = String(decoding: try JSONSerialization.data(withJSONObject: receipt, options: .fragmentsAllowed), as: UTF8.self)
                        do {
                            try await handler(message)
                            try await outbound.write(.text(#"{"op":"ack","receipt":\#(receiptText)}"#))
                        } catch is CancellationError {
                            // Ending: the stream's close releases the message at once.
                            throw CancellationError()
                        } catch {
                            try await outbound.write(.text(#"{"op":"nack","receipt":\#(receiptText)}"#))
                        }
                    case "error":
                        logger.warning("the stream answered an error", metadata: ["error": "\(object["error"] ?? "")"])
                    default:
                        continue
                    }
                }
            }
        } catch is CancellationError {
            return
        } catch {
            throw SkiffClientError(kind: .connection, message: "the stream \(url) failed: \(error); is SKIFF_URL the server's address?")
        }
        if let close, close.closeCode != .normalClosure {
            throw SkiffClientError(
                kind: .server, message: "the server closed the stream: \(close.closeCode) \(close.reason ?? "")", mayHaveRun: true)
        }
    }
}
