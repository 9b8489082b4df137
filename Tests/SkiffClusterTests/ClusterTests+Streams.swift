import Foundation
import SkiffTestSupport
import Testing

/// WebSocket streams through the local cluster's HAProxy and across its replicas (issue 19).
extension ClusterTests {
    /// A stream opened through the proxy receives what was posted on every replica, in order
    /// per producer, and its acks settle them all.
    @Test func aStreamThroughTheProxyGetsWhatEveryReplicaWasSent() async throws {
        let queue = TestEnvironment.uniqueName("cluster-stream")
        let socket = try await RawWebSocket.connect(port: Cluster.proxy.port, path: "/api/\(queue)/stream?credit=100")
        #expect(socket.status == 101)
        for (index, replica) in Cluster.replicas.enumerated() {
            for sequence in 0..<10 { #expect(try await replica.post(queue, #""\#(index)-\#(sequence)""#).status == .created) }
        }
        var received: [String] = []
        while received.count < 10 * Cluster.replicas.count, let frame = try await socket.nextJSON(timeout: .seconds(20)) {
            guard frame["op"] as? String == "message", let body = frame["body"] as? String, let receipt = frame["receipt"] as? String else { continue }
            received.append(body)
            try await socket.sendText(#"{"op":"ack","receipt":"\#(receipt)"}"#)
        }
        #expect(Set(received).count == 10 * Cluster.replicas.count)
        for index in Cluster.replicas.indices {
            let mine = received.filter { $0.hasPrefix("\(index)-") }
            #expect(mine == (0..<10).map { "\(index)-\($0)" })
        }
        try await eventually { try await Cluster.proxy.request(.get, "/api/\(queue)/stats").text.contains(#""ready":0,"inFlight":0"#) }
        await socket.abort()
    }

    /// A replica killed with -9 under a stream cannot release what the stream held: those
    /// messages come back when their visibility timeout ends, to a consumer on another replica.
    @Test func aReplicaKilledUnderAStreamLosesNothing() async throws {
        let queue = TestEnvironment.uniqueName("cluster-stream-kill")
        for index in 0..<3 { #expect(try await Cluster.proxy.post(queue, "\(index)").status == .created) }
        let socket = try await RawWebSocket.connect(port: Cluster.replicas[1].port, path: "/api/\(queue)/stream?credit=3&visibility=2000")
        var held = 0
        while held < 3, let frame = try await socket.nextJSON(timeout: .seconds(20)) {
            if frame["op"] as? String == "message" { held += 1 }
        }
        #expect(held == 3)
        try Cluster.control("kill", "2")
        defer { try? Cluster.control("start", "2") }
        var back: [String] = []
        for _ in 0..<3 {
            let response = try await Cluster.replicas[2].request(.get, "/api/\(queue)?timeout=15000")
            #expect(response.status == .ok)
            #expect(response.headers[.init("Skiff-Receive-Count")!] == "2")
            back.append(response.text)
        }
        #expect(back == ["0", "1", "2"])
        await socket.abort()
    }
}
