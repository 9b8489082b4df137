import HTTPTypes
public import Hummingbird

/// Enforces an ``AccessPolicy`` before any handler runs: 401 (with `WWW-Authenticate: Bearer`)
/// for a missing, malformed or unknown key, 403 for a key without the scope or outside its queue
/// prefix. Errors are ``APIError``s, so they render as `{"error": "..."}` like every other.
///
/// The decision comes from the request's method and path, not from the matched route, so it does
/// not depend on the controllers. The grant is stored in ``SkiffRequestContext/accessGrant``.
public struct AccessControlMiddleware: RouterMiddleware {
    public typealias Context = SkiffRequestContext
    let policy: AccessPolicy

    public init(policy: AccessPolicy) {
        self.policy = policy
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        // Open mode (no keys): nothing to decide, and nothing to pay per request.
        if policy.isOpen { return try await next(request, context) }
        switch policy.decide(method: request.method, path: request.uri.path, authorization: request.headers[.authorization]) {
        case .allow(let grant):
            var context = context
            context.accessGrant = grant
            return try await next(request, context)
        case .unauthenticated(let reason):
            context.logger.debug("request refused: not authenticated", metadata: ["auth.reason": "\(reason)"])
            throw APIError(.unauthorized, reason, headers: [.wwwAuthenticate: #"Bearer realm="skiff""#])
        case .forbidden(let reason):
            context.logger.debug("request refused: forbidden", metadata: ["auth.reason": "\(reason)"])
            throw APIError(.forbidden, reason)
        }
    }
}
