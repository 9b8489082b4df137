public import AsyncHTTPClient
import Foundation
public import Logging
public import NIOCore
import SkiffSupport
import Synchronization

/// A small client of Cloud Storage's JSON API for one bucket: upload (`uploadType=media`, the
/// body streamed with its length known), download (`alt=media`, streamed), delete and list. No
/// Google SDK exists for Swift; this covers what the payload store needs.
///
/// Every request carries `Authorization: Bearer <token>` from `accessToken` (in production
/// ``GoogleAccessTokenSource``'s; none for an emulator). Failures are ``GoogleCloudError``s:
/// ``GoogleCloudError/serviceUnavailable(_:status:)`` when the service cannot be reached, does not
/// answer within `requestTimeout`, or answers 5xx, 408 or 429 (retryable);
/// ``GoogleCloudError/notFound(_:)`` for 404; ``GoogleCloudError/requestRejected(_:status:)`` for
/// another 4xx. The client itself does not retry: an upload's body stream cannot be replayed, and
/// the caller knows whether a retry is worth its time.
public struct GoogleCloudStorage: Sendable {
    /// Cloud Storage's endpoint.
    public static let productionBaseURL = "https://storage.googleapis.com"
    /// An error answer is read this far for its message.
    static let maxErrorBodyBytes = 4 * 1024
    /// A metadata answer (an object, a page of 1 000 objects) is far smaller.
    static let maxMetadataBytes = 4 * 1024 * 1024

    public let baseURL: String
    public let bucket: String
    private let accessToken: (@Sendable () async throws -> String)?
    private let httpClient: HTTPClient
    private let requestTimeout: Duration
    private let logger: Logger

    /// - Parameters:
    ///   - baseURL: ``productionBaseURL``, or an emulator's `http://127.0.0.1:PORT`.
    ///   - accessToken: an OAuth token for each request (`{ try await source.accessToken() }`),
    ///     or nil to send none (an emulator).
    ///   - httpClient: its configuration's read timeout (`timeout.read`; 90 s on ``HTTPClient/shared``)
    ///     bounds a download whose body stalls, which `requestTimeout` does not cover.
    ///   - requestTimeout: bounds a request until its answer's head: for an upload, sending the
    ///     whole body; for a download, the first byte.
    public init(
        baseURL: String = GoogleCloudStorage.productionBaseURL,
        bucket: String,
        accessToken: (@Sendable () async throws -> String)?,
        httpClient: HTTPClient = .shared,
        requestTimeout: Duration = .seconds(30),
        logger: Logger
    ) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.bucket = bucket
        self.accessToken = accessToken
        self.httpClient = httpClient
        self.requestTimeout = requestTimeout
        self.logger = logger
    }

    /// Writes `body` (exactly `size` bytes) as object `name`, replacing any object of that name,
    /// and returns what Cloud Storage stored.
    ///
    /// Cloud Storage commits a simple upload only when all `size` bytes arrived, so a body that
    /// throws leaves no object (and its error is rethrown as it is). An error after the body was
    /// sent (a lost answer, a timeout) says nothing certain: the object may exist.
    public func upload<Body: AsyncSequence & Sendable>(
        name: String,
        body: Body,
        size: Int,
        contentType: String = "application/octet-stream"
    ) async throws -> Object where Body.Element == ByteBuffer {
        let url = "\(baseURL)/upload/storage/v1/b/\(Self.percentEncoded(bucket))/o?uploadType=media&name=\(Self.percentEncoded(name))"
        var request = HTTPClientRequest(url: url + "&fields=\(Self.percentEncoded(Self.objectFields))")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: contentType)
        // A failure of the body is the caller's, not the service's: kept to be rethrown as is.
        let bodyFailure = FailureRecord()
        let recorded = RecordingFailure(base: body, failure: bodyFailure)
        if size == 0 {
            // An empty body is sent as bytes, framed `Content-Length: 0` like any fixed body
            // (the stream is still read, so its failure or extra bytes are seen).
            for try await _ in recorded {}
            request.body = .bytes(ByteBuffer())
        } else {
            request.body = .stream(recorded, length: .known(Int64(size)))
        }
        let response: HTTPClientResponse
        do {
            response = try await send(request, operation: "upload \(name)")
        } catch {
            if let failure = bodyFailure.error { throw failure }
            throw error
        }
        return try await Self.decode(ObjectResource.self, from: response, operation: "upload \(name)").object()
    }

    /// Object `name`'s bytes as they arrive. The answer's head is checked before this returns
    /// (``GoogleCloudError/notFound(_:)`` for a missing object); a failure while reading the body
    /// is the client's (`HTTPClientError`).
    public func download(name: String) async throws -> HTTPClientResponse.Body {
        let request = HTTPClientRequest(url: "\(objectURL(name))?alt=media")
        return try await send(request, operation: "download \(name)").body
    }

    /// Deletes object `name`.
    /// - Throws: ``GoogleCloudError/notFound(_:)`` when there is none.
    public func delete(name: String) async throws {
        var request = HTTPClientRequest(url: objectURL(name))
        request.method = .DELETE
        let response = try await send(request, operation: "delete \(name)")
        // 204 with no body; reading it to the end frees the connection.
        _ = try? await response.body.collect(upTo: Self.maxErrorBodyBytes)
    }

    /// One page of the objects whose names start with `prefix`, in name order.
    /// - Parameters:
    ///   - pageToken: nil for the first page, then the previous page's `nextPageToken`.
    ///   - maxResults: at most this many objects (Cloud Storage caps a page at 1 000).
    public func list(prefix: String, pageToken: String?, maxResults: Int = 1000) async throws -> ObjectPage {
        var url = "\(baseURL)/storage/v1/b/\(Self.percentEncoded(bucket))/o?prefix=\(Self.percentEncoded(prefix))&maxResults=\(maxResults)"
        url += "&fields=\(Self.percentEncoded("nextPageToken,items(\(Self.objectFields))"))"
        if let pageToken { url += "&pageToken=\(Self.percentEncoded(pageToken))" }
        let response = try await send(HTTPClientRequest(url: url), operation: "list \(prefix)")
        let page = try await Self.decode(ListResource.self, from: response, operation: "list \(prefix)")
        return ObjectPage(objects: try (page.items ?? []).map { try $0.object() }, nextPageToken: page.nextPageToken)
    }

    /// The object's path: its name is one path segment, so a `/` in it is `%2F`.
    private func objectURL(_ name: String) -> String {
        "\(baseURL)/storage/v1/b/\(Self.percentEncoded(bucket))/o/\(Self.percentEncoded(name))"
    }

    /// Sends `request` with a token and the deadline; returns only a 2xx answer.
    private func send(_ request: HTTPClientRequest, operation: String) async throws -> HTTPClientResponse {
        try await Self.send(request, operation: operation, accessToken: accessToken, httpClient: httpClient, timeout: requestTimeout, logger: logger)
    }

    /// Sends `request` to a Google API with a bearer token from `accessToken` (none if nil) within
    /// `timeout`; returns only a 2xx answer, and throws ``GoogleCloudError``s for the rest.
    static func send(
        _ request: HTTPClientRequest, operation: String, accessToken: (@Sendable () async throws -> String)?, httpClient: HTTPClient,
        timeout: Duration, logger: Logger
    ) async throws -> HTTPClientResponse {
        var request = request
        if let accessToken {
            let token: String
            do {
                token = try await accessToken()
            } catch let error as GoogleCloudError {
                throw error
            } catch {
                throw GoogleCloudError.serviceUnavailable("\(operation): no access token: \(error)")
            }
            request.headers.add(name: "Authorization", value: "Bearer \(token)")
        }
        let response: HTTPClientResponse
        do {
            response = try await httpClient.execute(request, timeout: .nanoseconds(timeout.nanoseconds), logger: logger)
        } catch {
            throw GoogleCloudError.serviceUnavailable("\(operation): \(error)")
        }
        let status = Int(response.status.code)
        guard !(200..<300).contains(status) else { return response }
        let body = (try? await response.body.collect(upTo: Self.maxErrorBodyBytes)).map { String(buffer: $0).prefix(300) } ?? ""
        throw Self.error(status: status, detail: "\(operation): \(status) \(body)")
    }

    /// The error for an answer that is not a 2xx.
    static func error(status: Int, detail: String) -> GoogleCloudError {
        switch status {
        case 404: .notFound(detail)
        case 408, 429, 500...599: .serviceUnavailable(detail, status: status)
        default: .requestRejected(detail, status: status)
        }
    }

    static func decode<Resource: Decodable>(_ type: Resource.Type, from response: HTTPClientResponse, operation: String) async throws -> Resource {
        let body: ByteBuffer
        do {
            body = try await response.body.collect(upTo: maxMetadataBytes)
        } catch {
            throw GoogleCloudError.serviceUnavailable("\(operation): reading the answer: \(error)", status: Int(response.status.code))
        }
        do {
            return try JSONDecoder().decode(Resource.self, from: Data(body.readableBytesView))
        } catch {
            throw GoogleCloudError.serviceUnavailable(
                "\(operation): an answer that is not the documented JSON: \(String(buffer: body).prefix(200))", status: Int(response.status.code))
        }
    }

    /// `text` with every byte but RFC 3986's unreserved characters percent-encoded: fit for a path
    /// segment or a query value.
    static func percentEncoded(_ text: String) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var encoded = [UInt8]()
        encoded.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                encoded.append(byte)
            default:
                encoded.append(contentsOf: [UInt8(ascii: "%"), hex[Int(byte >> 4)], hex[Int(byte & 0x0F)]])
            }
        }
        return String(decoding: encoded, as: UTF8.self)
    }
}

/// A body sequence that remembers the error it threw.
private struct RecordingFailure<Base: AsyncSequence & Sendable>: AsyncSequence, Sendable where Base.Element == ByteBuffer {
    typealias Element = ByteBuffer
    let base: Base
    let failure: FailureRecord

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(base: base.makeAsyncIterator(), failure: failure) }

    struct AsyncIterator: AsyncIteratorProtocol {
        var base: Base.AsyncIterator
        let failure: FailureRecord

        mutating func next() async throws -> ByteBuffer? {
            do {
                // Empty chunks are skipped: an empty write is nothing to send.
                while let chunk = try await base.next() {
                    if chunk.readableBytes > 0 { return chunk }
                }
                return nil
            } catch {
                failure.error = error
                throw error
            }
        }
    }
}

/// The error a body sequence threw, if any, read once the request has ended.
private final class FailureRecord: Sendable {
    private let state = Mutex<(any Error)?>(nil)

    var error: (any Error)? {
        get { state.withLock { $0 } }
        set { state.withLock { $0 = newValue } }
    }
}
