import Testing

@testable import SkiffRedis

/// The sharded subscriber's decisions without sockets: channels grouped by their slot's primary,
/// and every way a channel can miss messages (a dropped channel, a closed connection, a map that
/// names another owner, an unsubscribe) taking its generation away until it is subscribed again.
@Suite("Sharded subscription state machine")
struct ShardedSubscriptionStateMachineTests {
    final class Connection {
        var isActive = true
    }

    typealias Machine = ShardedSubscriptionStateMachine<Connection>

    let nodeA = ClusterNodeAddress(host: "10.0.0.1", port: 7000)
    let nodeB = ClusterNodeAddress(host: "10.0.0.2", port: 7000)
    let start = ContinuousClock.now

    /// Three channels, two on slots of A, one on a slot of B (which slot is A's is the test's choice).
    let onA = ["{a1}:notify", "{a2}:notify"]
    let onB = "{b1}:notify"

    func owner(_ moved: Set<Int> = [], to node: ClusterNodeAddress? = nil) -> (Int) -> ClusterNodeAddress? {
        let slotsOfB = Set([ClusterSlot.of(onB)])
        return { slot in
            if moved.contains(slot) { return node }
            return slotsOfB.contains(slot) ? nodeB : nodeA
        }
    }

    func generation(_ machine: Machine, _ channel: String) -> UInt64? {
        machine.confirmedGeneration(of: channel, isActive: \.isActive)
    }

    /// Wants every channel, connects both nodes and confirms what the plan subscribes.
    func subscribedMachine() throws -> (Machine, a: Connection, b: Connection) {
        var machine = Machine(backoff: { _ in .milliseconds(100) })
        for channel in onA + [onB] { let answer1 = machine.want(channel); #expect(answer1) }
        let answer2 = machine.want(onB)
        #expect(!answer2)
        let first = machine.plan(owner: owner(), now: start)
        // One connection per primary with channels, none subscribed yet.
        #expect(Set(first.connect.map(\.node)) == [nodeA, nodeB])
        #expect(first.subscribe.isEmpty && first.close.isEmpty)
        // A second plan while they connect starts nothing twice.
        #expect(machine.plan(owner: owner(), now: start).connect.isEmpty)
        let (a, b) = (Connection(), Connection())
        for (node, epoch) in first.connect { let answer3 = machine.connected(node, node == nodeA ? a : b, epoch: epoch); #expect(answer3) }
        let second = machine.plan(owner: owner(), now: start)
        #expect(second.connect.isEmpty)
        let grouped = Dictionary(uniqueKeysWithValues: second.subscribe.map { ($0.node, $0.channels) })
        #expect(grouped == [nodeA: onA.sorted(), nodeB: [onB]])
        #expect(!machine.isConnected(isActive: \.isActive))
        for (node, epoch, connection, channels) in second.subscribe {
            #expect(connection === (node == nodeA ? a : b))
            for channel in channels { let answer4 = machine.subscribed(channel, node: node, epoch: epoch); #expect(!answer4) }
        }
        #expect(machine.isConnected(isActive: \.isActive))
        #expect(Set(machine.connectedNodes) == [nodeA, nodeB])
        // Nothing left to do.
        let idle = machine.plan(owner: owner(), now: start)
        #expect(idle.connect.isEmpty && idle.subscribe.isEmpty && idle.unsubscribe.isEmpty && idle.close.isEmpty)
        return (machine, a, b)
    }

    @Test func channelsAreSubscribedAtTheirSlotsPrimaryWithDistinctGenerations() throws {
        let (machine, _, _) = try subscribedMachine()
        let generations = (onA + [onB]).compactMap { generation(machine, $0) }
        #expect(generations.count == 3 && Set(generations).count == 3)
    }

    @Test func aChannelRedisDroppedIsSubscribedAgainAtTheNewOwner() throws {
        var (machine, _, b) = try subscribedMachine()
        let channel = onA[0]
        let before = try #require(generation(machine, channel))
        let other = try #require(generation(machine, onA[1]))
        let (_, epochA) = try #require(machine.connection(to: nodeA))
        // A push for a connection that was replaced changes nothing.
        let answer5 = machine.dropped(channel, node: nodeA, epoch: epochA + 100)
        #expect(!answer5)
        let answer6 = machine.dropped(channel, node: nodeA, epoch: epochA)
        #expect(answer6)
        #expect(generation(machine, channel) == nil)
        #expect(!machine.isConnected(isActive: \.isActive))
        // The other channel of A is untouched.
        #expect(generation(machine, onA[1]) == other)
        // The map, read again, names B for its slot: it is subscribed there.
        let plan = machine.plan(owner: owner([ClusterSlot.of(channel)], to: nodeB), now: start)
        #expect(plan.unsubscribe.isEmpty)
        let move = try #require(plan.subscribe.first)
        #expect(plan.subscribe.count == 1 && move.node == nodeB && move.connection === b && move.channels == [channel])
        // The owner is told to look again once it is back, with a new generation.
        let answer7 = machine.subscribed(channel, node: nodeB, epoch: move.epoch)
        #expect(answer7)
        let after = try #require(generation(machine, channel))
        #expect(after != before)
        #expect(machine.isConnected(isActive: \.isActive))
    }

    @Test func aMapThatNamesAnotherOwnerMovesTheChannelAndInterruptsIt() throws {
        var (machine, a, _) = try subscribedMachine()
        let channel = onA[1]
        #expect(generation(machine, channel) != nil)
        // No push came (a slot moved silently): the map decides.
        let plan = machine.plan(owner: owner([ClusterSlot.of(channel)], to: nodeB), now: start)
        #expect(generation(machine, channel) == nil)
        let leave = try #require(plan.unsubscribe.first)
        #expect(plan.unsubscribe.count == 1 && leave.connection === a && leave.channels == [channel])
        #expect(plan.subscribe.map(\.node) == [nodeB] && plan.subscribe.first?.channels == [channel])
        #expect(plan.close.isEmpty)
    }

    @Test func aClosedConnectionInterruptsItsChannelsOnlyAndIsOpenedAgain() throws {
        var (machine, a, _) = try subscribedMachine()
        let onBGeneration = try #require(generation(machine, onB))
        let (_, epochA) = try #require(machine.connection(to: nodeA))
        // Closed but not reported yet: no longer trusted.
        a.isActive = false
        #expect(generation(machine, onA[0]) == nil)
        #expect(Set(machine.connectionClosed(nodeA, epoch: epochA)) == Set(onA))
        #expect(machine.connectionClosed(nodeA, epoch: epochA).isEmpty)
        #expect(generation(machine, onB) == onBGeneration)
        let plan = machine.plan(owner: owner(), now: start)
        let reconnect = try #require(plan.connect.first)
        #expect(plan.connect.count == 1 && reconnect.node == nodeA && reconnect.epoch != epochA)
        // A confirmation from the old connection that arrives late is ignored.
        let answer8 = machine.subscribed(onA[0], node: nodeA, epoch: epochA)
        #expect(!answer8)
        #expect(generation(machine, onA[0]) == nil)
        let again = Connection()
        let answer9 = machine.connected(nodeA, again, epoch: reconnect.epoch)
        #expect(answer9)
        let subscribe = machine.plan(owner: owner(), now: start).subscribe
        #expect(subscribe.count == 1 && subscribe[0].connection === again && subscribe[0].channels == onA.sorted())
        for channel in onA { let answer10 = machine.subscribed(channel, node: nodeA, epoch: reconnect.epoch); #expect(answer10) }
        #expect(machine.isConnected(isActive: \.isActive))
    }

    @Test func aFailedConnectWaitsForItsBackoff() throws {
        var machine = Machine(backoff: { attempt in .milliseconds(100 << attempt) })
        machine.want(onB)
        let first = try #require(machine.plan(owner: owner(), now: start).connect.first)
        machine.connectFailed(nodeB, epoch: first.epoch, now: start)
        #expect(machine.plan(owner: owner(), now: start + .milliseconds(50)).connect.isEmpty)
        let second = try #require(machine.plan(owner: owner(), now: start + .milliseconds(100)).connect.first)
        #expect(second.epoch != first.epoch)
        // The earlier attempt's success is stale.
        let answer11 = machine.connected(nodeB, Connection(), epoch: first.epoch)
        #expect(!answer11)
        machine.connectFailed(nodeB, epoch: second.epoch, now: start + .milliseconds(100))
        // Second failure in a row: twice as long.
        #expect(machine.plan(owner: owner(), now: start + .milliseconds(250)).connect.isEmpty)
        #expect(machine.plan(owner: owner(), now: start + .milliseconds(300)).connect.count == 1)
    }

    @Test func anUnsubscribeForgetsTheGenerationAndClosesAnIdleNode() throws {
        var (machine, _, b) = try subscribedMachine()
        let before = try #require(generation(machine, onB))
        #expect(machine.unwant(onB) === b)
        #expect(generation(machine, onB) == nil)
        let plan = machine.plan(owner: owner(), now: start)
        #expect(plan.close.count == 1 && plan.close.first === b)
        #expect(machine.connectedNodes == [nodeA])
        // Wanted again: a new connection, a new generation.
        machine.want(onB)
        let connect = try #require(machine.plan(owner: owner(), now: start).connect.first)
        let answer12 = machine.connected(nodeB, Connection(), epoch: connect.epoch)
        #expect(answer12)
        _ = machine.plan(owner: owner(), now: start)
        let answer13 = machine.subscribed(onB, node: nodeB, epoch: connect.epoch)
        #expect(!answer13)
        #expect(try #require(generation(machine, onB)) != before)
    }

    @Test func aSlotWithoutAPrimaryAsksForTheMapAndKeepsItsNode() throws {
        var (machine, _, _) = try subscribedMachine()
        let (_, epochB) = try #require(machine.connection(to: nodeB))
        #expect(machine.connectionClosed(nodeB, epoch: epochB) == [onB])
        // A failover in progress: no node serves the slot for now.
        let plan = machine.plan(owner: owner([ClusterSlot.of(onB)], to: nil), now: start)
        #expect(plan.needsMap && plan.connect.isEmpty && plan.subscribe.isEmpty)
        #expect(generation(machine, onB) == nil)
    }

    @Test func shuttingDownClosesEveryConnection() throws {
        var (machine, a, b) = try subscribedMachine()
        let open = machine.shutDown()
        #expect(open.count == 2 && open.contains { $0 === a } && open.contains { $0 === b })
        #expect(generation(machine, onB) == nil)
    }
}
