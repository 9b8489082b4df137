extension MemoryQueueBackend {
    public func adjustPayloadReferences(of id: String, by delta: Int, keepFor: Duration) async throws -> Int? {
        let now = wallClock()
        return state.withLock { state in
            if let kept = state.payloadReferences[id], kept.until <= now { state.payloadReferences[id] = nil }
            guard delta >= 0 || state.payloadReferences[id] != nil else { return nil }
            let count = (state.payloadReferences[id]?.count ?? 0) + delta
            guard count > 0 else {
                state.payloadReferences[id] = nil
                return 0
            }
            if state.payloadReferences[id] == nil, state.payloadReferences.count >= state.payloadReferencesSweepAt {
                // Counts a publisher left behind (it was cancelled mid-publish) go when they expire.
                state.payloadReferences = state.payloadReferences.filter { $0.value.until > now }
                state.payloadReferencesSweepAt = max(10_000, 2 * state.payloadReferences.count)
            }
            state.payloadReferences[id] = (count, now + keepFor.milliseconds)
            return count
        }
    }
}
