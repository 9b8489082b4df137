import Testing

@testable import SkiffAPI

@Suite("Request timing state")
struct RequestTimingStateTests {
    @Test func aRequestRunsHeadDeadlineThenNothingThenIdle() {
        var state = RequestTimingState()
        #expect(state.idleTimeoutApplies)
        #expect(state.bytesArrived() == .startHeadDeadline)
        #expect(state.headDeadlineApplies)
        // More bytes of the same head change nothing: the deadline runs from the first byte.
        #expect(state.bytesArrived() == .none)
        #expect(state.headReceived() == .cancelHeadDeadline)
        #expect(!state.headDeadlineApplies && !state.idleTimeoutApplies)
        // Body bytes, or a long-poll's wait: no limit here.
        #expect(state.bytesArrived() == .none)
        #expect(state.responseCompleted() == .startIdleTimer)
        #expect(state.idleTimeoutApplies)
        #expect(state.bytesArrived() == .startHeadDeadline)
    }

    @Test func pipelinedRequestsStayInRequestUntilTheLastResponse() {
        var state = RequestTimingState()
        _ = state.bytesArrived()
        #expect(state.headReceived() == .cancelHeadDeadline)
        #expect(state.headReceived() == .none)
        #expect(state.responseCompleted() == .none)
        #expect(state.phase == .inRequest(1))
        #expect(state.responseCompleted() == .startIdleTimer)
        #expect(state.phase == .idle)
    }

    @Test func strayEventsDoNotUnderflowOrArmTimers() {
        var state = RequestTimingState()
        #expect(state.responseCompleted() == .none)
        #expect(state.phase == .idle)
        // A head heard of before its bytes (not expected; handled): in a request, no deadline.
        #expect(state.headReceived() == .cancelHeadDeadline)
        #expect(state.phase == .inRequest(1))
    }
}
