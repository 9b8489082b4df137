import Foundation
import HTTPTypes
import HummingbirdTesting
import Logging
import NIOCore
import ServiceLifecycle
import SkiffAPI
import SkiffTestSupport
import Testing
import WSClient

/// A replica on a free port for the duration of `body`, stopped gracefully afterwards.
func withReplica<T: Sendable>(
    _ kind: BackendKind,
    configure: (inout SkiffConfiguration) -> Void = { _ in },
    _ body: @Sendable (_ port: Int, _ group: ServiceGroup) async throws -> T
) async throws -> T {
    let port = try RedisServerProcess.freePort()
    let app = try makeApplication(kind) {
        $0.port = port
        configure(&$0)
    }
    let group = ServiceGroup(configuration: .init(services: [app], logger: Logger(label: "stream-test")))
    let running = Task { try await group.run() }
    try await eventually { RedisServerProcess.canConnect(port: port) }
    do {
        let result = try await body(port, group)
        await group.triggerGracefulShutdown()
        try await running.value
        return result
    } catch {
        await group.triggerGracefulShutdown()
        _ = try? await running.value
        throw error
    }
}

/// What a test reads from a frame.
extension Dictionary where Key == String, Value == any Sendable {
    func string(_ key: String) -> String? { self[key] as? String }
    func int(_ key: String) -> Int? { self[key] as? Int }
}

/// Reads JSON frames until one has op `op`, collecting the others.
func frame(_ socket: RawWebSocket, op: String, skipping skipped: inout [[String: any Sendable]]) async throws -> [String: any Sendable] {
    while let json = try await socket.nextJSON() {
        if json.string("op") == op { return json }
        skipped.append(json)
    }
    throw RawWebSocketError(description: "the stream ended before a '\(op)' frame")
}

func frame(_ socket: RawWebSocket, op: String) async throws -> [String: any Sendable] {
    var skipped: [[String: any Sendable]] = []
    return try await frame(socket, op: op, skipping: &skipped)
}

/// A queue named after `prefix` holding `count` messages (`0`, `1`, …) and a stream opened on it.
func streamOnFilledQueue(
    port: Int,
    _ prefix: String,
    messages count: Int,
    query: String = ""
) async throws -> (queue: String, probe: Probe, socket: RawWebSocket) {
    let queue = TestEnvironment.uniqueName(prefix)
    let probe = Probe(port: port)
    for index in 0..<count { _ = try await probe.post(queue, "\(index)") }
    let socket = try await RawWebSocket.connect(port: port, path: "/api/\(queue)/stream" + (query.isEmpty ? "" : "?" + query))
    return (queue, probe, socket)
}

@Suite("WebSocket streams", .timeLimit(.minutes(2)))
struct StreamTests {
    @Test(arguments: BackendKind.available)
    func aPublishIsAnsweredWithItsRefAndStoredAsSent(kind: BackendKind) async throws {
        try await withReplica(kind) { port, _ in
            let queue = TestEnvironment.uniqueName("ws-publish")
            let socket = try await RawWebSocket.connect(port: port, path: "/api/\(queue)/stream")
            #expect(socket.status == 101)
            try await socket.sendText(#"{"op":"publish","ref":"p1","body":{"n": 1, "s":"é\u00e9"}}"#)
            let published = try await frame(socket, op: "published")
            #expect(published.string("ref") == "p1")
            let id = try #require(published.string("id"))
            try await socket.sendText(#"{"op":"publish","ref":7,"priority":3,"body":[1,2]}"#)
            #expect(try await frame(socket, op: "published").int("ref") == 7)
            let probe = Probe(port: port)
            let first = try await probe.get(queue, timeout: 0)
            #expect(first.headers[HTTPField.Name("Skiff-Priority")!] == "3")
            let second = try await probe.get(queue, timeout: 0)
            #expect(second.headers[HTTPField.Name("Skiff-Message-Id")!] == id)
            // The body's bytes exactly as they were in the frame.
            #expect(second.text == #"{"n": 1, "s":"é\u00e9"}"#)
            await socket.abort()
        }
    }

    /// A publish's `traceparent`/`tracestate` are kept as a POST's headers are, and a message
    /// frame carries them back (docs/tracing.md); a malformed one is ignored.
    @Test(arguments: BackendKind.available)
    func aPublishesTraceContextComesBackInItsMessageFrame(kind: BackendKind) async throws {
        try await withReplica(kind) { port, _ in
            let queue = TestEnvironment.uniqueName("ws-trace")
            let socket = try await RawWebSocket.connect(port: port, path: "/api/\(queue)/stream")
            let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            try await socket.sendText(#"{"op":"publish","ref":1,"body":1,"traceparent":"\#(parent)","tracestate":"a=1|2"}"#)
            _ = try await frame(socket, op: "published")
            try await socket.sendText(#"{"op":"publish","ref":2,"body":2,"traceparent":"00-bad"}"#)
            _ = try await frame(socket, op: "published")
            try await socket.sendText(#"{"op":"credit","n":2}"#)
            let first = try await frame(socket, op: "message")
            #expect(first.int("body") == 1 && first.string("traceparent") == parent && first.string("tracestate") == "a=1|2")
            let second = try await frame(socket, op: "message")
            #expect(second.int("body") == 2 && second.string("traceparent") == nil)
            await socket.abort()
        }
    }

    @Test(arguments: BackendKind.available)
    func nothingArrivesBeforeCreditAndTheCreditIsNeverExceeded(kind: BackendKind) async throws {
        try await withReplica(kind) { port, _ in
            let (queue, probe, socket) = try await streamOnFilledQueue(port: port, "ws-credit", messages: 10)
            // A publish round trip as a barrier: no message may come before it or with it.
            try await socket.sendText(#"{"op":"publish","ref":"barrier","body":10}"#)
            var early: [[String: any Sendable]] = []
            _ = try await frame(socket, op: "published", skipping: &early)
            #expect(early.isEmpty)

            try await socket.sendText(#"{"op":"credit","n":3,"ref":"c"}"#)
            var messages: [[String: any Sendable]] = []
            var credited: [String: any Sendable]?
            while messages.count < 3 || credited == nil {
                let json = try #require(try await socket.nextJSON())
                if json.string("op") == "message" { messages.append(json) } else if json.string("op") == "credited" { credited = json }
            }
            #expect(credited?.int("credit") == 3)
            #expect(messages.map { $0.int("body") } == [0, 1, 2])
            #expect(messages.allSatisfy { $0.string("receipt") != nil && $0.int("receiveCount") == 1 })
            // The window is full: a fourth message does not come, however long we wait for one
            // round trip; the queue holds three in flight.
            try await socket.sendText(#"{"op":"publish","ref":"barrier2","body":11}"#)
            var extra: [[String: any Sendable]] = []
            _ = try await frame(socket, op: "published", skipping: &extra)
            #expect(extra.isEmpty)
            let stats = try await probe.request(.get, "/api/\(queue)/stats")
            #expect(stats.text.contains(#""inFlight":3"#))
            // An ack frees one place: exactly one more arrives.
            let receipt = try #require(messages[0].string("receipt"))
            try await socket.sendText(#"{"op":"ack","receipt":"\#(receipt)","ref":"a"}"#)
            var next: [[String: any Sendable]] = []
            let acked = try await frame(socket, op: "acked", skipping: &next)
            #expect(acked.string("receipt") == receipt)
            var fourth = next.first { $0.string("op") == "message" }
            if fourth == nil { fourth = try await frame(socket, op: "message") }
            #expect(fourth?.int("body") == 3)
            await socket.abort()
        }
    }

    @Test(arguments: BackendKind.available)
    func aClosedStreamReleasesWhatItHeldAtOnceWithItsReceiveCounted(kind: BackendKind) async throws {
        for cut in [false, true] {
            try await withReplica(kind) { port, _ in
                // A visibility timeout far longer than the test: only the release brings them back.
                let (queue, probe, socket) = try await streamOnFilledQueue(port: port, "ws-release", messages: 4, query: "credit=4&visibility=600000")
                for _ in 0..<4 { _ = try await frame(socket, op: "message") }
                if cut {
                    await socket.abort()
                } else {
                    try await socket.send(opcode: 0x8, ByteBuffer(bytes: [0x03, 0xE8]))
                    let close = try #require(try await socket.next())
                    #expect(close.closeCode == 1000)
                }
                try await eventually { try await probe.request(.get, "/api/\(queue)/stats").text.contains(#""ready":4,"inFlight":0"#) }
                let again = try await probe.get(queue, timeout: 0)
                #expect(again.text == "0")
                #expect(again.headers[HTTPField.Name("Skiff-Receive-Count")!] == "2")
                for index in 1..<4 { #expect(try await probe.get(queue, timeout: 0).text == "\(index)") }
            }
        }
    }

    @Test(arguments: BackendKind.available)
    func anAckForAReceiptThatMovedOnIs404(kind: BackendKind) async throws {
        try await withReplica(kind) { port, _ in
            let (_, _, socket) = try await streamOnFilledQueue(port: port, "ws-stale", messages: 1, query: "credit=1")
            let receipt = try #require(try await frame(socket, op: "message").string("receipt"))
            try await socket.sendText(#"{"op":"ack","receipt":"\#(receipt)","ref":1}"#)
            #expect(try await frame(socket, op: "acked").int("ref") == 1)
            for (ref, stale) in [(2, receipt), (3, "nothing.1"), (4, "not a receipt")] {
                try await socket.sendText(#"{"op":"ack","receipt":"\#(stale)","ref":\#(ref)}"#)
                let error = try await frame(socket, op: "error")
                #expect(error.int("ref") == ref)
                #expect(error.int("status") == 404)
                #expect(error.string("error")?.contains("unknown or stale receipt") == true)
            }
            try await socket.sendText(#"{"op":"nack","receipt":"\#(receipt)","ref":5}"#)
            #expect(try await frame(socket, op: "error").int("status") == 404)
            try await socket.sendText(#"{"op":"extend","receipt":"\#(receipt)","ms":1000,"ref":6}"#)
            #expect(try await frame(socket, op: "error").int("status") == 404)
            await socket.abort()
        }
    }

    @Test func badFramesGetAnErrorFrameAndTheStreamStaysOpen() async throws {
        try await withReplica(.memory) { port, _ in
            let queue = TestEnvironment.uniqueName("ws-bad")
            let socket = try await RawWebSocket.connect(port: port, path: "/api/\(queue)/stream")
            let cases: [(frame: String, status: Int, words: String)] = [
                ("not json", 400, "not valid JSON"),
                ("[1,2]", 400, "one JSON object"),
                (#"{"op":"fly"}"#, 400, "unknown op 'fly'"),
                (#"{"body":1}"#, 400, "'op' is required"),
                (#"{"op":"publish"}"#, 400, "needs a 'body'"),
                (#"{"op":"publish","body":1,"priority":10}"#, 400, "priority must be an integer from 0 to 9"),
                (#"{"op":"publish","body":1,"delay":-1}"#, 400, "delay must be an integer"),
                (#"{"op":"credit","n":0}"#, 400, "n must be an integer from 1 to 10000"),
                (#"{"op":"credit","n":10001}"#, 400, "n must be an integer from 1 to 10000"),
                (#"{"op":"ack"}"#, 400, "'receipt' is required"),
                (#"{"op":"ack","receipt":"a.1","receipt":"b.1"}"#, 400, "appears twice"),
                (#"{"op":"credit","n":1,"\u006fp":"publish"}"#, 400, "appears twice"),
                (#"{"op":"publish","body":1,"ref":{"a":1}}"#, 400, "ref must be a string or a number"),
            ]
            for (frame, status, words) in cases {
                try await socket.sendText(frame)
                let error = try await StreamTests.error(socket)
                #expect(error.int("status") == status, "\(frame)")
                #expect(error.string("error")?.contains(words) == true, "\(frame): \(error.string("error") ?? "")")
            }
            // A body over MAX_MESSAGE_BYTES inside a frame under the frame limit: 413, as a POST.
            let big = String(repeating: "x", count: 1_048_576)
            try await socket.sendText(#"{"op":"publish","ref":"big","body":"\#(big)"}"#)
            let tooLarge = try await StreamTests.error(socket)
            #expect(tooLarge.int("status") == 413)
            #expect(tooLarge.string("ref") == "big")
            try await socket.sendText(#"{"op":"publish","ref":"ok","body":true}"#)
            #expect(try await frame(socket, op: "published").string("ref") == "ok")
            #expect(try await Probe(port: port).get(queue, timeout: 0).text == "true")
            await socket.abort()
        }
    }

    static func error(_ socket: RawWebSocket) async throws -> [String: any Sendable] {
        try await frame(socket, op: "error")
    }

    @Test func closeCodesSayWhy() async throws {
        try await withReplica(.memory, configure: { $0.api.maximumMessageBytes = 1000 }) { port, _ in
            let queue = TestEnvironment.uniqueName("ws-close")
            // A binary frame: 1003.
            let binary = try await RawWebSocket.connect(port: port, path: "/api/\(queue)/stream")
            try await binary.send(opcode: 0x2, ByteBuffer(string: "{}"))
            let unacceptable = try #require(try await binary.next())
            #expect(unacceptable.closeCode == 1003)
            #expect(unacceptable.closeReason.contains("binary"))
            // A frame over MAX_MESSAGE_BYTES plus the envelope: 1009.
            let oversized = try await RawWebSocket.connect(port: port, path: "/api/\(queue)/stream")
            try await oversized.send(opcode: 0x1, ByteBuffer(repeating: UInt8(ascii: "x"), count: 1000 + 16 * 1024 + 1))
            #expect(try #require(try await oversized.next()).closeCode == 1009)
            // The same message in fragments: 1009 too.
            let fragments = try await RawWebSocket.connect(port: port, path: "/api/\(queue)/stream")
            try await fragments.send(opcode: 0x1, ByteBuffer(repeating: UInt8(ascii: "x"), count: 10_000), fin: false)
            try await fragments.send(opcode: 0x0, ByteBuffer(repeating: UInt8(ascii: "x"), count: 10_000), fin: false)
            #expect(try #require(try await fragments.next()).closeCode == 1009)
            // A fragmented message within the limit is one frame.
            let whole = try await RawWebSocket.connect(port: port, path: "/api/\(queue)/stream")
            try await whole.send(opcode: 0x1, ByteBuffer(string: #"{"op":"publish","#), fin: false)
            try await whole.send(opcode: 0x0, ByteBuffer(string: #""ref":"f","body":"#), fin: false)
            try await whole.send(opcode: 0x0, ByteBuffer(string: "42}"))
            #expect(try await frame(whole, op: "published").string("ref") == "f")
            for socket in [binary, oversized, fragments, whole] { await socket.abort() }
        }
    }

    @Test func aPeerThatStopsAnsweringPingsIsClosedAndItsMessagesReleased() async throws {
        try await withReplica(.memory, configure: { $0.streamPingInterval = .milliseconds(200) }) { port, _ in
            let (queue, _, socket) = try await streamOnFilledQueue(port: port, "ws-ping", messages: 1, query: "credit=1&visibility=600000")
            _ = try await frame(socket, op: "message")
            // Never answers the pings (next() does not pong): closed after about two intervals.
            var frames: [RawWebSocket.Frame] = []
            while let frame = try await socket.next(timeout: .seconds(10)) { frames.append(frame) }
            #expect(frames.contains { $0.opcode == 0x9 })
            #expect(frames.last?.closeCode == 1011)
            #expect(socket.isClosed)
            let again = try await eventually(until: { $0.status == .ok }) { try await Probe(port: port).get(queue, timeout: 0) }
            #expect(again.text == "0")
        }
    }

    @Test func aPeerThatAnswersPingsStaysOpenWhileIdle() async throws {
        // An interval far above any event-loop stall a loaded test machine has, so only a peer that
        // does not answer could be closed.
        try await withReplica(.memory, configure: { $0.streamPingInterval = .seconds(4) }) { port, _ in
            let queue = TestEnvironment.uniqueName("ws-idle")
            let socket = try await RawWebSocket.connect(port: port, path: "/api/\(queue)/stream")
            var pings = 0
            var others: [RawWebSocket.Frame] = []
            while pings < 2, let frame = try await socket.next(timeout: .seconds(15)) {
                if frame.opcode == 0x9 {
                    pings += 1
                    try await socket.send(opcode: 0xA, frame.payload)
                } else {
                    others.append(frame)
                }
            }
            #expect(pings == 2, "other frames: \(others.map { "\($0.opcode) \($0.closeCode ?? 0) \($0.closeReason)" })")
            try await socket.sendText(#"{"op":"publish","ref":"alive","body":1}"#)
            #expect(try await frame(socket, op: "published").string("ref") == "alive")
            await socket.abort()
        }
    }

    @Test(arguments: BackendKind.available)
    func autoAckDeletesAMessageOnceItsFrameIsWritten(kind: BackendKind) async throws {
        try await withReplica(kind) { port, _ in
            let (queue, probe, socket) = try await streamOnFilledQueue(port: port, "ws-autoack", messages: 5, query: "credit=2&autoAck=true")
            var bodies: [Int] = []
            for _ in 0..<5 {
                let message = try await frame(socket, op: "message")
                #expect(message.string("receipt") == nil)
                bodies.append(message.int("body") ?? -1)
            }
            #expect(bodies == [0, 1, 2, 3, 4])
            try await eventually { try await probe.request(.get, "/api/\(queue)/stats").text.contains(#""inFlight":0"#) }
            #expect(try await probe.get(queue, timeout: 0).status == .noContent)
            await socket.abort()
        }
    }

    @Test(arguments: BackendKind.available)
    func nackAndExtendWorkOnTheStream(kind: BackendKind) async throws {
        try await withReplica(kind) { port, _ in
            let (_, _, socket) = try await streamOnFilledQueue(port: port, "ws-nack", messages: 1, query: "credit=1&visibility=600000")
            let first = try await frame(socket, op: "message")
            let receipt = try #require(first.string("receipt"))
            try await socket.sendText(#"{"op":"extend","receipt":"\#(receipt)","ms":600000,"ref":"e"}"#)
            #expect(try await frame(socket, op: "extended").string("receipt") == receipt)
            try await socket.sendText(#"{"op":"nack","receipt":"\#(receipt)","delay":0,"ref":"n"}"#)
            var others: [[String: any Sendable]] = []
            #expect(try await frame(socket, op: "nacked", skipping: &others).string("ref") == "n")
            // The nack freed the place and made the message visible: it comes back on the stream.
            var again = others.first { $0.string("op") == "message" }
            if again == nil { again = try await frame(socket, op: "message") }
            #expect(again?.string("id") == first.string("id"))
            #expect(again?.int("receiveCount") == 2)
            await socket.abort()
        }
    }

    @Test(arguments: BackendKind.available)
    func drainClosesWith1001AndReleasesWhatTheStreamHeld(kind: BackendKind) async throws {
        let queue = TestEnvironment.uniqueName("ws-drain")
        let redisURL = kind.redisURL
        try await withReplica(kind) { port, group in
            _ = try await Probe(port: port).post(queue, "1")
            let socket = try await RawWebSocket.connect(port: port, path: "/api/\(queue)/stream?credit=1&visibility=600000")
            _ = try await frame(socket, op: "message")
            await group.triggerGracefulShutdown()
            var close: RawWebSocket.Frame?
            while close == nil, let frame = try await socket.next(timeout: .seconds(10)) {
                if frame.opcode == 0x8 { close = frame }
            }
            #expect(close?.closeCode == 1001)
            try await socket.send(opcode: 0x8, ByteBuffer(bytes: [0x03, 0xE9]))
        }
        // On Redis the message outlives the replica: visible at once on the next one.
        guard redisURL != nil else { return }
        try await withReplica(kind) { port, _ in
            let again = try await Probe(port: port).get(queue, timeout: 0)
            #expect(again.text == "1")
        }
    }

    @Test(arguments: BackendKind.available.filter(\.isRedis))
    func aMessagePostedOnAnotherReplicaWakesTheStream(kind: BackendKind) async throws {
        try await withReplica(kind) { portA, _ in
            try await withReplica(kind) { portB, _ in
                let queue = TestEnvironment.uniqueName("ws-wake")
                let socket = try await RawWebSocket.connect(port: portA, path: "/api/\(queue)/stream?credit=10")
                // The stream is waiting (its first claim found nothing) before the post.
                try await socket.sendText(#"{"op":"credit","n":1,"ref":"sync"}"#)
                _ = try await frame(socket, op: "credited")
                _ = try await Probe(port: portB).post(queue, #""from B""#)
                let message = try await frame(socket, op: "message")
                #expect(message.string("body") == "from B")
                await socket.abort()
            }
        }
    }

    @Test func anUpgradeThatCannotOpenIsAnsweredOverHTTP() async throws {
        try await withReplica(.memory, configure: { $0.maximumStreams = 1 }) { port, _ in
            let queue = TestEnvironment.uniqueName("ws-refused")
            let plain = try await RawWebSocket.connect(port: port, path: "/api/\(queue)/stream", upgrade: false)
            #expect(plain.status == 426)
            // A bad parameter is a 400 with or without the upgrade headers.
            let plainBadCredit = try await RawWebSocket.connect(port: port, path: "/api/\(queue)/stream?credit=-1", upgrade: false)
            #expect(plainBadCredit.status == 400)
            await plainBadCredit.abort()
            let badCredit = try await RawWebSocket.connect(port: port, path: "/api/\(queue)/stream?credit=x")
            #expect(badCredit.status == 400)
            let badName = try await RawWebSocket.connect(port: port, path: "/api/bad.name/stream")
            #expect(badName.status == 400)
            let first = try await RawWebSocket.connect(port: port, path: "/api/\(queue)/stream")
            #expect(first.status == 101)
            // Its place is taken once its session runs (a frame answered); an upgrade racing a
            // stream that has not started yet is refused after it, with 1013 (docs/streams.md).
            try await first.sendText(#"{"op":"credit","n":1,"ref":"sync"}"#)
            _ = try await frame(first, op: "credited")
            let second = try await RawWebSocket.connect(port: port, path: "/api/\(queue)/stream")
            #expect(second.status == 503)
            #expect(second.responseHead.lowercased().contains("retry-after: 1"))
            await first.abort()
            // The place is free again once the first stream has ended.
            let third = try await eventually(until: { $0.status == 101 }) {
                try await RawWebSocket.connect(port: port, path: "/api/\(queue)/stream")
            }
            #expect(third.status == 101)
            for socket in [plain, badCredit, badName, second, third] { await socket.abort() }
        }
    }

    /// NIO's upgrade handler swallows the head of a request with an `Upgrade` header it does not
    /// upgrade; the routes must still answer it.
    @Test func aFirstRequestWithAnUpgradeThatIsNotTakenIsStillAnswered() async throws {
        try await withReplica(.memory) { port, _ in
            let h2c = try await RawWebSocket.connect(
                port: port,
                path: "/health",
                headers: [("Upgrade", "h2c"), ("Connection", "Upgrade, HTTP2-Settings"), ("HTTP2-Settings", "AAMAAABkAAQAAP__")],
                upgrade: false
            )
            #expect(h2c.status == 200)
            let noKey = try await RawWebSocket.connect(
                port: port,
                path: "/api/q/stream",
                headers: [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Version", "13")],
                upgrade: false
            )
            #expect(noKey.status == 400)
            for socket in [h2c, noKey] { await socket.abort() }
        }
    }

    /// Nothing is written after the server's close frame: an auto-acknowledged message must not
    /// be deleted as delivered on a stream that is closing.
    @Test(arguments: BackendKind.available)
    func nothingIsDeliveredAfterACloseFrame(kind: BackendKind) async throws {
        try await withReplica(kind) { port, _ in
            let (queue, probe, socket) = try await streamOnFilledQueue(port: port, "ws-after-close", messages: 3, query: "autoAck=true")
            try await socket.send(opcode: 0x2, ByteBuffer(string: "{}"))
            try await socket.sendText(#"{"op":"credit","n":3}"#)
            var frames: [RawWebSocket.Frame] = []
            while let frame = try await socket.next(timeout: .seconds(3)) { frames.append(frame) }
            #expect(frames.first?.closeCode == 1003)
            #expect(frames.filter { $0.opcode == 0x1 }.isEmpty)
            for index in 0..<3 { #expect(try await probe.get(queue, timeout: 0).text == "\(index)") }
            await socket.abort()
        }
    }

    @Test func keysApplyToStreamsAndToEachFrame() async throws {
        let keys = """
            [{"name":"sender","key":"send-secret-0123456789","scopes":["send"]},
             {"name":"worker","key":"work-secret-0123456789","scopes":["receive"],"queuePrefix":"jobs-"}]
            """
        try await withReplica(.memory, configure: { $0.apiKeys = try! APIKey.parseDocument(keys, source: "test") }) { port, _ in
            let queue = "jobs-" + TestEnvironment.uniqueName("ws-auth")
            // No key: the upgrade succeeds and the close says why (a browser sees only that).
            let anonymous = try await RawWebSocket.connect(port: port, path: "/api/\(queue)/stream")
            #expect(anonymous.status == 101)
            let refused = try #require(try await anonymous.next())
            #expect(refused.closeCode == 1008)
            #expect(refused.closeReason.contains("API key is required"))
            // The key as a subprotocol (browsers), base64url: the answer selects `skiff`.
            let encoded = Data("send-secret-0123456789".utf8).base64EncodedString()
                .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
            let sender = try await RawWebSocket.connect(
                port: port,
                path: "/api/\(queue)/stream",
                headers: [("Sec-WebSocket-Protocol", "skiff, skiff.key.\(encoded)")]
            )
            #expect(sender.status == 101)
            #expect(sender.responseHead.lowercased().contains("sec-websocket-protocol: skiff"))
            try await sender.sendText(#"{"op":"publish","ref":1,"body":1}"#)
            #expect(try await frame(sender, op: "published").int("ref") == 1)
            // A send-only key may not take credit.
            try await sender.sendText(#"{"op":"credit","n":1,"ref":2}"#)
            let forbidden = try await frame(sender, op: "error")
            #expect(forbidden.int("status") == 403)
            #expect(forbidden.string("error")?.contains("'receive' scope") == true)
            // Nor open a stream with credit.
            let senderWithCredit = try await RawWebSocket.connect(
                port: port, path: "/api/\(queue)/stream?credit=1", headers: [("Authorization", "Bearer send-secret-0123456789")])
            #expect(try #require(try await senderWithCredit.next()).closeCode == 1008)
            // The receive key: consumes, but may not publish, and only under its prefix.
            let worker = try await RawWebSocket.connect(
                port: port, path: "/api/\(queue)/stream?credit=1", headers: [("Authorization", "Bearer work-secret-0123456789")])
            #expect(try await frame(worker, op: "message").int("body") == 1)
            try await worker.sendText(#"{"op":"publish","ref":3,"body":1}"#)
            #expect(try await frame(worker, op: "error").int("status") == 403)
            let outside = try await RawWebSocket.connect(
                port: port, path: "/api/other-queue/stream", headers: [("Authorization", "Bearer work-secret-0123456789")])
            let outsideClose = try #require(try await outside.next())
            #expect(outsideClose.closeCode == 1008)
            #expect(outsideClose.closeReason.contains("jobs-"))
            for socket in [anonymous, sender, senderWithCredit, worker, outside] { await socket.abort() }
        }
    }

    /// A client library that speaks the protocol as any other would: publish, consume, ack, close.
    @Test(arguments: BackendKind.available)
    func aWebSocketClientLibraryPublishesConsumesAndAcks(kind: BackendKind) async throws {
        try await withReplica(kind) { port, _ in
            let queue = TestEnvironment.uniqueName("ws-client")
            var logger = Logger(label: "ws-client")
            logger.logLevel = .warning
            let closeFrame = try await WebSocketClient.connect(url: "ws://127.0.0.1:\(port)/api/\(queue)/stream?credit=5", logger: logger) {
                inbound, outbound, _ in
                for index in 0..<5 { try await outbound.writeText(#"{"op":"publish","ref":\#(index),"body":\#(index)}"#) }
                var published = 0
                var acked = 0
                var received: [Int] = []
                for try await message in inbound.messages(maxSize: 1 << 20) {
                    guard case .text(let text) = message,
                        let json = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
                    else { continue }
                    switch json["op"] as? String {
                    case "published": published += 1
                    case "message":
                        received.append((json["body"] as? NSNumber)?.intValue ?? -1)
                        try await outbound.writeText(#"{"op":"ack","receipt":"\#(json["receipt"] as? String ?? "")"}"#)
                    case "acked": acked += 1
                    default: Issue.record("unexpected frame \(text)")
                    }
                    if published == 5, acked == 5 { break }
                }
                #expect(received == [0, 1, 2, 3, 4])
                try await outbound.close(.normalClosure, reason: "done")
            }
            #expect(closeFrame?.closeCode == .normalClosure)
            try await eventually { try await Probe(port: port).request(.get, "/api/\(queue)/stats").text.contains(#""ready":0,"inFlight":0"#) }
        }
    }
}

extension WebSocketOutboundWriter {
    func writeText(_ text: String) async throws { try await write(.text(text)) }
}
