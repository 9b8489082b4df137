public import HTTPTypes
public import Hummingbird
public import NIOCore
import SkiffQueue
import SkiffSupport

/// An error answer: a status and a message a person can act on, always rendered as
/// `{"error": "<message>"}`. Every failure becomes one of these in ``APIError/init(from:)``.
public struct APIError: Error, HTTPResponseError, Sendable {
    public let status: HTTPResponse.Status
    public let message: String
    public var headers: HTTPFields

    public init(_ status: HTTPResponse.Status, _ message: String, headers: HTTPFields = [:]) {
        self.status = status
        self.message = message
        self.headers = headers
    }

    /// What an ack, nack or visibility change of a receipt that settles nothing answers (404),
    /// over HTTP and on a stream alike.
    static var unknownReceiptMessage: String {
        "unknown or stale receipt: the message was acked, or redelivered since this receipt was issued"
    }

    /// The one place where failures are mapped to HTTP.
    public init(from error: any Error) {
        switch error {
        case let error as APIError:
            self = error
        case let error as QueueError:
            switch error.kind {
            case .unavailable: self.init(.serviceUnavailable, error.message, headers: [.retryAfter: "1"])
            case .insufficientStorage: self.init(.init(code: 507, reasonPhrase: "Insufficient Storage"), error.message)
            case .queueFull: self.init(.tooManyRequests, error.message, headers: [.retryAfter: "1"])
            case .invalidArgument: self.init(.badRequest, error.message)
            case .tooManyQueues, .conflict: self.init(.conflict, error.message)
            case .unsupported: self.init(.notImplemented, error.message)
            case .payloadUnreadable: self.init(.badGateway, error.message)
            case .tooLarge: self.init(.contentTooLarge, error.message)
            case .internalError: self.init(.internalServerError, error.message)
            }
        case is NIOTooManyBytesError:
            self.init(.contentTooLarge, "request body is larger than the limit")
        case let error as HTTPError:
            switch error.status {
            case .notFound: self.init(.notFound, "no such endpoint")
            case .contentTooLarge: self.init(.contentTooLarge, "request body is larger than the limit")
            default: self.init(error.status, error.body ?? error.status.reasonPhrase, headers: error.headers)
            }
        case let error as any HTTPResponseError:
            self.init(error.status, error.status.reasonPhrase)
        default:
            self.init(.internalServerError, "internal error")
        }
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let (headers, body) = rendered()
        return Response(status: status, headers: headers, body: .init(byteBuffer: body))
    }

    /// The headers and the `{"error": ...}` body of this error's response.
    func rendered() -> (HTTPFields, ByteBuffer) {
        var headers = self.headers
        headers[.contentType] = "application/json; charset=utf-8"
        let body = ByteBuffer(string: #"{"error":"# + JSONText.quoted(message) + "}")
        headers[.contentLength] = String(body.readableBytes)
        return (headers, body)
    }
}

/// Renders every thrown error as JSON, so not-found routes, limits and backend failures all share
/// one body shape.
public struct JSONErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    public init() {}

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            let apiError = APIError(from: error)
            if apiError.status.code >= 500 {
                context.logger.error("request failed", metadata: ["http.status": "\(apiError.status.code)", "error": "\(error)"])
            }
            return try apiError.response(from: request, context: context)
        }
    }
}

/// Small helpers for writing JSON by hand on hot paths.
public enum JSONText {
    /// `value` as a JSON string literal, quotes included.
    public static func quoted(_ value: String) -> String {
        JSONStringLiteral.quoted(value)
    }

    /// Writes `value` as a JSON string literal, quotes included.
    public static func writeQuoted(_ value: String, to buffer: inout ByteBuffer) {
        guard value.utf8.allSatisfy(JSONStringLiteral.isPlain) else {
            buffer.writeString(quoted(value))
            return
        }
        buffer.writeInteger(UInt8(ascii: "\""))
        buffer.writeString(value)
        buffer.writeInteger(UInt8(ascii: "\""))
    }

    /// RFC 3339 UTC timestamp with milliseconds, e.g. `2026-11-23T14:05:09.123Z`.
    public static func timestamp(milliseconds: Int64) -> String {
        var buffer = ByteBufferAllocator().buffer(capacity: 24)
        writeTimestamp(milliseconds: milliseconds, to: &buffer)
        return String(buffer: buffer)
    }

    /// Writes ``timestamp(milliseconds:)`` without building a string.
    public static func writeTimestamp(milliseconds: Int64, to buffer: inout ByteBuffer) {
        let seconds = milliseconds >= 0 ? milliseconds / 1000 : (milliseconds - 999) / 1000
        let millis = Int(milliseconds - seconds * 1000)
        var days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = Int(seconds - days * 86_400)
        // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
        days += 719_468
        let era = (days >= 0 ? days : days - 146_096) / 146_097
        let dayOfEra = days - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        let year = Int(yearOfEra + era * 400 + (month <= 2 ? 1 : 0))
        if year < 0 { buffer.writeInteger(UInt8(ascii: "-")) }
        writeDigits(abs(year), width: 4, to: &buffer)
        buffer.writeInteger(UInt8(ascii: "-"))
        writeDigits(Int(month), width: 2, to: &buffer)
        buffer.writeInteger(UInt8(ascii: "-"))
        writeDigits(Int(day), width: 2, to: &buffer)
        buffer.writeInteger(UInt8(ascii: "T"))
        writeDigits(secondOfDay / 3600, width: 2, to: &buffer)
        buffer.writeInteger(UInt8(ascii: ":"))
        writeDigits(secondOfDay / 60 % 60, width: 2, to: &buffer)
        buffer.writeInteger(UInt8(ascii: ":"))
        writeDigits(secondOfDay % 60, width: 2, to: &buffer)
        buffer.writeInteger(UInt8(ascii: "."))
        writeDigits(millis, width: 3, to: &buffer)
        buffer.writeInteger(UInt8(ascii: "Z"))
    }

    /// A non-negative number in decimal, zero-padded to at least `width` digits.
    private static func writeDigits(_ value: Int, width: Int, to buffer: inout ByteBuffer) {
        var divisor = 1
        var digits = 1
        while divisor <= value / 10 {
            divisor *= 10
            digits += 1
        }
        for _ in digits..<max(digits, width) { buffer.writeInteger(UInt8(ascii: "0")) }
        var rest = value
        while divisor > 0 {
            buffer.writeInteger(UInt8(ascii: "0") + UInt8(rest / divisor))
            rest %= divisor
            divisor /= 10
        }
    }
}
