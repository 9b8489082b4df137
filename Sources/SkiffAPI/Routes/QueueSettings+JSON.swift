import SkiffQueue

extension QueueSettings {
    static let jsonFields: Set<String> = [
        "visibilityTimeoutMs", "maxReceiveCount", "deadLetterQueue", "retryBackoff", "retentionMs", "delayMs", "maxDepth", "dedupWindowMs", "partitions",
        "maxMessageBytes", "offloadThresholdBytes",
    ]

    /// A PUT body: absent or null fields take their defaults (PUT replaces).
    /// - Throws: ``APIError`` 400 naming the field for an unknown field or a value of the wrong type
    ///   (ranges are checked by ``QueueSettings/validate(for:)``).
    init(json object: [String: JSONDocument]) throws {
        if let unknown = object.keys.sorted().first(where: { !Self.jsonFields.contains($0) }) {
            throw APIError(.badRequest, "\(unknown) is not a queue setting; the settings are \(Self.jsonFields.sorted().joined(separator: ", "))")
        }
        self.init()
        if let value = try JSONDocument.integer(object, "visibilityTimeoutMs") { self.visibilityTimeoutMilliseconds = value }
        if let value = try JSONDocument.integer(object, "maxReceiveCount") {
            guard let count = Int(exactly: value), count >= 1 else { throw APIError(.badRequest, "maxReceiveCount must be from 1 to 1000, or null") }
            self.maxReceiveCount = count
        }
        switch object["deadLetterQueue"] {
        case nil, .null?: break
        case .string(let name)?:
            guard let queue = QueueName(name) else {
                throw APIError(.badRequest, "deadLetterQueue must be a queue name: 1 to 128 characters from A-Z, a-z, 0-9, '_' and '-'")
            }
            self.deadLetterQueue = queue
        default: throw APIError(.badRequest, "deadLetterQueue must be a queue name or null")
        }
        switch object["retryBackoff"] {
        case nil, .null?: break
        case .object(let backoff)?:
            if let unknown = backoff.keys.sorted().first(where: { $0 != "baseMs" && $0 != "capMs" }) {
                throw APIError(.badRequest, "retryBackoff.\(unknown) is not a setting; use baseMs and capMs")
            }
            if let value = try JSONDocument.integer(backoff, "baseMs", path: "retryBackoff.baseMs") { self.retryBackoffBaseMilliseconds = value }
            if let value = try JSONDocument.integer(backoff, "capMs", path: "retryBackoff.capMs") { self.retryBackoffCapMilliseconds = value }
        default: throw APIError(.badRequest, #"retryBackoff must be an object {"baseMs": ..., "capMs": ...}"#)
        }
        if let value = try JSONDocument.integer(object, "retentionMs") { self.retentionMilliseconds = value }
        if let value = try JSONDocument.integer(object, "delayMs") { self.delayMilliseconds = value }
        if let value = try JSONDocument.integer(object, "maxDepth") {
            guard let depth = Int(exactly: value), depth >= 1 else { throw APIError(.badRequest, "maxDepth must be from 1 to 100000000, or null") }
            self.maxDepth = depth
        }
        if let value = try JSONDocument.integer(object, "dedupWindowMs") { self.dedupWindowMilliseconds = value }
        if let value = try JSONDocument.integer(object, "partitions") {
            guard let count = Int(exactly: value) else { throw APIError(.badRequest, "partitions must be from 1 to \(QueueName.maximumPartitions)") }
            self.partitions = count
        }
        for (field, path) in [("maxMessageBytes", \QueueSettings.maxMessageBytes), ("offloadThresholdBytes", \.offloadThresholdBytes)] {
            guard let value = try JSONDocument.integer(object, field) else { continue }
            guard let bytes = Int(exactly: value), bytes >= 1 else {
                throw APIError(.badRequest, "\(field) must be from 1 to \(QueueSettings.maximumMessageBytesLimit), or null")
            }
            self[keyPath: path] = bytes
        }
    }

    /// The settings as the API shows them, the dead-letter queue's name resolved.
    func json(of queue: QueueName) -> String {
        let settings = self
        func optional(_ value: Int?) -> String { value.map(String.init) ?? "null" }
        return #"{"visibilityTimeoutMs":"# + String(settings.visibilityTimeoutMilliseconds)
            + #","maxReceiveCount":"# + optional(settings.maxReceiveCount)
            + #","deadLetterQueue":"# + JSONText.quoted(settings.deadLetterQueue(of: queue).rawValue)
            + #","retryBackoff":{"baseMs":"# + String(settings.retryBackoffBaseMilliseconds)
            + #","capMs":"# + String(settings.retryBackoffCapMilliseconds)
            + #"},"retentionMs":"# + String(settings.retentionMilliseconds)
            + #","delayMs":"# + String(settings.delayMilliseconds)
            + #","maxDepth":"# + optional(settings.maxDepth)
            + #","dedupWindowMs":"# + String(settings.dedupWindowMilliseconds)
            + #","partitions":"# + String(settings.partitions)
            + #","maxMessageBytes":"# + optional(settings.maxMessageBytes)
            + #","offloadThresholdBytes":"# + optional(settings.offloadThresholdBytes) + "}"
    }
}
