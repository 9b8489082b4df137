import NIOCore
import Testing

@testable import SkiffRedis

@Suite("Command state machine")
struct RedisCommandStateMachineTests {
    typealias Machine = RedisCommandStateMachine<String>
    let later = NIODeadline.now() + .seconds(60)

    @Test func repliesCompleteCommandsInOrder() {
        var machine = Machine()
        guard case .write(let armed) = machine.enqueue(id: 1, promise: "a", deadline: later, isBlocking: false) else {
            Issue.record("expected write")
            return
        }
        #expect(armed == later)
        guard case .write(nil) = machine.enqueue(id: 2, promise: "b", deadline: later + .seconds(1), isBlocking: false) else {
            Issue.record("a later deadline must not re-arm the timer")
            return
        }
        guard case .succeed("a", .integer(1)) = machine.receive(.integer(1)) else {
            Issue.record("first reply goes to the first command")
            return
        }
        guard case .succeed("b", .integer(2)) = machine.receive(.integer(2)) else {
            Issue.record("second reply goes to the second command")
            return
        }
        #expect(machine.pendingCount == 0)
    }

    @Test func cancellingPipelinedCommandDropsOnlyItsReply() {
        var machine = Machine()
        _ = machine.enqueue(id: 1, promise: "a", deadline: later, isBlocking: false)
        _ = machine.enqueue(id: 2, promise: "b", deadline: later, isBlocking: false)
        guard case .failOne("a") = machine.cancel(id: 1) else {
            Issue.record("cancel fails only the cancelled promise")
            return
        }
        guard case .drop = machine.receive(.integer(1)) else {
            Issue.record("reply of the cancelled command is dropped")
            return
        }
        guard case .succeed("b", _) = machine.receive(.integer(2)) else {
            Issue.record("the connection keeps serving the next command")
            return
        }
        guard case .active = machine.state else {
            Issue.record("still active")
            return
        }
    }

    @Test func cancellingBlockingCommandClosesConnection() {
        var machine = Machine()
        _ = machine.enqueue(id: 7, promise: "blpop", deadline: later, isBlocking: true)
        guard case .failAllAndClose(let promises, .cancelled) = machine.cancel(id: 7) else {
            Issue.record("a cancelled blocking command must close the connection")
            return
        }
        #expect(promises == ["blpop"])
        guard case .fail("next", _) = machine.enqueue(id: 8, promise: "next", deadline: later, isBlocking: false) else {
            Issue.record("a closed connection accepts no command")
            return
        }
    }

    @Test func passedDeadlineFailsEverythingAndCloses() {
        var machine = Machine()
        let soon = NIODeadline.now() + .milliseconds(10)
        _ = machine.enqueue(id: 1, promise: "a", deadline: soon, isBlocking: false)
        _ = machine.enqueue(id: 2, promise: "b", deadline: later, isBlocking: false)
        guard case .failAllAndClose(let promises, .timeout) = machine.timerFired(now: soon + .milliseconds(1)) else {
            Issue.record("deadline passed")
            return
        }
        #expect(promises == ["a", "b"])
    }

    @Test func timerReArmsForTheEarliestRemainingDeadline() {
        var machine = Machine()
        let first = NIODeadline.now() + .milliseconds(10)
        _ = machine.enqueue(id: 1, promise: "a", deadline: first, isBlocking: false)
        _ = machine.enqueue(id: 2, promise: "b", deadline: later, isBlocking: false)
        _ = machine.receive(.integer(1))
        guard case .rearm(let deadline) = machine.timerFired(now: first + .milliseconds(1)) else {
            Issue.record("nothing expired yet: re-arm")
            return
        }
        #expect(deadline == later)
    }

    @Test func replyWithoutCommandIsAProtocolViolation() {
        var machine = Machine()
        guard case .failAllAndClose(_, _) = machine.receive(.simpleString("OK")) else {
            Issue.record("unexpected reply closes the connection")
            return
        }
    }

    @Test func subscriberModeSeparatesPushesFromReplies() {
        var machine = Machine(isSubscriber: true)
        _ = machine.enqueue(id: 1, promise: "subscribe", deadline: later, isBlocking: false)
        let push = RedisValue.array([.bulkString(ByteBuffer(string: "message")), .bulkString(ByteBuffer(string: "ch")), .bulkString(ByteBuffer(string: "1"))])
        guard case .deliverPush = machine.receive(push) else {
            Issue.record("a pub/sub message is a push")
            return
        }
        let confirmation = RedisValue.array([.bulkString(ByteBuffer(string: "subscribe")), .bulkString(ByteBuffer(string: "ch")), .integer(1)])
        guard case .succeed("subscribe", _) = machine.receive(confirmation) else {
            Issue.record("a subscribe confirmation is a reply")
            return
        }
    }

    /// Sharded pub/sub: `smessage` is a push; a `sunsubscribe` is the reply of the `SUNSUBSCRIBE` of
    /// the same channel next in line, and otherwise Redis dropping the channel on its own (its
    /// slot moved), which the subscriber must hear even with other commands pending.
    @Test func shardedPushesAreToldApartFromUnsubscribeReplies() {
        func array(_ kind: String, _ channel: String, _ last: RedisValue) -> RedisValue {
            .array([.bulkString(ByteBuffer(string: kind)), .bulkString(ByteBuffer(string: channel)), last])
        }
        var machine = Machine(isSubscriber: true)
        guard case .deliverPush = machine.receive(array("smessage", "{q}:notify", .bulkString(ByteBuffer(string: "1")))) else {
            Issue.record("a sharded message is a push")
            return
        }
        // Nothing pending: Redis dropped the channel.
        guard case .deliverPush = machine.receive(array("sunsubscribe", "{q}:notify", .integer(0))) else {
            Issue.record("an unsolicited sunsubscribe is a push")
            return
        }
        _ = machine.enqueue(id: 1, promise: "ssubscribe", deadline: later, isBlocking: false)
        _ = machine.enqueue(id: 2, promise: "sunsubscribe b", deadline: later, isBlocking: false, shardUnsubscribe: "b")
        // While SSUBSCRIBE waits, a drop of another channel arrives first: a push, not its reply.
        guard case .deliverPush = machine.receive(array("sunsubscribe", "a", .integer(0))) else {
            Issue.record("a drop while a subscribe is pending is a push")
            return
        }
        guard case .succeed("ssubscribe", _) = machine.receive(array("ssubscribe", "c", .integer(1))) else {
            Issue.record("the ssubscribe confirmation is the reply")
            return
        }
        // SUNSUBSCRIBE b is next: a drop of a is still a push, and b's confirmation is its reply.
        guard case .deliverPush = machine.receive(array("sunsubscribe", "a", .integer(0))) else {
            Issue.record("a drop of another channel is a push")
            return
        }
        guard case .succeed("sunsubscribe b", _) = machine.receive(array("sunsubscribe", "b", .integer(0))) else {
            Issue.record("the sunsubscribe confirmation is the reply")
            return
        }
        #expect(machine.pendingCount == 0)
    }

    @Test func closingFailsPendingOnce() {
        var machine = Machine()
        _ = machine.enqueue(id: 1, promise: "a", deadline: later, isBlocking: false)
        #expect(machine.connectionClosed(.connectionClosed) == ["a"])
        #expect(machine.connectionClosed(.connectionClosed) == [])
    }
}
