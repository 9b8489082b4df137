import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import SkiffQueue
import SkiffTestSupport
import Synchronization
import Testing

@testable import SkiffAPI

/// A message's trace context (docs/tracing.md): kept with the message outside its body and handed
/// back with every delivery; with tracing on, the spans a replica exports over OTLP.
@Suite("Tracing", .timeLimit(.minutes(2)))
struct TracingTests {
    static let traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
    static let producerSpanID = "00f067aa0ba902b7"
    static let traceparent = "00-\(traceID)-\(producerSpanID)-01"
    static let tracestate = "vendor=a|b,other=9"
    static let traceHeaders: HTTPFields = [HTTPField.Name("traceparent")!: traceparent, HTTPField.Name("tracestate")!: tracestate]

    // MARK: Tracing off: the context passes through

    /// With tracing off, a POST's `traceparent`/`tracestate` come back verbatim with the message,
    /// as headers of a GET, as fields of a batch receive, after a nack and from the dead-letter queue.
    /// Live, so the fast path is in front: a POST with a `traceparent` must reach the route that keeps it.
    @Test(arguments: BackendKind.available)
    func aMessagesTraceContextComesBackWithEveryDelivery(kind: BackendKind) async throws {
        let app = try makeApplication(kind)
        try await app.test(.live) { client async throws in
            let queue = TestEnvironment.uniqueName("trace")
            let configured = try await client.execute(
                uri: "/api/\(queue)/config", method: .put, body: ByteBuffer(string: #"{"maxReceiveCount":1}"#))
            #expect(configured.status == .ok)
            #expect(try await client.execute(uri: "/api/\(queue)", method: .post, headers: Self.traceHeaders, body: ByteBuffer(string: "1")).status == .created)
            let plain = try await client.execute(uri: "/api/\(queue)", method: .post, body: ByteBuffer(string: "2"))
            #expect(plain.status == .created)

            let first = try await client.execute(uri: "/api/\(queue)?timeout=0&visibility=1000", method: .get)
            #expect(first.status == .ok && first.text == "1")
            #expect(first.headers[HTTPField.Name("traceparent")!] == Self.traceparent)
            #expect(first.headers[HTTPField.Name("tracestate")!] == Self.tracestate)
            let second = try await client.execute(uri: "/api/\(queue)?timeout=0&visibility=1000", method: .get)
            #expect(second.text == "2" && second.headers[HTTPField.Name("traceparent")!] == nil)

            // Nacked past maxReceiveCount: the dead letter keeps it.
            let receipt = try #require(first.headers[HTTPField.Name("Skiff-Receipt")!])
            #expect(try await client.execute(uri: "/api/\(queue)/messages/\(receipt)/nack", method: .post).status == .noContent)
            let dead = try await client.execute(uri: "/api/\(queue)-dlq/batch?timeout=0", method: .get)
            #expect(dead.status == .ok)
            #expect(dead.text.contains(#""traceparent":"\#(Self.traceparent)","tracestate":"vendor=a|b,other=9","body":1}"#), "\(dead.text)")

            // A partitioned queue's message keeps it too.
            let partitioned = TestEnvironment.uniqueName("trace-parts")
            let parts = try await client.execute(uri: "/api/\(partitioned)/config", method: .put, body: ByteBuffer(string: #"{"partitions":4}"#))
            #expect(parts.status == .ok)
            for body in ["1", "2", "3"] {
                let posted = try await client.execute(uri: "/api/\(partitioned)", method: .post, headers: Self.traceHeaders, body: ByteBuffer(string: body))
                #expect(posted.status == .created)
            }
            for _ in 0..<3 {
                let got = try await client.execute(uri: "/api/\(partitioned)?timeout=1000", method: .get)
                #expect(got.status == .ok && got.headers[HTTPField.Name("traceparent")!] == Self.traceparent)
            }
        }
    }

    /// With STORE_TRACE_CONTEXT off (the first step of an upgrade), nothing is kept.
    @Test func withStoringOffNothingIsKept() async throws {
        let app = try makeApplication(.memory) { $0.api.storesTraceContext = false }
        try await app.test(.router) { client async throws in
            let queue = TestEnvironment.uniqueName("trace-off")
            #expect(try await client.execute(uri: "/api/\(queue)", method: .post, headers: Self.traceHeaders, body: ByteBuffer(string: "1")).status == .created)
            #expect(
                try await client.execute(uri: "/api/\(queue)/batch", method: .post, headers: Self.traceHeaders, body: ByteBuffer(string: "[2]")).status
                    == .created)
            let received = try await client.execute(uri: "/api/\(queue)/batch?timeout=0&max=10", method: .get)
            #expect(received.status == .ok && !received.text.contains("traceparent"))
        }
    }

    /// A batch POST's context goes with each of its messages, a delayed message keeps it, and a
    /// malformed `traceparent` is ignored (the W3C rule), not refused.
    @Test(arguments: BackendKind.available)
    func batchesDelayedMessagesAndMalformedContexts(kind: BackendKind) async throws {
        let app = try makeApplication(kind)
        try await app.test(.router) { client async throws in
            let queue = TestEnvironment.uniqueName("trace-batch")
            let batch = try await client.execute(
                uri: "/api/\(queue)/batch", method: .post, headers: Self.traceHeaders, body: ByteBuffer(string: "[1,2,3]"))
            #expect(batch.status == .created)
            for malformed in ["00-\(Self.traceID)-0000000000000000-01", "00-\(Self.traceID.uppercased())-\(Self.producerSpanID)-01", "ff-x", ""] {
                let posted = try await client.execute(
                    uri: "/api/\(queue)", method: .post, headers: [HTTPField.Name("traceparent")!: malformed], body: ByteBuffer(string: "4"))
                #expect(posted.status == .created, "\(malformed)")
            }
            let received = try await client.execute(uri: "/api/\(queue)/batch?timeout=0&max=10", method: .get)
            let messages = try #require(try JSONSerialization.jsonObject(with: Data(received.text.utf8)) as? [[String: Any]])
            #expect(messages.count == 7)
            #expect(messages.prefix(3).allSatisfy { $0["traceparent"] as? String == Self.traceparent && $0["tracestate"] as? String == Self.tracestate })
            #expect(messages.dropFirst(3).allSatisfy { $0["traceparent"] == nil && $0["tracestate"] == nil })

            let delayed = try await client.execute(
                uri: "/api/\(queue)?delay=200", method: .post, headers: [HTTPField.Name("traceparent")!: Self.traceparent], body: ByteBuffer(string: "5"))
            #expect(delayed.status == .created)
            let due = try await client.execute(uri: "/api/\(queue)?timeout=5000", method: .get)
            #expect(due.text == "5")
            #expect(due.headers[HTTPField.Name("traceparent")!] == Self.traceparent)
            #expect(due.headers[HTTPField.Name("tracestate")!] == nil)
        }
    }

    /// A traces protocol this build lacks (gRPC) turns tracing off with an error, where swift-otel
    /// would stop the process.
    @Test func aGRPCTracesProtocolIsRefused() throws {
        let settings = TracingSettings(tracesEndpoint: "http://127.0.0.1:4318/v1/traces")
        #expect(throws: TracingConfigurationError.self) {
            try TracingBackend(settings, replicaID: "r", logger: Logger(label: "test"), environment: ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"])
        }
        _ = try TracingBackend(settings, replicaID: "r", logger: Logger(label: "test"), environment: ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"])
    }

    // MARK: Tracing on: the exported spans

    /// With an OTLP endpoint set, the replica exports a server span per request, `send {queue}`
    /// under the producer's span, `receive {queue}` linked to that send span (the link that joins
    /// the consumer's trace to the producer's), `settle {queue}` for an ack, and with Redis a client
    /// span per script under them. The message carries the send span's context.
    @Test(arguments: BackendKind.available)
    func exportedSpansLinkTheConsumerToTheProducer(kind: BackendKind) async throws {
        let collector = OTLPCollector()
        try await collector.run { endpoint in
            let app = try makeApplication(kind) {
                $0.tracing = TracingSettings(tracesEndpoint: endpoint, usesJSON: true, exportDelay: .milliseconds(50))
                $0.fastPath = true
            }
            try await app.test(.live) { client async throws in
                let queue = TestEnvironment.uniqueName("traced")
                let posted = try await client.execute(uri: "/api/\(queue)", method: .post, headers: Self.traceHeaders, body: ByteBuffer(string: #"{"n":1}"#))
                #expect(posted.status == .created)
                let id = try #require(try JSONSerialization.jsonObject(with: Data(posted.text.utf8)) as? [String: Any])["id"] as? String
                let received = try await client.execute(uri: "/api/\(queue)?timeout=0&visibility=5000", method: .get)
                #expect(received.status == .ok)
                let carried = try #require(received.headers[HTTPField.Name("traceparent")!])
                // The producer's trace, the send span's id.
                #expect(carried.hasPrefix("00-\(Self.traceID)-") && !carried.contains(Self.producerSpanID))
                // As the W3C propagator writes it back (its list separator is ", ").
                #expect(received.headers[HTTPField.Name("tracestate")!]?.replacingOccurrences(of: " ", with: "") == Self.tracestate)
                let receipt = try #require(received.headers[HTTPField.Name("Skiff-Receipt")!])
                #expect(try await client.execute(uri: "/api/\(queue)/messages/\(receipt)", method: .delete).status == .noContent)
                // Plain ones, which the fast path would serve: with tracing on the routes do.
                let plain = TestEnvironment.uniqueName("traced-plain")
                #expect(try await client.execute(uri: "/api/\(plain)", method: .post, body: ByteBuffer(string: "1")).status == .created)
                #expect(try await client.execute(uri: "/api/\(plain)?timeout=0", method: .get).status == .ok)
                // A batch: one send span, whose context every message keeps.
                let batch = TestEnvironment.uniqueName("traced-batch")
                let sentBatch = try await client.execute(
                    uri: "/api/\(batch)/batch", method: .post, headers: Self.traceHeaders, body: ByteBuffer(string: "[1,2,3]"))
                #expect(sentBatch.status == .created)
                let receivedBatch = try await client.execute(uri: "/api/\(batch)/batch?timeout=0&max=10", method: .get)
                let items = try #require(try JSONSerialization.jsonObject(with: Data(receivedBatch.text.utf8)) as? [[String: Any]])
                let contexts = Set(items.compactMap { $0["traceparent"] as? String })
                #expect(items.count == 3 && contexts.count == 1)

                let spans = try await eventually(until: { (spans: [ExportedSpan]) in
                    spans.contains { $0.name == "send \(queue)" } && spans.contains { $0.name == "receive \(queue)" }
                        && spans.contains { $0.name == "settle \(queue)" } && spans.contains { $0.name == "send \(batch)" }
                        && spans.contains { $0.name == "GET /api/{queue}" && $0.attributes["url.path"] == "/api/\(plain)" }
                }) { collector.spans }
                let server = try #require(spans.first { $0.name == "POST /api/{queue}" && $0.traceID == Self.traceID })
                #expect(server.parentSpanID == Self.producerSpanID && server.kind == 2)
                #expect(server.attributes["http.response.status_code"] == "201")
                let send = try #require(spans.first { $0.name == "send \(queue)" })
                #expect(send.traceID == Self.traceID && send.parentSpanID == server.spanID && send.kind == 4)
                #expect(send.attributes["messaging.system"] == "skiff" && send.attributes["messaging.destination.name"] == queue)
                #expect(send.attributes["messaging.operation.type"] == "send" && send.attributes["messaging.message.id"] == id)
                #expect(send.attributes["messaging.message.body.size"] == "7")
                #expect(carried == "00-\(Self.traceID)-\(send.spanID)-01")

                let receive = try #require(spans.first { $0.name == "receive \(queue)" })
                #expect(receive.kind == 5 && receive.attributes["messaging.operation.type"] == "receive")
                #expect(receive.attributes["messaging.message.id"] == id)
                // The link: the consumer's span points at the producer's send span.
                #expect(receive.links.contains { $0.traceID == Self.traceID && $0.spanID == send.spanID })
                // The plain POST and GET went through the routes, not the fast path: they have server spans.
                for method in ["POST", "GET"] {
                    #expect(spans.contains { $0.name == "\(method) /api/{queue}" && $0.kind == 2 && $0.attributes["url.path"] == "/api/\(plain)" })
                }
                let batchSend = try #require(spans.first { $0.name == "send \(batch)" })
                #expect(batchSend.attributes["messaging.batch.message_count"] == "3")
                #expect(contexts.first == "00-\(Self.traceID)-\(batchSend.spanID)-01")
                let settle = try #require(spans.first { $0.name == "settle \(queue)" })
                #expect(settle.attributes["messaging.operation.name"] == "ack" && settle.attributes["messaging.operation.type"] == "settle")
                if kind.isRedis {
                    let scripts = spans.filter { $0.attributes["db.system.name"] == "redis" }
                    #expect(
                        scripts.contains { $0.parentSpanID == send.spanID && $0.name.hasSuffix("enqueue") },
                        "\(scripts.map { ($0.name, $0.parentSpanID) }) \(send.spanID)")
                    #expect(scripts.allSatisfy { $0.kind == 3 })
                }
            }
        }
    }
}

/// A span as the test's OTLP endpoint received it.
struct ExportedSpan: Sendable {
    var name: String
    var traceID: String
    var spanID: String
    var parentSpanID: String
    var kind: Int
    var attributes: [String: String]
    var links: [(traceID: String, spanID: String)]
}

/// An OTLP/HTTP endpoint (JSON encoding) on a loopback port that keeps every span it receives.
final class OTLPCollector: Sendable {
    private let received = Mutex<[ExportedSpan]>([])

    var spans: [ExportedSpan] { received.withLock { $0 } }

    func run(_ body: @Sendable (String) async throws -> Void) async throws {
        let router = Router()
        router.post("/v1/traces") { request, _ -> Response in
            let bytes = try await request.body.collect(upTo: 16 << 20)
            let spans = try Self.parse(Data(buffer: bytes))
            self.received.withLock { $0.append(contentsOf: spans) }
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: "{}")))
        }
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { client in
            try await body("http://127.0.0.1:\(try #require(client.port))/v1/traces")
        }
    }

    /// `resourceSpans[].scopeSpans[].spans[]` of an OTLP/JSON export request.
    static func parse(_ data: Data) throws -> [ExportedSpan] {
        let document = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        var spans: [ExportedSpan] = []
        for resource in document["resourceSpans"] as? [[String: Any]] ?? [] {
            for scope in resource["scopeSpans"] as? [[String: Any]] ?? [] {
                for span in scope["spans"] as? [[String: Any]] ?? [] {
                    var attributes: [String: String] = [:]
                    for attribute in span["attributes"] as? [[String: Any]] ?? [] {
                        guard let key = attribute["key"] as? String, let value = attribute["value"] as? [String: Any], let first = value.values.first
                        else { continue }
                        attributes[key] = "\(first)"
                    }
                    let links = (span["links"] as? [[String: Any]] ?? []).map { link in
                        (traceID: hex(link["traceId"]), spanID: hex(link["spanId"]))
                    }
                    spans.append(
                        ExportedSpan(
                            name: span["name"] as? String ?? "",
                            traceID: hex(span["traceId"]),
                            spanID: hex(span["spanId"]),
                            parentSpanID: hex(span["parentSpanId"]),
                            kind: kind(span["kind"]),
                            attributes: attributes,
                            links: links
                        ))
                }
            }
        }
        return spans
    }

    /// OTLP/JSON writes ids as hex; a protobuf JSON mapping would write base64: either is read.
    static func hex(_ value: Any?) -> String {
        guard let text = value as? String, !text.isEmpty else { return "" }
        if text.count == 32 || text.count == 16, text.allSatisfy(\.isHexDigit) { return text.lowercased() }
        guard let bytes = Data(base64Encoded: text) else { return text }
        return bytes.map { String(format: "%02x", $0) }.joined()
    }

    /// The span kind as a number (OTLP/JSON may write the enum's name).
    static func kind(_ value: Any?) -> Int {
        if let number = value as? Int { return number }
        let names = ["SPAN_KIND_UNSPECIFIED", "SPAN_KIND_INTERNAL", "SPAN_KIND_SERVER", "SPAN_KIND_CLIENT", "SPAN_KIND_PRODUCER", "SPAN_KIND_CONSUMER"]
        return (value as? String).flatMap { names.firstIndex(of: $0) } ?? -1
    }
}
