public import NIOCore
import NIOPosix
import Synchronization

/// A Swift concurrency task executor that runs jobs on one NIO event loop.
///
/// A connection's handler task that prefers its channel's event loop reads the request, runs the
/// route, talks to Redis on a connection bound to the same loop and writes the response without
/// leaving that thread. Without it every `await` between the channel and the global executor is a
/// thread hop, and each hop a futex wake-up; on two cores those hops cost more than the request.
///
/// Work on the loop must not block: the handlers only await.
public final class EventLoopTaskExecutor: TaskExecutor, @unchecked Sendable {
    // `@unchecked`: `eventLoop` is immutable and event loops are thread-safe.
    public let eventLoop: any EventLoop

    public init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        eventLoop.execute {
            job.runSynchronously(on: self.asUnownedTaskExecutor())
        }
    }
}

extension EventLoopTaskExecutor {
    private static let executors = Mutex<[ObjectIdentifier: EventLoopTaskExecutor]>([:])

    /// The executor of `eventLoop`, made once per loop.
    public static func shared(for eventLoop: any EventLoop) -> EventLoopTaskExecutor {
        executors.withLock { executors in
            let id = ObjectIdentifier(eventLoop)
            if let known = executors[id] { return known }
            let made = EventLoopTaskExecutor(eventLoop)
            executors[id] = made
            return made
        }
    }

    /// The executor of the event loop this code runs on, if it runs on one.
    public static var current: EventLoopTaskExecutor? {
        MultiThreadedEventLoopGroup.currentEventLoop.map { shared(for: $0) }
    }
}
