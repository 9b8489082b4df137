import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import SkiffAPI
import SkiffTestSupport
import Testing

/// Every resource a client can make a replica hold is bounded, on the fast path and the routes
/// alike: connections (503), the time to send a request head (408: slowloris), idle time between
/// requests, queues (409).
@Suite("Connection limits", .timeLimit(.minutes(2)))
struct ConnectionLimitTests {
    @Test(arguments: [true, false])
    func aSlowHeadIsAnswered408AndClosedWhileALongPollIsNotCut(fastPath: Bool) async throws {
        let app = try makeApplication(.memory) {
            $0.fastPath = fastPath
            $0.requestHeadTimeout = .milliseconds(1_000)
        }
        try await app.test(.live) { client in
            let port = try #require(client.port)
            // One header line every 250 ms, for far longer than the deadline.
            let answer = try await RawSocket.onOwnThread { () -> String in
                let socket = try RawSocket(port: port)
                defer { socket.close() }
                socket.send("GET /api/slow?timeout=0 HTTP/1.1\r\nHost: test\r\n")
                for index in 0..<40 {
                    Thread.sleep(forTimeInterval: 0.25)
                    if !socket.send("X-Slow-\(index): 1\r\n") { break }
                }
                return socket.readAll()
            }
            #expect(answer.hasPrefix("HTTP/1.1 408 "))
            #expect(answer.contains("REQUEST_HEAD_TIMEOUT_MS"))

            // A long-poll of twice the head deadline is a request in progress, not a slow head.
            let probe = Probe(port: port)
            let waited = try await probe.get("patient", timeout: 2_000)
            #expect(waited.status == .noContent)
        }
    }

    @Test(arguments: [true, false])
    func anIdleConnectionIsClosedBetweenRequests(fastPath: Bool) async throws {
        let app = try makeApplication(.memory) {
            $0.fastPath = fastPath
            $0.idleTimeout = .milliseconds(1_000)
        }
        try await app.test(.live) { client in
            let port = try #require(client.port)
            let (first, closedByServer) = try await RawSocket.onOwnThread { () -> (String, Bool) in
                let socket = try RawSocket(port: port, receiveTimeoutSeconds: 20)
                defer { socket.close() }
                socket.send("POST /api/idle HTTP/1.1\r\nHost: test\r\nContent-Length: 1\r\n\r\n1")
                let response = socket.readResponseHead()
                // Then nothing: the server closes (a read returns end of stream, not the 20 s timeout).
                return (response, socket.readAll().isEmpty && socket.sawEndOfStream)
            }
            #expect(first.hasPrefix("HTTP/1.1 201 "))
            #expect(closedByServer)
        }
    }

    /// A connection has one timer, armed at most one timeout ahead and armed again when it fires
    /// short of the limit in force: requests on a busy connection for longer than both timeouts are
    /// never cut, and the head deadline and idle timeout still hold after it was armed again.
    @Test(arguments: [true, false])
    func theLimitsStillHoldAfterAConnectionWasBusyForLongerThanThem(fastPath: Bool) async throws {
        let app = try makeApplication(.memory) {
            $0.fastPath = fastPath
            $0.requestHeadTimeout = .milliseconds(1_000)
            $0.idleTimeout = .milliseconds(1_500)
        }
        try await app.test(.live) { client in
            let port = try #require(client.port)
            @Sendable func busy(_ socket: RawSocket) -> [String] {
                // A request every 200 ms for 3 s: twice the idle timeout, three head deadlines.
                (0..<15).map { _ in
                    socket.send("POST /api/busy HTTP/1.1\r\nHost: test\r\nContent-Length: 1\r\n\r\n1")
                    let response = socket.readResponse()
                    Thread.sleep(forTimeInterval: 0.2)
                    return response
                }
            }
            let (answers, slowHead) = try await RawSocket.onOwnThread { () -> ([String], String) in
                let socket = try RawSocket(port: port, receiveTimeoutSeconds: 20)
                defer { socket.close() }
                let answers = busy(socket)
                socket.send("GET /api/busy?timeout=0 HTTP/1.1\r\nHost: test\r\n")
                for index in 0..<40 {
                    Thread.sleep(forTimeInterval: 0.25)
                    if !socket.send("X-Slow-\(index): 1\r\n") { break }
                }
                return (answers, socket.readAll())
            }
            #expect(answers.count == 15 && answers.allSatisfy { $0.hasPrefix("HTTP/1.1 201 ") })
            #expect(slowHead.hasPrefix("HTTP/1.1 408 "))

            let (more, closedByServer) = try await RawSocket.onOwnThread { () -> ([String], Bool) in
                let socket = try RawSocket(port: port, receiveTimeoutSeconds: 20)
                defer { socket.close() }
                let answers = busy(socket)
                // Then nothing: the server closes (end of stream, not the 20 s receive timeout).
                return (answers, socket.readAll().isEmpty && socket.sawEndOfStream)
            }
            #expect(more.allSatisfy { $0.hasPrefix("HTTP/1.1 201 ") })
            #expect(closedByServer)
        }
    }

    @Test(arguments: [true, false])
    func connectionsPastTheLimitAre503WithRetryAfter(fastPath: Bool) async throws {
        let app = try makeApplication(.memory) {
            $0.fastPath = fastPath
            $0.maximumConnections = 3
        }
        try await app.test(.live) { client in
            let port = try #require(client.port)
            // Connections held open until one is refused. The test harness's own client holds a
            // place too (or not yet): two or three are admitted.
            let answers = try await RawSocket.onOwnThread { () -> (Int, String, String) in
                var held: [RawSocket] = []
                var refused = ""
                while held.count < 5 {
                    let socket = try RawSocket(port: port)
                    socket.send("GET /api/held?timeout=0 HTTP/1.1\r\nHost: test\r\n\r\n")
                    let head = socket.readResponseHead()
                    if head.hasPrefix("HTTP/1.1 204") {
                        held.append(socket)
                    } else {
                        refused = head + socket.readAll()
                        socket.close()
                        break
                    }
                }
                // A place freed is a place taken.
                held.removeFirst().close()
                var admitted = ""
                for _ in 0..<100 where !admitted.hasPrefix("HTTP/1.1 204") {
                    Thread.sleep(forTimeInterval: 0.05)
                    let again = try RawSocket(port: port)
                    again.send("GET /api/held?timeout=0 HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
                    admitted = again.readAll()
                    again.close()
                }
                let count = held.count + 1
                for socket in held { socket.close() }
                return (count, refused, admitted)
            }
            #expect((2...3).contains(answers.0))
            #expect(answers.1.hasPrefix("HTTP/1.1 503 "))
            #expect(answers.1.contains("Retry-After: 1"))
            #expect(answers.1.contains("MAX_CONNECTIONS"))
            #expect(answers.2.hasPrefix("HTTP/1.1 204"))
        }
    }

    @Test func aQueuePastMaxQueuesIs409() async throws {
        try await makeApplication(.memory, configure: { $0.maximumQueues = 1 }).test(.router) { client in
            #expect(try await client.execute(uri: "/api/first", method: .post, body: ByteBuffer(string: "1")).status == .created)
            let refused = try await client.execute(uri: "/api/second", method: .post, body: ByteBuffer(string: "1"))
            #expect(refused.status == .conflict)
            #expect(refused.text.contains("MAX_QUEUES"))
            #expect(try await client.execute(uri: "/api/second?timeout=0", method: .get).status == .noContent)
        }
    }
}

/// A blocking client socket, used on a thread of its own.
private final class RawSocket: @unchecked Sendable {
    let fd: Int32
    private(set) var sawEndOfStream = false

    struct ConnectFailed: Error {}

    init(port: Int, receiveTimeoutSeconds: Int = 10) throws {
        guard let fd = LoopbackSocket.connect(port: port, receiveTimeoutSeconds: receiveTimeoutSeconds) else { throw ConnectFailed() }
        self.fd = fd
    }

    /// `false` once the peer has closed (the write fails).
    @discardableResult
    func send(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        return bytes.withUnsafeBytes { Foundation.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } == bytes.count
    }

    /// Everything until the peer closes or the receive timeout passes.
    func readAll() -> String {
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = recv(fd, &buffer, buffer.count, 0)
            if count == 0 { sawEndOfStream = true }
            if count <= 0 { break }
            received += buffer[0..<count]
        }
        return String(decoding: received, as: UTF8.self)
    }

    /// One response head and whatever arrived with it.
    func readResponseHead() -> String {
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !String(decoding: received, as: UTF8.self).contains("\r\n\r\n") {
            let count = recv(fd, &buffer, buffer.count, 0)
            if count <= 0 { break }
            received += buffer[0..<count]
        }
        return String(decoding: received, as: UTF8.self)
    }

    /// One whole response, head and `Content-Length` bytes of body (nothing of the next one).
    func readResponse() -> String {
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1)
        func complete() -> Bool {
            let text = String(decoding: received, as: UTF8.self)
            guard let end = text.range(of: "\r\n\r\n") else { return false }
            let length =
                text[..<end.lowerBound].split(separator: "\r\n")
                .first { $0.lowercased().hasPrefix("content-length:") }
                .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
            return text.utf8.distance(from: end.upperBound.samePosition(in: text.utf8)!, to: text.utf8.endIndex) >= length
        }
        while !complete() {
            let count = recv(fd, &buffer, buffer.count, 0)
            if count <= 0 { break }
            received += buffer[0..<count]
        }
        return String(decoding: received, as: UTF8.self)
    }

    func close() { Foundation.close(fd) }

    static func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try body() }) }.start()
        }
    }
}
