import SkiffQueue
import Testing

/// What of a producer's `traceparent`/`tracestate` a message keeps (the W3C Trace Context rules).
@Suite("Message trace context")
struct MessageTraceContextTests {
    static let traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
    static let parent = "00-\(traceID)-00f067aa0ba902b7-01"

    @Test func aWellFormedContextIsKeptAndStoredOnOneLinePerHeader() throws {
        let context = try #require(MessageTraceContext(traceparent: Self.parent, tracestate: "a=1,b=2|3"))
        #expect(context.traceID == Self.traceID[...] && context.parentID == "00f067aa0ba902b7")
        #expect(context.stored == Self.parent + "\na=1,b=2|3")
        #expect(MessageTraceContext(stored: context.stored) == context)
        let bare = try #require(MessageTraceContext(traceparent: Self.parent))
        #expect(bare.stored == Self.parent && MessageTraceContext(stored: bare.stored) == bare)
    }

    @Test func aMalformedTraceparentIsDropped() {
        for value in [
            "", "00", String(Self.parent.dropLast()), Self.parent + "-", Self.parent + "x",
            "00-\(Self.traceID.uppercased())-00f067aa0ba902b7-01",  // uppercase hex
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  // zero trace id
            "00-\(Self.traceID)-0000000000000000-01",  // zero parent id
            "ff-\(Self.traceID)-00f067aa0ba902b7-01",  // version ff
            "0g-\(Self.traceID)-00f067aa0ba902b7-01",
            "00_\(Self.traceID)-00f067aa0ba902b7-01",
            "00-\(Self.traceID)-00f067aa0ba902b7-0x",
            "01-\(Self.traceID)-00f067aa0ba902b7-01x",  // a later version's extra field must follow a dash
        ] {
            #expect(MessageTraceContext(traceparent: value, tracestate: "a=1") == nil, "\(value)")
        }
    }

    @Test func theSampledFlagIsTheFlagsLowestBit() throws {
        for (flags, sampled) in [("00", false), ("01", true), ("02", false), ("03", true), ("ff", true), ("fe", false)] {
            let context = try #require(MessageTraceContext(traceparent: "00-\(Self.traceID)-00f067aa0ba902b7-\(flags)"))
            #expect(context.isSampled == sampled, "\(flags)")
        }
    }

    /// A later version is read as version 00's fields, as the recommendation says.
    @Test func aLaterVersionKeepsVersion00sFields() throws {
        let context = try #require(MessageTraceContext(traceparent: "cc-\(Self.traceID)-00f067aa0ba902b7-01-what-the-future-holds"))
        #expect(context.traceparent == Self.parent)
    }

    /// A bad `tracestate` is dropped alone: over 512 bytes, control bytes, non-ASCII, blank.
    @Test func aMalformedTracestateIsDroppedAlone() throws {
        let longest = "k=" + String(repeating: "v", count: 510)
        #expect(try #require(MessageTraceContext(traceparent: Self.parent, tracestate: longest)).tracestate == longest)
        for state in [longest + "v", "a=1\nb=2", "a=\u{1}", "a=caf\u{E9}", "", "   "] {
            let context = try #require(MessageTraceContext(traceparent: Self.parent, tracestate: state))
            #expect(context.tracestate == nil, "\(state.debugDescription)")
        }
        #expect(MessageTraceContext(stored: Self.parent + "\n") == nil)
    }
}
