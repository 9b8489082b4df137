import HTTPTypes
import Hummingbird
import SkiffQueue

extension HTTPField.Name {
    static let requestID = Self("X-Request-Id")!
}

/// Gives every request an id: the caller's `X-Request-Id` when it is sane, else a new one. The id
/// is returned in the response and set as `request.id` on every log line about the request.
public struct RequestIDMiddleware<Context: RequestContext>: RouterMiddleware {
    public init() {}

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        let id: String
        if let given = request.headers[.requestID], (1...128).contains(given.utf8.count),
            given.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F })
        {
            id = given
        } else {
            id = MessageID.make()
        }
        context.logger[metadataKey: "request.id"] = .string(id)
        var response = try await next(request, context)
        response.headers[.requestID] = id
        return response
    }
}
