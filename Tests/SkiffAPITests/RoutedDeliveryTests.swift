import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import ServiceLifecycle
import SkiffQueue
import SkiffTestSupport
import Synchronization
import Testing

@testable import SkiffAPI

/// The routed GET (any GET the fast path does not take) settles a delivery only once its bytes
/// are in the socket, batch replies are bounded in bytes, and shutdown waits for settlements.
@Suite("Routed delivery", .timeLimit(.minutes(2)))
struct RoutedDeliveryTests {
    /// A client that stops reading holds a large response in the server's buffers: until the
    /// bytes are written, the message is not deleted, and when the client resets the connection
    /// it comes back at once, with its receive taken back. (It was deleted as soon as the body
    /// was queued for writing: lost to a reset or a kill in between.)
    @Test(arguments: BackendKind.available)
    func aRoutedDeliveryIsDeletedOnlyOnceItsBytesAreWritten(kind: BackendKind) async throws {
        let bodyBytes = 16 << 20
        let app = try makeApplication(kind) { $0.api.maximumMessageBytes = 32 << 20 }
        try await app.test(.live) { client in
            let port = try #require(client.port)
            let probe = Probe(port: port)
            let queue = TestEnvironment.uniqueName("unread")
            let body = "\"" + String(repeating: "x", count: bodyBytes - 2) + "\""
            #expect(try await probe.post(queue, body).status == .created)

            // `Connection: close` keeps the request off the fast path.
            let socket = try #require(StalledReader.connect(port: port))
            StalledReader.send(socket, "GET /api/\(queue)?timeout=0 HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
            let held = try await eventually(until: { $0.inFlight == 1 }) { try await stats(probe, queue) }
            #expect(held.inFlight == 1 && held.ready == 0)
            // The response cannot be written (the client reads nothing): still in flight, not deleted.
            try await Task.sleep(for: .milliseconds(300))
            #expect(try await stats(probe, queue).inFlight == 1)

            StalledReader.reset(socket)
            let back = try await eventually(until: { $0.ready == 1 }) { try await stats(probe, queue) }
            #expect(back.inFlight == 0)
            let again = try await probe.get(queue, timeout: 0)
            #expect(again.status == .ok, "\(again.status): \(again.text.prefix(300))")
            #expect(again.headers[.init("Skiff-Receive-Count")!] == "1")
            #expect(again.body?.readableBytes == bodyBytes)
        }
    }

    /// A batch receive stops at MAX_BATCH_BYTES, says so, and leaves the rest at the head of the
    /// queue untouched; a batch POST over it is refused whole.
    @Test(arguments: BackendKind.available)
    func batchesAreBoundedInBytesBothWays(kind: BackendKind) async throws {
        try await makeApplication(kind, configure: { $0.api.maximumBatchBytes = 4096 }).test(.router) { client in
            let queue = TestEnvironment.uniqueName("batchbytes")
            let payload = String(repeating: "y", count: 998)
            for index in 0..<10 {
                let sent = try await client.execute(uri: "/api/\(queue)", method: .post, body: ByteBuffer(string: #""\#(index)\#(payload)""#))
                #expect(sent.status == .created)
            }
            let first = try await client.execute(uri: "/api/\(queue)/batch?max=10&timeout=0", method: .get)
            #expect(first.status == .ok)
            #expect(first.headers[.init("Skiff-Batch-Truncated")!] == "bytes")
            #expect(first.body.readableBytes <= 4096)
            let firstCount = first.text.components(separatedBy: #""receiveCount":"#).count - 1
            #expect((1...3).contains(firstCount))
            // The rest is next in line, never received.
            let rest = try await client.execute(uri: "/api/\(queue)?timeout=0", method: .get)
            #expect(rest.text.hasPrefix(#""\#(firstCount)y"#))
            #expect(rest.headers[.init("Skiff-Receive-Count")!] == "1")

            let tooLarge = try await client.execute(
                uri: "/api/\(queue)/batch", method: .post,
                body: ByteBuffer(string: "[" + Array(repeating: #""\#(payload)""#, count: 5).joined(separator: ",") + "]"))
            #expect(tooLarge.status == .contentTooLarge)
            #expect(tooLarge.text.contains("MAX_BATCH_BYTES"))
            let stats = try await client.execute(uri: "/api/\(queue)/stats", method: .get)
            #expect(stats.text.contains(#""ready":\#(10 - firstCount - 1)"#))
        }
    }

    /// Graceful shutdown waits for settlements still running before storage closes, up to its
    /// drain timeout.
    @Test func shutdownWaitsForSettlementsUpToItsDeadline() async throws {
        let logger = Logger(label: "settlements")
        let tasks = SettlementTasks(drainTimeout: .seconds(60), logger: logger)
        let (gate, open) = AsyncStream<Void>.makeStream()
        let settled = Atomic<Bool>(false)
        tasks.run(on: nil) {
            for await _ in gate {}
            settled.store(true, ordering: .releasing)
        }
        let group = ServiceGroup(configuration: .init(services: [tasks], logger: logger))
        let stopped = Atomic<Bool>(false)
        let running = Task {
            try await group.run()
            stopped.store(true, ordering: .releasing)
        }
        await group.triggerGracefulShutdown()
        try await Task.sleep(for: .milliseconds(200))
        let stoppedEarly = stopped.load(ordering: .acquiring)
        #expect(!stoppedEarly, "shutdown went on while a settlement was running")
        open.finish()
        try await running.value
        let didSettle = settled.load(ordering: .acquiring)
        #expect(didSettle)

        // One that never ends is abandoned at the deadline.
        let bounded = SettlementTasks(drainTimeout: .milliseconds(100), logger: logger)
        let (never, _) = AsyncStream<Void>.makeStream()
        bounded.run(on: nil) { for await _ in never {} }
        let boundedGroup = ServiceGroup(configuration: .init(services: [bounded], logger: logger))
        let boundedRun = Task { try await boundedGroup.run() }
        await boundedGroup.triggerGracefulShutdown()
        try await boundedRun.value
        #expect(bounded.running == 1)
    }
}

private struct QueueFigures: Sendable {
    var ready: Int
    var inFlight: Int
}

private func stats(_ probe: Probe, _ queue: String) async throws -> QueueFigures {
    let response = try await probe.request(.get, "/api/\(queue)/stats")
    let document = try #require(try JSONSerialization.jsonObject(with: Data(response.text.utf8)) as? [String: Any])
    return QueueFigures(ready: try #require(document["ready"] as? Int), inFlight: try #require(document["inFlight"] as? Int))
}

/// A client socket with a tiny receive buffer that never reads, then resets.
private enum StalledReader {
    static func connect(port: Int) -> Int32? {
        LoopbackSocket.connect(port: port, receiveBufferBytes: 4096)
    }

    static func send(_ fd: Int32, _ text: String) {
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { Foundation.send(fd, $0.baseAddress, $0.count, 0) }
    }

    /// Closes with an RST (SO_LINGER 0), as a killed client or a proxy's abort does.
    static func reset(_ fd: Int32) {
        var linger = Foundation.linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Foundation.linger>.size))
        close(fd)
    }
}
