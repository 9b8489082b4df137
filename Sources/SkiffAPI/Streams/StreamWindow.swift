import SkiffQueue

/// A stream's delivery window (its credit), apart from any I/O: how many messages it may still
/// be given, which ones it holds unacknowledged, and until when each lease runs.
///
/// The invariant the protocol promises: messages being claimed plus messages held never exceed
/// the credit granted. An ack, a nack, an extend to zero, or a lease running out frees a place;
/// an auto-acknowledged message frees its place once its frame is written.
struct StreamWindow {
    /// Messages the client has allowed in flight at once.
    private(set) var credit: Int
    /// Places taken by a claim in progress (its messages are not written yet).
    private(set) var claiming = 0
    /// Written, unacknowledged messages and the end of each one's visibility timeout.
    private(set) var held: [Receipt: ContinuousClock.Instant] = [:]
    /// The order messages were held in, so that a release gives them back oldest first.
    private var order: [Receipt: Int] = [:]
    private var nextOrder = 0

    init(credit: Int) {
        self.credit = credit
    }

    /// Places free for a new claim.
    var available: Int { Swift.max(0, credit - claiming - held.count) }

    /// Widens the window by `count`.
    /// - Returns: the credit now, or `nil` (nothing changed) past ``StreamCommand/maximumCredit``.
    mutating func grant(_ count: Int) -> Int? {
        guard count > 0, credit + count <= StreamCommand.maximumCredit else { return nil }
        credit += count
        return credit
    }

    /// Takes up to `maximum` free places for a claim: a place freed by an ack is filled at once.
    /// - Returns: how many were taken (zero when the window is full).
    mutating func reserve(upTo maximum: Int) -> Int {
        let count = Swift.min(maximum, available)
        claiming += count
        return count
    }

    /// Gives back places a claim took and does not use (it found fewer messages, or its messages
    /// were written in auto-acknowledge mode, or never written).
    mutating func unreserve(_ count: Int) {
        claiming = Swift.max(0, claiming - count)
    }

    /// A claimed message's frame is about to be written: it moves from the claim to the held set.
    mutating func hold(_ receipt: Receipt, until deadline: ContinuousClock.Instant) {
        unreserve(1)
        held[receipt] = deadline
        order[receipt] = nextOrder
        nextOrder += 1
    }

    /// An ack or nack settled `receipt`. - Returns: whether this stream held it (a place is free).
    mutating func settle(_ receipt: Receipt) -> Bool {
        order.removeValue(forKey: receipt)
        return held.removeValue(forKey: receipt) != nil
    }

    /// A visibility change: the lease of a held message now ends at `deadline`.
    mutating func extend(_ receipt: Receipt, until deadline: ContinuousClock.Instant) {
        if held[receipt] != nil { held[receipt] = deadline }
    }

    /// Removes and returns the held messages whose lease ended by `now`: they may be delivered to
    /// someone else, so they no longer count against this stream's credit.
    mutating func expire(at now: ContinuousClock.Instant) -> [Receipt] {
        let due = held.filter { $0.value <= now }.map(\.key)
        for receipt in due { _ = settle(receipt) }
        return due
    }

    /// Held receipts, oldest first.
    var heldInOrder: [Receipt] { held.keys.sorted { order[$0, default: 0] < order[$1, default: 0] } }

    /// When the next held lease ends (`nil`: none held).
    var nextDeadline: ContinuousClock.Instant? { held.values.min() }

    /// Everything held, oldest first, for release when the stream closes (a consumer that reads
    /// the queue meanwhile sees them come back in order); the window is empty afterwards.
    mutating func takeAll() -> [Receipt] {
        let all = held.keys.sorted { order[$0, default: 0] < order[$1, default: 0] }
        held.removeAll()
        order.removeAll()
        return all
    }
}
