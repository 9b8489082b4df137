public import AsyncHTTPClient
import Foundation
public import Logging
import NIOCore
import SkiffSupport

/// OAuth access tokens of the service account this process runs as, from the metadata server that
/// Cloud Run, GKE and Compute Engine serve (`GET /computeMetadata/v1/instance/service-accounts/
/// default/token` with `Metadata-Flavor: Google`). They are what Memorystore's IAM authentication
/// takes as the `AUTH` password, and what Google's JSON APIs take as a bearer token.
///
/// A token is kept until it is close to expiry (tokens live about an hour):
/// - fresh (before `expiry - min(5 min, lifetime / 2)`): returned at once;
/// - still usable but due: returned at once while one refresh runs in the background;
/// - about to expire (`expiry - min(10 s, lifetime / 4)`) or none yet: the caller waits for the
///   refresh, which every concurrent caller shares (one request to the metadata server at a time).
///
/// A failed background refresh is logged and retried on the next call; a failed refresh that a
/// caller waits for throws ``GoogleCloudError``.
public actor GoogleAccessTokenSource {
    /// One token and the times that govern it, on the source's own clock.
    struct Token: Sendable {
        let value: String
        let refreshAt: Duration
        let usableUntil: Duration
    }

    public static let defaultMetadataHost = "metadata.google.internal"
    static let tokenPath = "/computeMetadata/v1/instance/service-accounts/default/token"
    /// A token response is a few hundred bytes; anything far larger is not one.
    static let maxResponseBytes = 64 * 1024

    private let url: String
    private let httpClient: HTTPClient
    private let requestTimeout: Duration
    private let logger: Logger
    private let now: @Sendable () -> Duration
    private var token: Token?
    private var refreshing: Task<Token, any Error>?

    /// - Parameters:
    ///   - metadataHost: `host[:port]` of the metadata server (`GCE_METADATA_HOST`, the variable
    ///     Google's own client libraries read, for an emulator or a test).
    ///   - requestTimeout: bounds one request and its body, so a connection attempt waiting for a
    ///     token does not wait longer.
    ///   - now: the clock the expiry is measured on (tests move it by hand).
    public init(
        metadataHost: String = GoogleAccessTokenSource.defaultMetadataHost,
        httpClient: HTTPClient = .shared,
        requestTimeout: Duration = .seconds(3),
        logger: Logger,
        now: @escaping @Sendable () -> Duration = { ContinuousClock.now - GoogleAccessTokenSource.epoch }
    ) {
        self.url = "http://\(metadataHost)\(Self.tokenPath)"
        self.httpClient = httpClient
        self.requestTimeout = requestTimeout
        self.logger = logger
        self.now = now
    }

    /// The origin of the default clock.
    public static let epoch = ContinuousClock.now

    /// A token valid for at least the next few seconds.
    public func accessToken() async throws -> String {
        let now = now()
        if let token, now < token.usableUntil {
            // Due: refresh behind the caller's back; a failure leaves the current token.
            if now >= token.refreshAt { _ = startRefresh() }
            return token.value
        }
        return try await startRefresh().value.value
    }

    /// The one refresh in flight, started if there is none. Set before this returns, so every
    /// caller until it ends shares it; it runs on the actor, so only it writes the token.
    private func startRefresh() -> Task<Token, any Error> {
        if let refreshing { return refreshing }
        let task = Task { () async throws -> Token in
            defer { self.refreshing = nil }
            do {
                let fresh = try await self.fetch()
                self.token = fresh
                return fresh
            } catch {
                self.logger.warning("cannot refresh the access token", metadata: ["error": "\(error)", "gcp.metadata.url": "\(self.url)"])
                throw error
            }
        }
        refreshing = task
        return task
    }

    /// One request, its body included, bounded by `requestTimeout` (the client's own deadline
    /// ends with the response head).
    private nonisolated func fetch() async throws -> Token {
        let (timeout, url) = (requestTimeout, url)
        return try await withThrowingTaskGroup(of: Token?.self) { group in
            group.addTask { try await self.fetchOnce() }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let token = first else {
                throw GoogleCloudError.metadataUnavailable("GET \(url): no answer within \(timeout)")
            }
            return token
        }
    }

    private nonisolated func fetchOnce() async throws -> Token {
        var request = HTTPClientRequest(url: url)
        request.headers.add(name: "Metadata-Flavor", value: "Google")
        let requestedAt = now()
        let response: HTTPClientResponse
        let body: ByteBuffer
        do {
            response = try await httpClient.execute(request, timeout: .nanoseconds(requestTimeout.nanoseconds))
            body = try await response.body.collect(upTo: Self.maxResponseBytes)
        } catch {
            throw GoogleCloudError.metadataUnavailable("GET \(url): \(error)")
        }
        return try Self.token(status: Int(response.status.code), flavor: response.headers.first(name: "Metadata-Flavor"), body: body, requestedAt: requestedAt)
    }

    /// Parses a token response; its lifetime counts from when it was asked for.
    static func token(status: Int, flavor: String?, body: ByteBuffer, requestedAt: Duration) throws -> Token {
        guard status == 200 else {
            throw GoogleCloudError.unexpectedResponse("status \(status): \(String(buffer: body).prefix(200))")
        }
        // The real server always says so; anything else answering on its address is not it.
        guard flavor == "Google" else {
            throw GoogleCloudError.unexpectedResponse("no Metadata-Flavor: Google header")
        }
        struct Response: Decodable {
            let access_token: String
            let expires_in: Int
            let token_type: String?
        }
        guard let decoded = try? JSONDecoder().decode(Response.self, from: Data(body.readableBytesView)),
            !decoded.access_token.isEmpty, decoded.expires_in > 0
        else {
            // Never the body itself: it may hold a token.
            throw GoogleCloudError.unexpectedResponse("a 200 of \(body.readableBytes) bytes that is not a token with a positive expires_in")
        }
        let lifetime = Duration.seconds(decoded.expires_in)
        let expiry = requestedAt + lifetime
        return Token(
            value: decoded.access_token,
            refreshAt: expiry - min(.seconds(300), lifetime / 2),
            usableUntil: expiry - min(.seconds(10), lifetime / 4)
        )
    }
}
