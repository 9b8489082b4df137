import Hummingbird
import NIOCore

/// The request context of Skiff's routes: Hummingbird's core context plus the connection's
/// channel, so a long-poll can tell when its client has gone.
public struct SkiffRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.channel = source.channel
    }
}
