public import Hummingbird
public import NIOCore

/// The request context of Skiff's routes: Hummingbird's core context plus the connection's
/// channel, so a long-poll can tell when its client has gone.
public struct SkiffRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public let channel: any Channel
    /// What the caller's API key allows, set by ``AccessControlMiddleware``; `nil` on open routes
    /// and when no keys are configured.
    public var accessGrant: AccessGrant?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.channel = source.channel
        self.accessGrant = nil
    }
}
