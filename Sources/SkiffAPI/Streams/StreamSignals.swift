import NIOCore
import Synchronization

/// The commands a stream's reader has parsed and its processor has not yet carried out. The
/// processor takes everything queued at once, so consecutive publishes or acks become one
/// storage call; the reader waits once ``capacity`` commands are queued, so a client that sends
/// faster than storage answers is slowed by TCP rather than held in memory.
final class StreamInbox: Sendable {
    static var capacity: Int { 1024 }
    /// Publish bodies queued at most (a command over it still goes in, alone).
    static var byteCapacity: Int { 16 << 20 }

    private struct State {
        var commands: [StreamCommand] = []
        var bytes = 0
        var isFull: Bool { commands.count >= StreamInbox.capacity || bytes >= StreamInbox.byteCapacity }
        var finished = false
        var consumer: CheckedContinuation<[StreamCommand]?, Never>?
        var producer: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())

    /// Queues `command`; waits first while the inbox is full.
    func push(_ command: StreamCommand) async {
        while true {
            let full = state.withLock { $0.isFull && !$0.finished }
            guard full else { break }
            await withCheckedContinuation { continuation in
                let resumeNow = state.withLock { state -> Bool in
                    guard state.isFull, !state.finished else { return true }
                    state.producer = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        }
        let size: Int
        if case .publish(let body, _) = command.operation { size = body.readableBytes } else { size = 0 }
        let consumer = state.withLock { state -> CheckedContinuation<[StreamCommand]?, Never>? in
            state.commands.append(command)
            state.bytes += size
            guard let consumer = state.consumer else { return nil }
            state.consumer = nil
            defer {
                state.commands = []
                state.bytes = 0
            }
            return consumer
        }
        // A waiting consumer takes the one command just queued.
        consumer?.resume(returning: [command])
    }

    /// No more commands will come; the consumer gets what is queued, then `nil`.
    func finish() {
        let (consumer, producer) = state.withLock { state in
            state.finished = true
            defer { (state.consumer, state.producer) = (nil, nil) }
            return (state.consumer, state.producer)
        }
        consumer?.resume(returning: nil)
        producer?.resume()
    }

    /// Everything queued, in order, waiting for a first command if none is; `nil` once finished
    /// and empty.
    func next() async -> [StreamCommand]? {
        await withCheckedContinuation { continuation in
            let (taken, producer) = state.withLock { state -> ([StreamCommand]??, CheckedContinuation<Void, Never>?) in
                if !state.commands.isEmpty {
                    defer {
                        state.commands = []
                        state.bytes = 0
                    }
                    let producer = state.producer
                    state.producer = nil
                    return (.some(state.commands), producer)
                }
                if state.finished { return (.some(nil), nil) }
                state.consumer = continuation
                return (nil, nil)
            }
            producer?.resume()
            if let taken { continuation.resume(returning: taken) }
        }
    }
}

/// Wakes a stream's delivery loop when its window may have room again (credit, an ack, a nack)
/// or its next lease ends. A signal sent while nobody waits is kept for the next wait.
final class StreamWakeSignal: Sendable {
    /// Where a wait's timer runs: a scheduled task, not a task of its own, so an idle stream costs
    /// no more than its waiting delivery loop.
    private let eventLoop: any EventLoop

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    private struct State {
        var pending = false
        var waiter: CheckedContinuation<Void, Never>?
        var generation = 0
    }

    private let state = Mutex(State())

    func signal() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard let waiter = state.waiter else {
                state.pending = true
                return nil
            }
            state.waiter = nil
            state.generation += 1
            return waiter
        }
        waiter?.resume()
    }

    /// Returns at the next signal, after `timeout`, or when the task is cancelled.
    func wait(timeout: Duration) async {
        let generation = state.withLock { state -> Int? in
            if state.pending {
                state.pending = false
                return nil
            }
            state.generation += 1
            return state.generation
        }
        guard let generation else { return }
        let timer = eventLoop.scheduleTask(in: TimeAmount(timeout)) { self.wake(generation: generation) }
        defer { timer.cancel() }
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let resumeNow = state.withLock { state -> Bool in
                    // Signalled, timed out or cancelled between the two steps.
                    guard state.generation == generation, !state.pending else {
                        state.pending = false
                        return true
                    }
                    state.waiter = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            self.wake(generation: generation)
        }
    }

    /// Ends the wait of `generation` if it is still the current one.
    private func wake(generation: Int) {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard state.generation == generation else { return nil }
            state.generation += 1
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }
}
