import Logging
import NIOCore
import SkiffTestSupport
import Synchronization
import Testing

@testable import SkiffGoogleCloud

/// The metadata server's tokens: asked for once while fresh, refreshed behind the caller when
/// due, waited for when about to expire, and every way the server can answer wrongly.
@Suite("Google access tokens", .timeLimit(.minutes(1)))
struct GoogleAccessTokenSourceTests {
    /// A clock the test moves by hand.
    final class ManualClock: Sendable {
        private let time = Mutex(Duration.seconds(1_000))
        var now: Duration { time.withLock { $0 } }
        func advance(by duration: Duration) { time.withLock { $0 += duration } }
    }

    static let logger = Logger(label: "test")

    static func source(_ host: String, clock: ManualClock) -> GoogleAccessTokenSource {
        GoogleAccessTokenSource(metadataHost: host, logger: logger, now: { clock.now })
    }

    /// A source on a fake metadata server, which has handed out `ya29.first` (valid an hour) and
    /// will hand out `then` next.
    static func afterFirstToken(
        then next: FakeMetadataServer.Answer, _ body: @Sendable (GoogleAccessTokenSource, ManualClock, FakeMetadataServer) async throws -> Void
    ) async throws {
        let server = FakeMetadataServer()
        server.answer(with: .token("ya29.first", expiresIn: 3599))
        try await server.run { host in
            let clock = ManualClock()
            let source = Self.source(host, clock: clock)
            #expect(try await source.accessToken() == "ya29.first")
            server.answer(with: next)
            try await body(source, clock, server)
        }
    }

    @Test func aFreshTokenIsAskedForOnceWhateverTheNumberOfCallers() async throws {
        let server = FakeMetadataServer()
        server.answer(with: .token("ya29.first", expiresIn: 3599))
        try await server.run { host in
            let clock = ManualClock()
            let source = Self.source(host, clock: clock)
            let tokens = try await withThrowingTaskGroup(of: String.self) { group in
                for _ in 0..<50 { group.addTask { try await source.accessToken() } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(Set(tokens) == ["ya29.first"])
            #expect(server.requests == 1)
            #expect(server.refusedWithoutFlavor == 0)
            // Still fresh 54 minutes on (it is due 5 minutes before its hour ends).
            clock.advance(by: .seconds(54 * 60))
            #expect(try await source.accessToken() == "ya29.first")
            #expect(server.requests == 1)
        }
    }

    @Test func aDueTokenIsReturnedAtOnceAndRefreshedBehindTheCaller() async throws {
        try await Self.afterFirstToken(then: .token("ya29.second", expiresIn: 3599)) { source, clock, server in
            // Inside the last 5 minutes: due, still usable.
            clock.advance(by: .seconds(3599 - 200))
            #expect(try await source.accessToken() == "ya29.first")
            let next = try await eventually(until: { $0 == "ya29.second" }) { try await source.accessToken() }
            #expect(next == "ya29.second")
            #expect(server.requests == 2)
        }
    }

    @Test func aTokenAboutToExpireIsNeverHandedOut() async throws {
        try await Self.afterFirstToken(then: .token("ya29.second", expiresIn: 3599)) { source, clock, server in
            // 5 s before expiry: the caller waits for the new one.
            clock.advance(by: .seconds(3599 - 5))
            let token = try await source.accessToken()
            #expect(token == "ya29.second")
            #expect(server.requests == 2)
        }
    }

    @Test func aShortLivedTokenIsRefreshedHalfwayAndKeptUntilItsLastQuarter() throws {
        // The metadata server may hand out a cached token with little life left.
        let token = try GoogleAccessTokenSource.token(
            status: 200, flavor: "Google", body: ByteBuffer(string: #"{"access_token":"t","expires_in":40}"#), requestedAt: .seconds(100))
        #expect(token.refreshAt == .seconds(120))
        #expect(token.usableUntil == .seconds(130))
        let long = try GoogleAccessTokenSource.token(
            status: 200, flavor: "Google", body: ByteBuffer(string: #"{"access_token":"t","expires_in":3599,"token_type":"Bearer"}"#),
            requestedAt: .zero)
        #expect(long.refreshAt == .seconds(3299))
        #expect(long.usableUntil == .seconds(3589))
    }

    @Test func aFailedBackgroundRefreshKeepsTheUsableTokenAndAFailedNeededOneThrows() async throws {
        try await Self.afterFirstToken(then: .failure(status: 500, body: "internal")) { source, clock, server in
            clock.advance(by: .seconds(3599 - 200))
            #expect(try await source.accessToken() == "ya29.first")
            _ = try await eventually(until: { $0 >= 2 }) { server.requests }
            #expect(try await source.accessToken() == "ya29.first")
            clock.advance(by: .seconds(195))
            let error = await #expect(throws: GoogleCloudError.self) { try await source.accessToken() }
            #expect(error == .unexpectedResponse(""))
            #expect(error?.detail.contains("status 500: internal") == true)
            // The server recovers: so does the source (a refresh that was already under way when
            // it did may still fail its callers).
            server.answer(with: .token("ya29.second", expiresIn: 3599))
            let recovered = try await eventually(until: { $0 == "ya29.second" }) { try? await source.accessToken() }
            #expect(recovered == "ya29.second")
        }
    }

    @Test func anAnswerWithoutTheMetadataFlavorIsNotAToken() async throws {
        let server = FakeMetadataServer()
        server.answer(with: .withoutFlavor(#"{"access_token":"forged","expires_in":3599}"#))
        try await server.run { host in
            let source = Self.source(host, clock: ManualClock())
            let error = await #expect(throws: GoogleCloudError.self) { try await source.accessToken() }
            #expect(error == .unexpectedResponse(""))
            #expect(error?.detail.contains("Metadata-Flavor") == true)
        }
    }

    @Test(arguments: [
        #"{"expires_in":3599}"#, #"{"access_token":"","expires_in":3599}"#, #"{"access_token":"t","expires_in":0}"#, "not json",
        #"{"access_token":"t"}"#,
    ])
    func aBodyThatIsNotATokenIsRefused(body: String) {
        #expect(throws: GoogleCloudError.unexpectedResponse("")) {
            try GoogleAccessTokenSource.token(status: 200, flavor: "Google", body: ByteBuffer(string: body), requestedAt: .zero)
        }
    }

    /// A 200 body that is not a token may still hold one: it never reaches an error or a log.
    @Test func aBrokenTokenResponseIsNotEchoed() {
        let error = #expect(throws: GoogleCloudError.self) {
            try GoogleAccessTokenSource.token(
                status: 200, flavor: "Google", body: ByteBuffer(string: #"{"access_token":"ya29.secret","expires_in":"soon"}"#), requestedAt: .zero)
        }
        #expect(error?.detail.contains("ya29.secret") == false)
    }

    /// The client's own deadline ends with the response head; the source's covers the body too.
    @Test func aStalledBodyEndsAtTheRequestTimeout() async throws {
        let server = FakeMetadataServer()
        server.answer(with: .stalledBody)
        try await server.run { host in
            let source = GoogleAccessTokenSource(metadataHost: host, requestTimeout: .seconds(1), logger: Self.logger)
            let error = await #expect(throws: GoogleCloudError.self) { try await source.accessToken() }
            #expect(error == .metadataUnavailable(""))
            #expect(error?.detail.contains("no answer within") == true)
        }
    }

    @Test func noMetadataServerIsAClearError() async throws {
        let port = try RedisServerProcess.freePort()
        let source = GoogleAccessTokenSource(metadataHost: "127.0.0.1:\(port)", requestTimeout: .seconds(2), logger: Self.logger)
        let error = await #expect(throws: GoogleCloudError.self) { try await source.accessToken() }
        #expect(error == .metadataUnavailable(""))
        #expect(error?.detail.contains("127.0.0.1:\(port)") == true)
    }
}
