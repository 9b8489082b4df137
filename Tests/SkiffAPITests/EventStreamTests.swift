import AsyncHTTPClient
import Foundation
import HTTPTypes
import NIOCore
import SkiffAPI
import SkiffTestSupport
import Testing

/// One Server-Sent Event.
struct ServerSentEvent: Sendable {
    var id: String?
    var event: String?
    var data: String

    var json: [String: any Sendable]? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(data.utf8)) as? [String: Any] else { return nil }
        return object.compactMapValues { value -> (any Sendable)? in
            if let text = value as? String { return text }
            if let number = value as? NSNumber { return number.intValue }
            return nil
        }
    }
}

/// Reads a `text/event-stream` response event by event (comments are skipped).
struct EventReader {
    var body: HTTPClientResponse.Body.AsyncIterator
    var text = ""

    mutating func next() async throws -> ServerSentEvent? {
        while true {
            if let end = text.range(of: "\n\n") {
                let block = String(text[..<end.lowerBound])
                text.removeSubrange(..<end.upperBound)
                var event = ServerSentEvent(data: "")
                var isComment = true
                for line in block.split(separator: "\n", omittingEmptySubsequences: false) {
                    if line.hasPrefix(":") { continue }
                    isComment = false
                    if line.hasPrefix("id: ") { event.id = String(line.dropFirst(4)) }
                    if line.hasPrefix("event: ") { event.event = String(line.dropFirst(7)) }
                    if line.hasPrefix("data: ") { event.data += String(line.dropFirst(6)) }
                }
                if !isComment { return event }
                continue
            }
            guard let chunk = try await body.next() else { return nil }
            text += String(buffer: chunk)
        }
    }
}

@Suite("Server-Sent Events feed", .timeLimit(.minutes(2)))
struct EventStreamTests {
    func open(_ port: Int, _ path: String) async throws -> (HTTPClientResponse, EventReader) {
        let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)"), timeout: .seconds(60))
        return (response, EventReader(body: response.body.makeAsyncIterator()))
    }

    @Test(arguments: BackendKind.available)
    func aFeedDeliversUpToItsPrefetchAndAnAckAnywhereFreesAPlace(kind: BackendKind) async throws {
        try await withReplica(kind) { port, _ in
            try await withReplica(kind) { otherPort, _ in
                let queue = TestEnvironment.uniqueName("sse")
                let probe = Probe(port: port)
                for index in 0..<5 { _ = try await probe.post(queue, "\(index)") }
                let reading = Task {
                    var (response, reader) = try await open(port, "/api/\(queue)/events?prefetch=2&visibility=600000")
                    #expect(response.status == .ok)
                    #expect(response.headers["content-type"].first?.hasPrefix("text/event-stream") == true)
                    var events: [ServerSentEvent] = []
                    for _ in 0..<2 { events.append(try #require(try await reader.next())) }
                    #expect(events.map { $0.json?["body"] as? Int } == [0, 1])
                    #expect(events.allSatisfy { $0.id != nil && $0.id == $0.json?["receipt"] as? String })
                    // The window is full: two in flight, no third.
                    try await eventually { try await probe.request(.get, "/api/\(queue)/stats").text.contains(#""ready":3,"inFlight":2"#) }
                    // An ack on the other replica (Redis) or this one (memory) frees a place.
                    let ackPort = kind.isRedis ? otherPort : port
                    let ack = try await Probe(port: ackPort).request(.delete, "/api/\(queue)/messages/\(events[0].id!)")
                    #expect(ack.status == .noContent)
                    let third = try #require(try await reader.next())
                    #expect(third.json?["body"] as? Int == 2)
                    return third.id
                }
                let thirdReceipt = try await reading.value
                #expect(thirdReceipt != nil)
            }
        }
    }

    @Test(arguments: BackendKind.available)
    func aFeedThatEndsReleasesWhatItHeldAtOnce(kind: BackendKind) async throws {
        try await withReplica(kind) { port, _ in
            let queue = TestEnvironment.uniqueName("sse-release")
            let probe = Probe(port: port)
            for index in 0..<3 { _ = try await probe.post(queue, "\(index)") }
            let reading = Task {
                var (_, reader) = try await open(port, "/api/\(queue)/events?prefetch=3&visibility=600000")
                for _ in 0..<3 { _ = try #require(try await reader.next()) }
                try await eventually { try await probe.request(.get, "/api/\(queue)/stats").text.contains(#""inFlight":3"#) }
                // Hold the connection until cancelled, as a browser tab that is closed.
                while try await reader.next() != nil {}
            }
            try await eventually { try await probe.request(.get, "/api/\(queue)/stats").text.contains(#""inFlight":3"#) }
            reading.cancel()
            _ = await reading.result
            try await eventually { try await probe.request(.get, "/api/\(queue)/stats").text.contains(#""ready":3,"inFlight":0"#) }
            let again = try await probe.get(queue, timeout: 0)
            #expect(again.text == "0")
            #expect(again.headers[HTTPField.Name("Skiff-Receive-Count")!] == "2")
        }
    }

    @Test func badParametersAre400() async throws {
        try await withReplica(.memory) { port, _ in
            for query in ["prefetch=0", "prefetch=x", "prefetch=10001", "visibility=0"] {
                let response = try await Probe(port: port).request(.get, "/api/q/events?\(query)")
                #expect(response.status == .badRequest, "\(query)")
            }
        }
    }
}
