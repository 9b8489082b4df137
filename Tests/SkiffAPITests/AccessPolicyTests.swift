import HTTPTypes
import SkiffAPI
import Testing

/// The access rules as a pure function: no HTTP.
@Suite("Access policy")
struct AccessPolicyTests {
    let policy = AccessPolicy(keys: TestKeys.all)

    func decide(_ method: HTTPRequest.Method, _ path: String, key: String?) -> AccessPolicy.Decision {
        policy.decide(method: method, path: path, authorization: key.map { "Bearer \($0)" })
    }

    func isAllowed(_ decision: AccessPolicy.Decision) -> Bool {
        if case .allow = decision { return true }
        return false
    }

    func isForbidden(_ decision: AccessPolicy.Decision) -> Bool {
        if case .forbidden = decision { return true }
        return false
    }

    func isUnauthenticated(_ decision: AccessPolicy.Decision) -> Bool {
        if case .unauthenticated = decision { return true }
        return false
    }

    @Test func eachScopeReachesItsRoutesOnly() {
        let sendRoutes: [(HTTPRequest.Method, String)] = [(.post, "/api/q"), (.post, "/api/q/batch")]
        let receiveRoutes: [(HTTPRequest.Method, String)] = [
            (.get, "/api/q"), (.head, "/api/q"), (.get, "/api/q/batch"), (.delete, "/api/q/messages/r1"),
            (.post, "/api/q/messages/r1/nack"), (.post, "/api/q/messages/r1/visibility"), (.post, "/api/q/ack"),
        ]
        let adminRoutes: [(HTTPRequest.Method, String)] = [
            (.get, "/api/q/config"), (.put, "/api/q/config"), (.post, "/api/q/redrive"), (.post, "/api/q/purge"),
            (.delete, "/api/q"), (.get, "/queues"), (.get, "/metrics"), (.get, "/api/q/messages?peek=5"),
            (.get, "/api/q/messages/01JD3Z5X1V0000000000000000"), (.get, "/api/q/history"),
            // Only reading the console's files is open.
            (.post, "/ui/"), (.put, "/ui/console.js"),
            // Unknown routes fail closed: admin.
            (.get, "/api/q/future"), (.patch, "/api/q"), (.get, "/"), (.get, "/nothing/here"), (.post, "/api/q/messages/r1/other"),
        ]
        for (method, path) in sendRoutes {
            #expect(isAllowed(decide(method, path, key: TestKeys.send)), "\(method) \(path)")
            #expect(isForbidden(decide(method, path, key: TestKeys.receive)), "\(method) \(path)")
            #expect(isForbidden(decide(method, path, key: TestKeys.admin)), "\(method) \(path)")
        }
        for (method, path) in receiveRoutes {
            #expect(isAllowed(decide(method, path, key: TestKeys.receive)), "\(method) \(path)")
            #expect(isForbidden(decide(method, path, key: TestKeys.send)), "\(method) \(path)")
            #expect(isForbidden(decide(method, path, key: TestKeys.admin)), "\(method) \(path)")
        }
        for (method, path) in adminRoutes {
            #expect(isAllowed(decide(method, path, key: TestKeys.admin)), "\(method) \(path)")
            #expect(isForbidden(decide(method, path, key: TestKeys.send)), "\(method) \(path)")
            #expect(isForbidden(decide(method, path, key: TestKeys.receive)), "\(method) \(path)")
        }
    }

    @Test func statsTakesReceiveOrAdmin() {
        #expect(isAllowed(decide(.get, "/api/q/stats", key: TestKeys.receive)))
        #expect(isAllowed(decide(.get, "/api/q/stats", key: TestKeys.admin)))
        #expect(isForbidden(decide(.get, "/api/q/stats", key: TestKeys.send)))
    }

    @Test func theGrantNamesTheKeyWithoutItsSecret() {
        let decision = decide(.post, "/api/orders-1", key: TestKeys.orders)
        #expect(decision == .allow(AccessGrant(keyName: "orders", scopes: [.send, .receive], queuePrefix: "orders-")))
        let key = TestKeys.all[3]
        #expect(!"\(key)".contains(TestKeys.orders))
        #expect(!String(reflecting: key).contains(TestKeys.orders))
    }

    @Test func queuePrefixConfinesTheQueueSegment() {
        #expect(isAllowed(decide(.post, "/api/orders-eu", key: TestKeys.orders)))
        #expect(isAllowed(decide(.get, "/api/orders-eu/batch", key: TestKeys.orders)))
        #expect(isAllowed(decide(.delete, "/api/orders-eu/messages/abc", key: TestKeys.orders)))
        #expect(isForbidden(decide(.post, "/api/billing", key: TestKeys.orders)))
        #expect(isForbidden(decide(.post, "/api/orders", key: TestKeys.orders)))
        #expect(isForbidden(decide(.get, "/api/Orders-eu", key: TestKeys.orders)))
        // Encoded names are judged as sent, as the router passes them on: never admitted by accident.
        #expect(isForbidden(decide(.post, "/api/%6Frders-eu", key: TestKeys.orders)))
        // A prefixed admin key manages its own queues only, and may list (the listing is filtered).
        #expect(isAllowed(decide(.post, "/api/orders-eu/purge", key: TestKeys.ordersAdmin)))
        #expect(isForbidden(decide(.post, "/api/billing/purge", key: TestKeys.ordersAdmin)))
        #expect(isAllowed(decide(.get, "/queues", key: TestKeys.ordersAdmin)))
        let grant = AccessGrant(keyName: "x", scopes: [.admin], queuePrefix: "orders-")
        #expect(grant.permits(queue: "orders-1"))
        #expect(!grant.permits(queue: "billing"))
        #expect(AccessGrant(keyName: "y", scopes: [.admin], queuePrefix: nil).permits(queue: "anything"))
    }

    @Test func missingMalformedAndUnknownKeysAreUnauthenticated() {
        #expect(isUnauthenticated(policy.decide(method: .post, path: "/api/q", authorization: nil)))
        for header in [
            "", "Bearer", "Bearer ", "Basic \(TestKeys.send)", "Token \(TestKeys.send)", TestKeys.send, "Bearer\(TestKeys.send)",
            "Bearer \(TestKeys.send) extra", "Bearer \(TestKeys.send)\u{7F}",
        ] {
            #expect(isUnauthenticated(policy.decide(method: .post, path: "/api/q", authorization: header)), "\(header)")
        }
        for key in ["wrong-key-0123456789abcdef", String(TestKeys.send.dropLast()), TestKeys.send + "x", TestKeys.send.uppercased()] {
            #expect(isUnauthenticated(decide(.post, "/api/q", key: key)), "\(key)")
        }
    }

    @Test func bearerSchemeIsCaseInsensitiveAndToleratesSpaces() {
        for header in ["bearer \(TestKeys.send)", "BEARER \(TestKeys.send)", "Bearer   \(TestKeys.send)  ", "  Bearer \(TestKeys.send)"] {
            #expect(isAllowed(policy.decide(method: .post, path: "/api/q", authorization: header)), "\(header)")
        }
    }

    @Test func healthAndReadyAreAlwaysOpen() {
        for path in ["/health", "/ready"] {
            #expect(decide(.get, path, key: nil) == .allow(nil))
            #expect(policy.decide(method: .get, path: path, authorization: "Bearer junk") == .allow(nil))
        }
    }

    @Test func metricsFollowsItsSetting() {
        #expect(isUnauthenticated(decide(.get, "/metrics", key: nil)))
        #expect(isForbidden(decide(.get, "/metrics", key: TestKeys.receive)))
        #expect(isAllowed(decide(.get, "/metrics", key: TestKeys.admin)))
        let openMetrics = AccessPolicy(keys: TestKeys.all, metricsRequireAuth: false)
        #expect(openMetrics.decide(method: .get, path: "/metrics", authorization: nil) == .allow(nil))
    }

    @Test func withoutKeysEverythingIsOpen() {
        let open = AccessPolicy(keys: [])
        #expect(open.isOpen)
        for (method, path) in [(HTTPRequest.Method.post, "/api/q"), (.delete, "/api/q"), (.get, "/queues"), (.get, "/metrics")] {
            #expect(open.decide(method: method, path: path, authorization: nil) == .allow(nil))
        }
    }

    @Test func requirementCarriesTheQueueSegment() {
        #expect(AccessPolicy.requirement(method: .post, path: "/api/orders-1", metricsRequireAuth: true) == .key(anyOf: [.send], queue: "orders-1"))
        #expect(AccessPolicy.requirement(method: .get, path: "//api//q//", metricsRequireAuth: true) == .key(anyOf: [.receive], queue: "q"))
        #expect(AccessPolicy.requirement(method: .get, path: "/queues", metricsRequireAuth: true) == .key(anyOf: [.admin], queue: nil))
        #expect(AccessPolicy.requirement(method: .get, path: "/health", metricsRequireAuth: true) == .open)
        // The console's files hold no data; its API calls carry the key.
        for path in ["/ui", "/ui/", "/ui/console.js", "/ui/console.css"] {
            #expect(AccessPolicy.requirement(method: .get, path: path, metricsRequireAuth: true) == .open, "\(path)")
            #expect(AccessPolicy.requirement(method: .head, path: path, metricsRequireAuth: true) == .open, "\(path)")
        }
        for path in ["/uix", "/ui/anything", "/ui/console.js/more", "/ui/../queues"] {
            #expect(AccessPolicy.requirement(method: .get, path: path, metricsRequireAuth: true) == .key(anyOf: [.admin], queue: nil), "\(path)")
        }
    }

    @Test func constantTimeEqualsComparesWholeStrings() {
        let equal = AccessPolicy.constantTimeEquals
        #expect(equal(Array("abc".utf8), Array("abc".utf8)))
        #expect(equal([], []))
        #expect(!equal(Array("abc".utf8), Array("abd".utf8)))
        #expect(!equal(Array("abc".utf8), Array("ab".utf8)))
        #expect(!equal(Array("ab".utf8), Array("abc".utf8)))
        #expect(!equal(Array("abc".utf8), []))
        // A length difference that is a multiple of 256 must not wrap to "equal".
        #expect(!equal([UInt8](repeating: 0, count: 256), []))
        #expect(!equal([UInt8](repeating: 0, count: 300), [UInt8](repeating: 0, count: 44)))
    }
}
