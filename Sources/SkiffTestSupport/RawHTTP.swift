import Foundation

/// HTTP/1.1 over a plain blocking socket, for tests that need control over exactly when the
/// connection closes.
public enum RawHTTP {
    /// Sends `request`, reads the response head and exactly Content-Length body bytes, then closes
    /// the socket at once (a client that reads its answer and leaves). Returns the status line and body.
    ///
    /// The blocking socket work runs on a thread of its own: blocking a thread of the (small)
    /// cooperative pool, or of Dispatch's global queues that back it on Linux, would starve the
    /// server under test and every other test running beside it.
    public static func exchangeAndClose(port: Int, request: String) async throws -> (status: String, body: String) {
        let response = try await pipelined(port: port, [request])[0]
        return (response.status, response.body)
    }

    /// Sends `request` and closes the socket at once without reading anything: a client that
    /// asks and leaves before the answer.
    public static func sendAndLeave(port: Int, request: String) async throws {
        try await onOwnThread {
            guard let fd = LoopbackSocket.connect(port: port) else { throw POSIXError(.ECONNREFUSED) }
            let bytes = Array(request.utf8)
            _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
            close(fd)
        }
    }

    /// Sends `requests` back to back on one connection (HTTP/1.1 pipelining) and reads
    /// `requests.count` responses in order: status line, headers and body of each.
    public static func pipelined(port: Int, _ requests: [String]) async throws -> [(status: String, head: String, body: String)] {
        try await onOwnThread { try blockingExchange(port: port, pieces: [requests.joined()], pause: .zero, halfClose: false, responses: requests.count) }
    }

    /// Sends `pieces` on one connection, pausing between them so that each arrives in reads of its
    /// own (a request split anywhere), then half-closes the connection when asked, and reads
    /// `responses` responses in order.
    public static func exchange(
        port: Int,
        pieces: [String],
        pause: Duration = .milliseconds(50),
        halfClose: Bool = false,
        responses: Int
    ) async throws -> [(status: String, head: String, body: String)] {
        try await onOwnThread { try blockingExchange(port: port, pieces: pieces, pause: pause, halfClose: halfClose, responses: responses) }
    }

    private static func blockingExchange(
        port: Int,
        pieces: [String],
        pause: Duration,
        halfClose: Bool,
        responses count: Int
    ) throws -> [(status: String, head: String, body: String)] {
        guard let fd = LoopbackSocket.connect(port: port) else { throw POSIXError(.ECONNREFUSED) }
        defer { close(fd) }
        for (index, piece) in pieces.enumerated() {
            if index > 0, pause > .zero {
                let (seconds, attoseconds) = pause.components
                Thread.sleep(forTimeInterval: Double(seconds) + Double(attoseconds) / 1e18)
            }
            let bytes = Array(piece.utf8)
            _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        }
        if halfClose { shutdown(fd, Int32(SHUT_WR)) }
        var received: [UInt8] = []
        var responses: [(status: String, head: String, body: String)] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while responses.count < count {
            if let headEnd = find([13, 10, 13, 10], in: received) {
                let head = String(decoding: received[..<headEnd], as: UTF8.self)
                let length =
                    head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
                    .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
                let bodyStart = headEnd + 4
                if received.count - bodyStart >= length {
                    let status = String(head.split(separator: "\r\n").first ?? "")
                    responses.append((status, head, String(decoding: received[bodyStart..<(bodyStart + length)], as: UTF8.self)))
                    received.removeFirst(bodyStart + length)
                    continue
                }
            }
            let count = recv(fd, &buffer, buffer.count, 0)
            guard count > 0 else {
                throw CocoaError(.fileReadUnknown, userInfo: [NSLocalizedDescriptionKey: "connection ended after \(responses.count) responses"])
            }
            received.append(contentsOf: buffer[0..<count])
        }
        return responses
    }

    private static func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try body() }) }.start()
        }
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for index in 0...(haystack.count - needle.count) where Array(haystack[index..<(index + needle.count)]) == needle {
            return index
        }
        return nil
    }
}
