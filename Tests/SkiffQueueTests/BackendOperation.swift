import SkiffQueue

/// One step of a random operation sequence that ``BackendEquivalenceTests`` runs against the
/// memory and the Redis backend side by side.
///
/// Steps are generated as two integers (`kind`, `argument`) and decoded here, so that the
/// property checker can shrink a failing sequence (fewer steps, smaller numbers, simpler steps:
/// lower kinds are the plainer operations).
///
/// Time: every duration is either zero, "long" (an hour: never reached during a case) or "short"
/// (100 ms). Short ones exist only in the timed steps, which sleep until every short timer has
/// passed and then run a maintenance round on both backends before anything is observed. So no
/// observation ever depends on how fast the steps ran.
enum BackendOperation: CustomStringConvertible, Sendable {
    /// The queues every case uses, by role: names are made unique per case.
    enum Role: Int, CaseIterable, Sendable {
        /// The queue most steps work on.
        case main
        /// `main`'s default dead-letter queue (`main-dlq`).
        case deadLetters
        /// Another queue, which a setting can name as `main`'s dead-letter queue.
        case alternate
        /// A queue whose `dedupWindowMs` is 100 ms, for keys that expire.
        case shortWindow
    }

    enum Receiving: String, Sendable {
        /// Auto-acknowledge, completed at once (the plain GET).
        case take
        /// Auto-acknowledge, neither completed nor released yet (a response still being written).
        case hold
        /// Auto-acknowledge, released at once (the client left before the answer).
        case release
        /// Acknowledged mode with the queue's visibility timeout.
        case acknowledge
        /// Acknowledged mode with an hour of visibility.
        case acknowledgeLong
    }

    enum Timer: String, Sendable {
        case zero, long, backoff
    }

    /// Settings a step can change. `maxReceiveCount` is the case's (``CaseSetup``) and never
    /// changes mid-case: lowering it below the receive count of a waiting message makes the
    /// backends disagree until the next claim (see `BackendEquivalenceTests`'s known issue).
    struct Settings: Sendable, CustomStringConvertible {
        var maxDepth: Int?
        var visibilityTimeoutMilliseconds: Int64
        var delayMilliseconds: Int64
        var retryBackoffMilliseconds: Int64
        var dedupWindowMilliseconds: Int64
        var retentionMilliseconds: Int64
        var usesAlternateDeadLetterQueue: Bool

        var description: String {
            "maxDepth \(maxDepth.map(String.init) ?? "none"), visibility \(visibilityTimeoutMilliseconds), delay \(delayMilliseconds), "
                + "backoff \(retryBackoffMilliseconds), dedup \(dedupWindowMilliseconds), retention \(retentionMilliseconds)"
                + (usesAlternateDeadLetterQueue ? ", dead letters to alternate" : "")
        }
    }

    /// What a case starts with: each queue's `maxReceiveCount`, from one number in 0..<64.
    struct CaseSetup: Sendable, CustomStringConvertible {
        var maxReceiveCounts: [Role: Int]

        init(_ number: Int) {
            var digits = number
            maxReceiveCounts = [:]
            for role in [Role.main, .deadLetters, .alternate] {
                if let count = [nil, 1, 2, 3][digits % 4] { maxReceiveCounts[role] = count }
                digits /= 4
            }
        }

        var description: String { "maxReceiveCount \(maxReceiveCounts.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.key) \($0.value)" })" }
    }

    case send(Role, count: Int, priority: Int, delay: Timer?, key: String?)
    case receive(Role, max: Int, Receiving)
    case acknowledge(handles: [Int], withUnknown: Bool)
    case reject(handle: Int, delay: Timer?, reason: String?)
    case changeVisibility(handle: Int, Timer)
    case complete(handle: Int)
    case release(handle: Int)
    case configure(Role, Settings)
    case redrive(max: Int)
    case purge(Role)
    case delete(Role)
    case list
    // Timed: each sleeps past its 100 ms timer, then both backends run a maintenance round.
    case sendShortDelay(Role, count: Int, priority: Int)
    case receiveShortVisibility(Role, max: Int)
    case rejectShortDelay(handle: Int)
    case changeVisibilityShort(handle: Int)
    /// Sends to the short-window queue, each message with its own key (from a small pool, so
    /// keys repeat across steps), and sleeps until those keys expired.
    case sendKeyedShortWindow(keys: [String])

    static let timelessKinds = 0..<100
    static let allKinds = 0..<112

    static let longMilliseconds: Int64 = 3_600_000
    static let shortMilliseconds: Int64 = 100

    // swift-format-ignore
    init(kind: Int, argument: Int) {
        var digits = argument
        func next(_ count: Int) -> Int {
            defer { digits /= count }
            return digits % count
        }
        let priorities = [0, 0, 3, 9]
        func role() -> Role { [.main, .main, .main, .main, .main, .deadLetters, .alternate, .shortWindow][next(8)] }
        switch kind {
        case 0..<22:
            self = .send(.main, count: 1 + next(3), priority: priorities[next(4)], delay: [nil, .zero, nil, .long][next(4)],
                         key: [nil, nil, nil, "k0", "k1", "k2"][next(6)])
        case 22..<27:
            self = .send([.deadLetters, .alternate, .shortWindow][next(3)], count: 1 + next(2), priority: priorities[next(4)], delay: nil, key: nil)
        case 27..<50:
            self = .receive(kind < 45 ? .main : role(), max: 1 + next(3), [.take, .hold, .release, .acknowledge, .acknowledgeLong][next(5)])
        case 50..<60:
            self = .acknowledge(handles: Array([next(16), next(16)].prefix(1 + next(2))), withUnknown: next(4) == 0)
        case 60..<68:
            self = .reject(handle: next(16), delay: [nil, .zero, .long][next(3)], reason: [nil, "r\(digits % 10)"][next(2)])
        case 68..<74:
            self = .changeVisibility(handle: next(16), [.zero, .long][next(2)])
        case 74..<78:
            self = .complete(handle: next(16))
        case 78..<81:
            self = .release(handle: next(16))
        case 81..<88:
            let role: Role = kind < 86 ? .main : [.deadLetters, .alternate][next(2)]
            let retention = [4 * 86_400_000, 60_000][next(2)]
            var settings = Settings(
                maxDepth: [nil, 2, 6, 30][next(4)],
                visibilityTimeoutMilliseconds: [30_000, Self.longMilliseconds][next(2)],
                delayMilliseconds: [0, 0, Self.longMilliseconds][next(3)],
                retryBackoffMilliseconds: [0, Self.longMilliseconds][next(2)],
                dedupWindowMilliseconds: [300_000, 600_000][next(2)],
                retentionMilliseconds: Int64(retention),
                usesAlternateDeadLetterQueue: role == .main && next(2) == 1
            )
            // Valid settings only (the API refuses the rest): no default delay beyond the retention.
            if settings.delayMilliseconds > settings.retentionMilliseconds { settings.delayMilliseconds = 0 }
            self = .configure(role, settings)
        case 88..<91:
            self = .redrive(max: [1, 2, 100][next(3)])
        case 91..<93:
            self = .purge(role())
        case 93..<95:
            self = .delete([.main, .deadLetters, .alternate][next(3)])
        case 95..<100:
            self = .list
        case 100..<103:
            self = .sendShortDelay(.main, count: 1 + next(3), priority: priorities[next(4)])
        case 103..<106:
            self = .receiveShortVisibility(.main, max: 1 + next(3))
        case 106..<108:
            self = .rejectShortDelay(handle: next(16))
        case 108..<110:
            self = .changeVisibilityShort(handle: next(16))
        default:
            // A burst of keys b0, b1... (more than the Redis script's cleanup takes per send: 100,
            // so expired keys are left for later sends to meet), or a few keys from the same pool.
            if next(4) == 0 {
                self = .sendKeyedShortWindow(keys: (0..<(60 + next(100))).map { "b\($0)" })
            } else {
                self = .sendKeyedShortWindow(keys: (0..<(1 + next(3))).map { _ in next(2) == 0 ? "s\(next(4))" : "b\(next(160))" })
            }
        }
    }

    var isTimed: Bool {
        switch self {
        case .sendShortDelay, .receiveShortVisibility, .rejectShortDelay, .changeVisibilityShort, .sendKeyedShortWindow: true
        default: false
        }
    }

    var description: String {
        switch self {
        case .send(let role, let count, let priority, let delay, let key):
            "send \(count) to \(role), priority \(priority), delay \(delay?.rawValue ?? "default"), key \(key ?? "none")"
        case .receive(let role, let max, let receiving): "receive up to \(max) from \(role), \(receiving)"
        case .acknowledge(let handles, let withUnknown): "ack handles \(handles)\(withUnknown ? " and an unknown receipt" : "")"
        case .reject(let handle, let delay, let reason): "nack handle \(handle), delay \(delay?.rawValue ?? "backoff"), reason \(reason ?? "none")"
        case .changeVisibility(let handle, let timer): "change visibility of handle \(handle) to \(timer)"
        case .complete(let handle): "complete handle \(handle)"
        case .release(let handle): "release handle \(handle)"
        case .configure(let role, let settings): "configure \(role): \(settings)"
        case .redrive(let max): "redrive up to \(max) into main"
        case .purge(let role): "purge \(role)"
        case .delete(let role): "delete \(role)"
        case .list: "list queues and settings"
        case .sendShortDelay(let role, let count, let priority): "send \(count) to \(role), priority \(priority), delay 100 ms, then wait"
        case .receiveShortVisibility(let role, let max): "receive up to \(max) from \(role) with 100 ms visibility, then wait"
        case .rejectShortDelay(let handle): "nack handle \(handle) with a 100 ms delay, then wait"
        case .changeVisibilityShort(let handle): "change visibility of handle \(handle) to 100 ms, then wait"
        case .sendKeyedShortWindow(let keys):
            "send \(keys.count) keyed message(s) to shortWindow (\(keys.count > 4 ? "b0..." : keys.joined(separator: ", "))), then wait"
        }
    }
}
