public import Testing

/// The backends a suite runs against: memory always, Redis whenever the harness provides one
/// (always under `make test`).
public enum BackendKind: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case memory
    case redis

    public var testDescription: String { rawValue }

    public static var available: [BackendKind] { TestEnvironment.hasRedis ? allCases : [.memory] }
}
