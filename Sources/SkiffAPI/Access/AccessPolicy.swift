public import HTTPTypes

/// Decides whether a request may proceed, from its method, path and `Authorization` header alone.
///
/// A pure value: no HTTP, no I/O, so every rule is unit-tested directly. Routes are recognised by
/// method and path pattern (``requirement(method:path:metricsRequireAuth:)``), independently of
/// the controllers, so routes added later are covered by their pattern; any path the table does
/// not know requires the `admin` scope (fail closed).
///
/// With no keys the service is open (the demo mode): every request is allowed.
public struct AccessPolicy: Sendable {
    /// What a route asks of the caller.
    public enum Requirement: Equatable, Sendable {
        /// Anyone: `/health`, `/ready`, and `/metrics` unless it requires auth.
        case open
        /// A key holding one of `scopes`; its queue prefix must admit `queue` when there is one.
        case key(anyOf: Set<APIKey.Scope>, queue: Substring?)
    }

    /// The answer for one request.
    public enum Decision: Equatable, Sendable {
        /// Go ahead; the grant is `nil` on open routes and when the service runs open.
        case allow(AccessGrant?)
        /// 401 with `WWW-Authenticate: Bearer`: no key, a malformed header or an unknown key.
        case unauthenticated(String)
        /// 403: a known key without the scope, or outside its queue prefix.
        case forbidden(String)
    }

    public let keys: [APIKey]
    /// Whether `GET /metrics` needs a key with the `admin` scope (when keys are configured).
    public var metricsRequireAuth: Bool

    public init(keys: [APIKey], metricsRequireAuth: Bool = true) {
        self.keys = keys
        self.metricsRequireAuth = metricsRequireAuth
    }

    /// No keys configured: every request is allowed.
    public var isOpen: Bool { keys.isEmpty }

    public func decide(method: HTTPRequest.Method, path: String, authorization: String?) -> Decision {
        let requirement = Self.requirement(method: method, path: path, metricsRequireAuth: metricsRequireAuth)
        guard case .key(let scopes, let queue) = requirement, !isOpen else { return .allow(nil) }
        guard let authorization else {
            return .unauthenticated("an API key is required: send Authorization: Bearer <key>")
        }
        guard let presented = Self.bearerToken(authorization) else {
            return .unauthenticated("malformed Authorization header: expected Bearer <key>")
        }
        guard let key = key(matching: presented) else {
            return .unauthenticated("unknown API key")
        }
        let grant = key.grant
        guard !grant.scopes.isDisjoint(with: scopes) else {
            let needed = scopes.sorted().map { "'\($0.rawValue)'" }.joined(separator: " or ")
            return .forbidden("this API key lacks the \(needed) scope needed here")
        }
        if let queue, !grant.permits(queue: queue) {
            return .forbidden("this API key may only use queues and topics whose names start with '\(grant.queuePrefix ?? "")'")
        }
        return .allow(grant)
    }

    /// The key whose secret equals `presented`. Every key is compared in full, matching or not,
    /// so the time taken does not tell how much of which key was right.
    func key(matching presented: some StringProtocol) -> APIKey? {
        let presented = Array(presented.utf8)
        var found: APIKey?
        for key in keys where Self.constantTimeEquals(key.secret, presented) && found == nil {
            found = key
        }
        return found
    }

    /// The token of `Bearer <token>` (scheme case-insensitive, RFC 7235), or `nil` if the header
    /// is anything else.
    static func bearerToken(_ header: String) -> Substring? {
        let trimmed = header.drop(while: { $0 == " " })
        guard trimmed.utf8.count > 7, trimmed.prefix(6).lowercased() == "bearer", trimmed.dropFirst(6).first == " " else { return nil }
        let token = trimmed.dropFirst(7).drop(while: { $0 == " " })
        var end = token.endIndex
        while end > token.startIndex, token[token.index(before: end)] == " " { end = token.index(before: end) }
        let result = token[..<end]
        guard !result.isEmpty, result.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { return nil }
        return result
    }

    /// Compares two byte strings in time that depends only on their lengths, not on where they
    /// differ. (Lengths are not secret enough to hide: keys have a documented minimum length.)
    public static func constantTimeEquals(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
        var difference: UInt8 = lhs.count == rhs.count ? 0 : 1
        for index in 0..<max(lhs.count, rhs.count) {
            let left = index < lhs.count ? lhs[index] : 0
            let right = index < rhs.count ? rhs[index] : 0
            difference |= left ^ right
        }
        return difference == 0
    }

    /// The scope a request needs, by method and path pattern:
    ///
    /// | pattern | scope |
    /// |---|---|
    /// | `POST /api/{queue}`, `POST /api/{queue}/batch` | send |
    /// | `GET /api/{queue}`, `GET /api/{queue}/batch`, `GET /api/{queue}/events`, `POST /api/{queue}/ack`, `DELETE /api/{queue}/messages/{receipt}`, `POST /api/{queue}/messages/{receipt}/nack` and `/visibility` | receive |
    /// | `GET /api/{queue}/stats` | receive or admin |
    /// | `GET /api/{queue}/stream` (a WebSocket; its frames are checked one by one) | send or receive |
    /// | `GET /api/{queue}/events` (Server-Sent Events) | receive |
    /// | `GET`/`PUT /api/{queue}/config`, `GET /api/{queue}/messages?peek=n`, `POST /api/{queue}/redrive` and `/purge`, `DELETE /api/{queue}`, `GET /queues` | admin |
    /// | `POST /api/topics/{topic}`, `POST /api/topics/{topic}/batch` | send |
    /// | `POST /api/topics/{topic}/filter-test` | send, receive or admin |
    /// | `GET /api/topics`, `DELETE /api/topics/{topic}`, `/api/topics/{topic}/subscriptions[/{name}]` | admin |
    /// | `/health`, `/ready`, `GET /ui`, `/ui/`, `/ui/console.js`, `/ui/console.css` (the console's files) | open |
    /// | `/metrics` | admin if `metricsRequireAuth`, else open |
    /// | anything else | admin |
    ///
    /// The `{queue}` segment is taken as sent (not percent-decoded, as the router does), so the
    /// prefix check sees exactly the name the handler will see. HEAD is treated as GET.
    public static func requirement(method: HTTPRequest.Method, path: String, metricsRequireAuth: Bool) -> Requirement {
        let segments = path.split(separator: "/", omittingEmptySubsequences: true)
        let method = method == .head ? .get : method
        let admin = Requirement.key(anyOf: [.admin], queue: nil)
        // The console's files hold no data: the page asks for a key and sends it with its API
        // calls. Only these paths: a route added under /ui later is not opened by accident.
        if method == .get, segments.first == "ui", segments.count == 1 || ConsoleController.assets[String(segments[1])] != nil && segments.count == 2 {
            return .open
        }
        // A payload link's signature is its credential (PayloadLinkController).
        if method == .get, segments.count == 3, segments[0] == "payloads", segments[1] == "m" { return .open }
        switch segments.count {
        case 1:
            switch segments[0] {
            case "health", "ready": return .open
            case "metrics": return metricsRequireAuth ? admin : .open
            default: return admin
            }
        case 2... where segments[0] == "api" && segments[1] == "topics":
            // Topics: their names pass the key's prefix as queue names do. A subscription's queue
            // is checked by the route, which reads it from the body.
            guard segments.count >= 3 else { return admin }
            let topic = segments[2]
            switch (method, segments.dropFirst(3).map(String.init)) {
            case (.post, []), (.post, ["batch"]):
                return .key(anyOf: [.send], queue: topic)
            case (.post, ["filter-test"]):
                return .key(anyOf: [.send, .receive, .admin], queue: topic)
            default:
                return .key(anyOf: [.admin], queue: topic)
            }
        case 2... where segments[0] == "api":
            let queue = segments[1]
            func need(_ scopes: Set<APIKey.Scope>) -> Requirement { .key(anyOf: scopes, queue: queue) }
            let rest = segments.dropFirst(2).map(String.init)
            switch (method, rest) {
            case (.post, []), (.post, ["batch"]):
                return need([.send])
            case (.get, []), (.get, ["batch"]), (.post, ["ack"]), (.get, ["events"]):
                return need([.receive])
            case (.get, ["stats"]):
                return need([.receive, .admin])
            case (.get, ["stream"]):
                // Each frame then needs its own scope: publish send, everything else receive.
                return need([.send, .receive])
            default:
                break
            }
            if rest.count >= 2, rest[0] == "messages" {
                switch (method, rest.count, rest.last) {
                case (.delete, 2, _), (.post, 3, "nack"?), (.post, 3, "visibility"?):
                    return need([.receive])
                default:
                    break
                }
            }
            return need([.admin])
        default:
            return admin
        }
    }
}
