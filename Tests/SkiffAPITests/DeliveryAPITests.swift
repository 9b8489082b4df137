import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import SkiffAPI
import SkiffTestSupport
import Testing

/// The HTTP shapes of acknowledged delivery, batches and queue management, over every backend.
/// The semantics behind them are proven per backend in SkiffQueueTests.
@Suite("Delivery API", .timeLimit(.minutes(2)))
struct DeliveryAPITests {
    /// A partitioned queue over HTTP (live, so the fast path serves the plain POST and GET):
    /// the count in the settings, receipts that name their partition, figures summed, and a
    /// smaller count refused with 409 while a PUT without the field keeps it.
    @Test(arguments: BackendKind.available)
    func aPartitionedQueueOverHTTP(kind: BackendKind) async throws {
        try await makeApplication(kind).test(.live) { client in
            let queue = TestEnvironment.uniqueName("parts")
            let put = try await client.execute(uri: "/api/\(queue)/config", method: .put, body: ByteBuffer(string: #"{"partitions": 3}"#))
            #expect(put.status == .ok)
            #expect(put.text.contains(#""partitions":3"#))
            for index in 0..<6 {
                #expect(try await client.execute(uri: "/api/\(queue)", method: .post, body: ByteBuffer(string: "\(index)")).status == .created)
            }
            var receipts: [String] = []
            for _ in 0..<3 {
                let response = try await client.execute(uri: "/api/\(queue)?timeout=0&visibility=60000", method: .get)
                #expect(response.status == .ok)
                receipts.append(try #require(response.headers[.init("Skiff-Receipt")!]))
            }
            #expect(receipts.filter { $0.contains("~") }.count == 2)
            for receipt in receipts {
                #expect(try await client.execute(uri: "/api/\(queue)/messages/\(receipt)", method: .delete).status == .noContent)
                #expect(try await client.execute(uri: "/api/\(queue)/messages/\(receipt)", method: .delete).status == .notFound)
            }
            let batch = try await client.execute(uri: "/api/\(queue)/batch?max=10&timeout=0", method: .get)
            #expect(batch.status == .ok)
            let plain = try await client.execute(uri: "/api/\(queue)?timeout=0", method: .get)
            #expect(plain.status == .ok)
            let stats = try await client.execute(uri: "/api/\(queue)/stats", method: .get)
            #expect(stats.text.contains(#""enqueued":6"#), "\(stats.text)")

            let shrink = try await client.execute(uri: "/api/\(queue)/config", method: .put, body: ByteBuffer(string: #"{"partitions": 2}"#))
            #expect(shrink.status == .conflict)
            #expect(shrink.text.contains("can only grow"))
            let keep = try await client.execute(uri: "/api/\(queue)/config", method: .put, body: ByteBuffer(string: #"{"retentionMs": 120000}"#))
            #expect(keep.status == .ok)
            #expect(keep.text.contains(#""partitions":3"#))
            for bad in [#"{"partitions": 0}"#, #"{"partitions": 65}"#, #"{"partitions": 1.5}"#, #"{"partitions": "3"}"#] {
                let response = try await client.execute(uri: "/api/\(queue)/config", method: .put, body: ByteBuffer(string: bad))
                #expect(response.status == .badRequest, "\(bad)")
                #expect(response.text.contains("partitions"), "\(bad): \(response.text)")
            }
            let list = try await client.execute(uri: "/queues", method: .get)
            #expect(list.text.contains(#""\#(queue)""#) && !list.text.contains("\(queue)~"))
        }
    }

    @Test(arguments: BackendKind.available)
    func acknowledgedReceiveAckAndStaleReceipt(kind: BackendKind) async throws {
        try await makeApplication(kind).test(.router) { client in
            let queue = TestEnvironment.uniqueName("ack")
            #expect(try await client.execute(uri: "/api/\(queue)", method: .post, body: ByteBuffer(string: #"{"job":1}"#)).status == .created)
            let first = try await client.execute(uri: "/api/\(queue)?timeout=0&visibility=60000", method: .get)
            #expect(first.status == .ok)
            #expect(first.text == #"{"job":1}"#)
            let receipt = try #require(first.headers[.init("Skiff-Receipt")!])
            #expect(first.headers[.init("Skiff-Receive-Count")!] == "1")
            // Invisible while its visibility lasts.
            #expect(try await client.execute(uri: "/api/\(queue)?timeout=0", method: .get).status == .noContent)
            #expect(try await client.execute(uri: "/api/\(queue)/messages/\(receipt)", method: .delete).status == .noContent)
            let again = try await client.execute(uri: "/api/\(queue)/messages/\(receipt)", method: .delete)
            #expect(again.status == .notFound)
            #expect(again.text.contains("stale"))
            #expect(try await client.execute(uri: "/api/\(queue)/messages/not-a-receipt", method: .delete).status == .notFound)
        }
    }

    @Test(arguments: BackendKind.available)
    func aReceiptFromAnEarlierDeliveryCannotTouchTheNextOne(kind: BackendKind) async throws {
        try await makeApplication(kind).test(.router) { client in
            let queue = TestEnvironment.uniqueName("stale")
            _ = try await client.execute(uri: "/api/\(queue)", method: .post, body: ByteBuffer(string: "1"))
            let first = try await client.execute(uri: "/api/\(queue)?timeout=0&visibility=60000", method: .get)
            let old = try #require(first.headers[.init("Skiff-Receipt")!])
            // Made visible at once, then received again: a new receipt.
            #expect(try await client.execute(uri: "/api/\(queue)/messages/\(old)/visibility?timeout=0", method: .post).status == .noContent)
            let second = try await client.execute(uri: "/api/\(queue)?timeout=0&visibility=60000", method: .get)
            #expect(second.status == .ok)
            #expect(second.headers[.init("Skiff-Receive-Count")!] == "2")
            let current = try #require(second.headers[.init("Skiff-Receipt")!])
            #expect(current != old)
            #expect(try await client.execute(uri: "/api/\(queue)/messages/\(old)", method: .delete).status == .notFound)
            #expect(try await client.execute(uri: "/api/\(queue)/messages/\(old)/nack", method: .post).status == .notFound)
            #expect(try await client.execute(uri: "/api/\(queue)/messages/\(old)/visibility?timeout=5", method: .post).status == .notFound)
            #expect(try await client.execute(uri: "/api/\(queue)/messages/\(current)", method: .delete).status == .noContent)
        }
    }

    @Test(arguments: BackendKind.available)
    func nackWithReasonDeadLettersAfterMaxReceivesAndRedriveBringsItBack(kind: BackendKind) async throws {
        try await makeApplication(kind).test(.router) { client in
            let queue = TestEnvironment.uniqueName("dlq")
            let config = try await client.execute(
                uri: "/api/\(queue)/config",
                method: .put,
                body: ByteBuffer(string: #"{"maxReceiveCount": 2, "retryBackoff": {"baseMs": 0, "capMs": 0}}"#)
            )
            #expect(config.status == .ok)
            #expect(config.text.contains(#""deadLetterQueue":"\#(queue)-dlq""#))
            _ = try await client.execute(uri: "/api/\(queue)", method: .post, body: ByteBuffer(string: #""poison""#))
            for attempt in 1...2 {
                let response = try await client.execute(uri: "/api/\(queue)?timeout=0&visibility=60000", method: .get)
                #expect(response.headers[.init("Skiff-Receive-Count")!] == "\(attempt)")
                let receipt = try #require(response.headers[.init("Skiff-Receipt")!])
                let nack = try await client.execute(
                    uri: "/api/\(queue)/messages/\(receipt)/nack",
                    method: .post,
                    body: ByteBuffer(string: #"{"reason": "failure \#(attempt)"}"#)
                )
                #expect(nack.status == .noContent)
            }
            #expect(try await client.execute(uri: "/api/\(queue)?timeout=0", method: .get).status == .noContent)
            let dead = try await client.execute(uri: "/api/\(queue)-dlq?timeout=0&visibility=1000", method: .get)
            #expect(dead.status == .ok)
            #expect(dead.text == #""poison""#)
            #expect(dead.headers[.init("Skiff-Dead-Letter-Source")!] == queue)
            #expect(dead.headers[.init("Skiff-Dead-Letter-Receive-Count")!] == "2")
            #expect(dead.headers[.init("Skiff-Last-Error")!] == "failure 2")
            // Back into the dead-letter queue's ready list, then redriven.
            let receipt = try #require(dead.headers[.init("Skiff-Receipt")!])
            #expect(try await client.execute(uri: "/api/\(queue)-dlq/messages/\(receipt)/visibility?timeout=0", method: .post).status == .noContent)
            let redrive = try await client.execute(uri: "/api/\(queue)/redrive", method: .post)
            #expect(redrive.status == .ok)
            #expect(redrive.text == #"{"moved":1}"#)
            let back = try await client.execute(uri: "/api/\(queue)?timeout=0", method: .get)
            #expect(back.text == #""poison""#)
            #expect(back.headers[.init("Skiff-Receive-Count")!] == "1")
            let stats = try await client.execute(uri: "/api/\(queue)/stats", method: .get)
            #expect(stats.text.contains(#""deadLettered":1"#))
            #expect(stats.text.contains(#""retried":1"#))
        }
    }

    @Test(arguments: BackendKind.available)
    func badSettingsAreRefusedNamingTheField(kind: BackendKind) async throws {
        try await makeApplication(kind).test(.router) { client in
            let queue = TestEnvironment.uniqueName("config")
            let cases: [(String, String)] = [
                (#"{"visibilityTimeoutMs": 0}"#, "visibilityTimeoutMs"),
                (#"{"visibilityTimeoutMs": 99}"#, "visibilityTimeoutMs"),
                (#"{"visibilityTimeoutMs": 43200001}"#, "visibilityTimeoutMs"),
                (#"{"maxReceiveCount": "3"}"#, "maxReceiveCount"),
                (#"{"retentionMs": 1209600001}"#, "retentionMs"),
                (#"{"retryBackoff": {"baseMs": 10, "capMs": 5}}"#, "retryBackoff.capMs"),
                (#"{"retryBackoff": {"baseMs": 1.5}}"#, "retryBackoff.baseMs"),
                (#"{"deadLetterQueue": "a:b"}"#, "deadLetterQueue"),
                (#"{"deadLetterQueue": "\#(queue)"}"#, "deadLetterQueue"),
                (#"{"delayMs": -1}"#, "delayMs"),
                (#"{"maxDepth": true}"#, "maxDepth"),
                (#"{"dedupWindowMs": 0}"#, "dedupWindowMs"),
                (#"{"colour": "blue"}"#, "colour"),
                (#"[1]"#, "JSON object"),
            ]
            for (body, field) in cases {
                let response = try await client.execute(uri: "/api/\(queue)/config", method: .put, body: ByteBuffer(string: body))
                #expect(response.status == .badRequest, "\(body)")
                #expect(response.text.contains(field), "\(body) → \(response.text)")
            }
            // Nothing was stored by the refusals.
            let current = try await client.execute(uri: "/api/\(queue)/config", method: .get)
            #expect(current.text.contains(#""visibilityTimeoutMs":30000"#))
        }
    }

    @Test(arguments: BackendKind.available)
    func idempotencyKeyAnswersTheOriginal(kind: BackendKind) async throws {
        try await makeApplication(kind).test(.router) { client in
            let queue = TestEnvironment.uniqueName("dedup")
            let headers: HTTPFields = [.init("Idempotency-Key")!: "order-17"]
            let first = try await client.execute(uri: "/api/\(queue)", method: .post, headers: headers, body: ByteBuffer(string: "1"))
            #expect(first.status == .created)
            let repeated = try await client.execute(uri: "/api/\(queue)", method: .post, headers: headers, body: ByteBuffer(string: "2"))
            #expect(repeated.status == .ok)
            #expect(repeated.headers[.init("Skiff-Duplicate")!] == "true")
            #expect(repeated.text == first.text)
            #expect(try await client.execute(uri: "/api/\(queue)?timeout=0", method: .get).text == "1")
            #expect(try await client.execute(uri: "/api/\(queue)?timeout=0", method: .get).status == .noContent)
        }
    }

    @Test(arguments: BackendKind.available)
    func priorityDelayAndMaxDepth(kind: BackendKind) async throws {
        try await makeApplication(kind).test(.router) { client in
            let queue = TestEnvironment.uniqueName("prio")
            for (body, priority) in [("low", 0), ("high", 9), ("mid", 5), ("high2", 9)] {
                _ = try await client.execute(uri: "/api/\(queue)?priority=\(priority)", method: .post, body: ByteBuffer(string: #""\#(body)""#))
            }
            var order: [String] = []
            for _ in 0..<4 { order.append(try await client.execute(uri: "/api/\(queue)?timeout=0", method: .get).text) }
            #expect(order == [#""high""#, #""high2""#, #""mid""#, #""low""#])
            #expect(try await client.execute(uri: "/api/\(queue)?priority=10", method: .post, body: ByteBuffer(string: "1")).status == .badRequest)
            #expect(try await client.execute(uri: "/api/\(queue)?delay=-5", method: .post, body: ByteBuffer(string: "1")).status == .badRequest)

            let full = TestEnvironment.uniqueName("full")
            _ = try await client.execute(uri: "/api/\(full)/config", method: .put, body: ByteBuffer(string: #"{"maxDepth": 2}"#))
            #expect(try await client.execute(uri: "/api/\(full)/batch", method: .post, body: ByteBuffer(string: "[1,2,3]")).status == .tooManyRequests)
            #expect(try await client.execute(uri: "/api/\(full)", method: .post, body: ByteBuffer(string: "1")).status == .created)
            #expect(try await client.execute(uri: "/api/\(full)?delay=60000", method: .post, body: ByteBuffer(string: "2")).status == .created)
            let refused = try await client.execute(uri: "/api/\(full)", method: .post, body: ByteBuffer(string: "3"))
            #expect(refused.status == .tooManyRequests)
            #expect(refused.headers[.retryAfter] != nil)
            let stats = try await client.execute(uri: "/api/\(full)/stats", method: .get)
            #expect(stats.text.contains(#""ready":1,"inFlight":0,"delayed":1"#))
        }
    }

    @Test(arguments: BackendKind.available)
    func batchesGoInAndOutInOrder(kind: BackendKind) async throws {
        try await makeApplication(kind).test(.router) { client in
            let queue = TestEnvironment.uniqueName("batch")
            let sent = try await client.execute(uri: "/api/\(queue)/batch", method: .post, body: ByteBuffer(string: #"[1, {"a": "x,]"}, "s"]"#))
            #expect(sent.status == .created)
            let ids = try #require(try JSONSerialization.jsonObject(with: Data(sent.text.utf8)) as? [String: Any])["ids"] as? [String]
            #expect(ids?.count == 3)
            let ndjson = try await client.execute(
                uri: "/api/\(queue)/batch",
                method: .post,
                headers: [.contentType: "application/x-ndjson"],
                body: ByteBuffer(string: "4\n\n[5]\n")
            )
            #expect(ndjson.status == .created)
            let bad = try await client.execute(uri: "/api/\(queue)/batch", method: .post, body: ByteBuffer(string: "[1, {nope}, 3]"))
            #expect(bad.status == .badRequest)
            #expect(bad.text.contains("message 1"))
            #expect(try await client.execute(uri: "/api/\(queue)/batch", method: .post, body: ByteBuffer(string: "[]")).status == .badRequest)

            let received = try await client.execute(uri: "/api/\(queue)/batch?max=10&timeout=0&visibility=60000", method: .get)
            #expect(received.status == .ok)
            let items = try #require(try JSONSerialization.jsonObject(with: Data(received.text.utf8)) as? [[String: Any]])
            #expect(items.count == 5)
            #expect(items.map { $0["id"] as? String }.prefix(3).elementsEqual(ids ?? []))
            #expect(received.text.contains(#""body":{"a": "x,]"}"#))
            let receipts = items.compactMap { $0["receipt"] as? String }
            #expect(receipts.count == 5)
            let ackBody = #"{"receipts": [\#((receipts + ["nope.1"]).map { "\"\($0)\"" }.joined(separator: ","))]}"#
            let acked = try await client.execute(uri: "/api/\(queue)/ack", method: .post, body: ByteBuffer(string: ackBody))
            #expect(acked.status == .ok)
            #expect(acked.text == #"{"acked":5,"notFound":["nope.1"]}"#)
            #expect(try await client.execute(uri: "/api/\(queue)/batch?timeout=0", method: .get).status == .noContent)
        }
    }

    @Test(arguments: BackendKind.available)
    func purgeDeleteAndList(kind: BackendKind) async throws {
        try await makeApplication(kind).test(.router) { client in
            let queue = TestEnvironment.uniqueName("admin")
            _ = try await client.execute(uri: "/api/\(queue)/batch", method: .post, body: ByteBuffer(string: "[1,2,3]"))
            #expect(try await client.execute(uri: "/queues", method: .get).text.contains(#"{"name":"\#(queue)","ready":3"#))
            #expect(try await client.execute(uri: "/api/\(queue)/purge", method: .post).text == #"{"purged":3}"#)
            #expect(try await client.execute(uri: "/api/\(queue)?timeout=0", method: .get).status == .noContent)
            #expect(try await client.execute(uri: "/api/\(queue)", method: .delete).status == .noContent)
            #expect(try await client.execute(uri: "/api/\(queue)", method: .delete).status == .notFound)
            #expect(!(try await client.execute(uri: "/queues", method: .get).text.contains(queue)))
            let stats = try await client.execute(uri: "/api/\(queue)/stats", method: .get)
            #expect(stats.text.contains(#""enqueued":0"#))
        }
    }
}
