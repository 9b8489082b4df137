import NIOCore
import PropertyBased
import Testing

@testable import SkiffAPI

/// The fast path's framing decisions without a socket: what it serves, what it passes on to the
/// routes, what waits, and when the events it holds back go on.
@Suite("Fast path state machine")
struct FastPathStateMachineTests {
    /// Feeds a machine as ``FastPathHandler`` does and writes down what it is told to do.
    struct Driver {
        var machine: FastPathStateMachine
        var log: [String] = []

        init(maximumBufferedBytes: Int = 1 << 20) {
            let settings = APISettings(maximumMessageBytes: 100)
            machine = FastPathStateMachine(
                maximumBufferedBytes: maximumBufferedBytes,
                classify: { FastPathRequest.classify($0, settings: settings) },
                acceptsBody: { request, body in
                    if case .receive = request { return true }
                    return JSONValidator.validate(body) == nil
                }
            )
        }

        /// One read burst (its read-complete follows), or bytes arriving in pieces.
        mutating func read(_ text: String) {
            switch machine.read(ByteBuffer(string: text)) {
            case .passThrough: log.append("through " + text)
            case .advance: drain()
            }
            machine.readComplete()
        }

        mutating func drain() {
            while let action = machine.nextAction() { log.append(Self.describe(action)) }
        }

        /// The log since the last call.
        mutating func take() -> [String] {
            defer { log = [] }
            return log
        }

        static func describe(_ action: FastPathStateMachine.Action) -> String {
            switch action {
            case .passOn(let bytes): "pass " + String(buffer: bytes)
            case .handOver: "hand over"
            case .serve(.send(let queue), _, let body): "serve POST \(queue) " + String(buffer: body)
            case .serve(.receive(let queue, let timeout), _, _): "serve GET \(queue) \(timeout)"
            case .serve(.publish(let topic), _, let body): "serve POST topic \(topic) " + String(buffer: body)
            case .fireReadComplete: "read complete"
            case .fireInputClosed: "input closed"
            case .fireQuiesce: "quiesce"
            case .read: "read"
            }
        }
    }

    static let fastGet = "GET /api/q HTTP/1.1\r\n\r\n"
    static let fastPost = "POST /api/q HTTP/1.1\r\nContent-Length: 7\r\n\r\n{\"a\":1}"
    static let routedPost = "POST /api/q?priority=1 HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}"

    @Test func aRequestBehindAFastOneWaitsForItsResponse() {
        var driver = Driver()
        driver.read(Self.fastGet + Self.routedPost + Self.fastPost)
        #expect(driver.take() == ["serve GET q 10000"])
        #expect(driver.machine.fastRequestInFlight)
        driver.machine.fastResponseWritten()
        driver.drain()
        // Outside a read burst the decoder needs a read-complete of the handler's own.
        #expect(driver.take() == ["pass " + Self.routedPost, "read complete"])
        driver.drain()
        #expect(driver.take() == [])
    }

    @Test func aFastRequestBehindARoutedOneWaitsForItsResponseEnd() {
        var driver = Driver()
        driver.read(Self.routedPost + Self.fastPost)
        #expect(driver.take() == ["pass " + Self.routedPost])
        #expect(driver.machine.routedResponsesPending == 1)
        let somethingWaits = driver.machine.routedResponseEnded()
        #expect(somethingWaits)
        driver.drain()
        #expect(driver.take() == ["serve POST q {\"a\":1}"])
        // A response end with nothing behind it needs no pass.
        driver.machine.fastResponseWritten()
        driver.drain()
        let anythingWaits = driver.machine.routedResponseEnded()
        #expect(!anythingWaits)
    }

    @Test func aRequestInPiecesIsServedWhenItsLastByteIsHere() {
        var driver = Driver()
        let text = Self.fastPost
        for (index, byte) in text.utf8.enumerated() {
            driver.read(String(decoding: [byte], as: UTF8.self))
            #expect(driver.take() == (index == text.utf8.count - 1 ? ["serve POST q {\"a\":1}"] : []), "after byte \(index)")
        }
    }

    @Test func aSendThatIsNotJSONGoesToTheRoute() {
        var driver = Driver()
        let notJSON = "POST /api/q HTTP/1.1\r\nContent-Length: 3\r\n\r\n{x}"
        driver.read(notJSON + Self.fastGet)
        #expect(driver.take() == ["pass " + notJSON])
        _ = driver.machine.routedResponseEnded()
        driver.drain()
        #expect(driver.take() == ["serve GET q 10000"])
    }

    @Test func aPublishIsServedAndOneThatIsNotJSONGoesToTheRoute() {
        var driver = Driver()
        let publish = "POST /api/topics/t HTTP/1.1\r\nContent-Length: 7\r\n\r\n{\"a\":1}"
        let notJSON = "POST /api/topics/t HTTP/1.1\r\nContent-Length: 3\r\n\r\n{x}"
        driver.read(publish + notJSON)
        #expect(driver.take() == ["serve POST topic t {\"a\":1}"])
        driver.machine.fastResponseWritten()
        driver.drain()
        #expect(driver.take() == ["pass " + notJSON, "read complete"])
    }

    @Test func aChunkedBodyIsPassedOnAsItsChunksCome() {
        var driver = Driver()
        let head = "POST /api/q HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        driver.read(head)
        #expect(driver.take() == ["pass " + head])
        driver.read("5\r\nhel")
        #expect(driver.take() == ["pass 5\r\nhel"])
        driver.read("lo\r\n0\r\n\r\n" + Self.fastGet)
        #expect(driver.take() == ["pass lo\r\n0\r\n\r\n"])
        _ = driver.machine.routedResponseEnded()
        driver.drain()
        #expect(driver.take() == ["serve GET q 10000"])
    }

    @Test(arguments: [
        // Another version: unframeable, NIO's decoder reads on alone.
        "GET /api/q HTTP/1.0\r\n\r\n",
        // A close or an upgrade: what follows is the routes' to decide.
        "GET /api/q HTTP/1.1\r\nConnection: close\r\n\r\n",
        "GET /api/q HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        // A chunk extension: unframeable in the middle of a body.
        "POST /api/q HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n0\r\n\r\n",
    ])
    func anOddRequestHandsTheConnectionOverForGood(first: String) {
        var driver = Driver()
        driver.read(first + Self.fastGet)
        let log = driver.take()
        #expect(log.contains("hand over"))
        #expect(log.filter { $0.hasPrefix("pass ") }.map { $0.dropFirst(5) }.joined() == first + Self.fastGet)
        #expect(!log.contains { $0.hasPrefix("serve") })
        driver.read(Self.fastGet)
        #expect(driver.take() == ["through " + Self.fastGet])
    }

    @Test func aHalfCloseWaitsForTheFastResponseThenTheIncompleteRestGoesOnFirst() {
        var driver = Driver()
        let incomplete = "POST /api/q HTTP/1.1\r\nContent-Le"
        driver.read(Self.fastGet + incomplete)
        #expect(driver.take() == ["serve GET q 10000"])
        driver.machine.inputClosed()
        driver.drain()
        #expect(driver.take() == [])
        #expect(driver.machine.clientDeparted)
        driver.machine.fastResponseWritten()
        driver.drain()
        #expect(driver.take() == ["pass " + incomplete, "input closed", "read complete"])
        driver.read(Self.fastGet)
        #expect(driver.take() == ["through " + Self.fastGet])
    }

    @Test func aHalfCloseWaitsForTheRoutedResponsesBeforeAFastRequest() {
        var driver = Driver()
        driver.read(Self.routedPost + Self.fastGet)
        #expect(driver.take() == ["pass " + Self.routedPost])
        driver.machine.inputClosed()
        driver.drain()
        #expect(driver.take() == [])
        let somethingWaits = driver.machine.routedResponseEnded()
        #expect(somethingWaits)
        driver.drain()
        #expect(driver.take() == ["serve GET q 10000"])
        driver.machine.fastResponseWritten()
        driver.drain()
        #expect(driver.take() == ["input closed"])
    }

    @Test func quiesceWaitsForTheFastResponseAndNothingMoreIsServed() {
        var driver = Driver()
        driver.read(Self.fastGet + Self.fastGet)
        #expect(driver.take() == ["serve GET q 10000"])
        let goesOnNow = driver.machine.quiesce()
        #expect(!goesOnNow)
        driver.machine.fastResponseWritten()
        driver.drain()
        #expect(driver.take() == ["quiesce"])
        #expect(driver.machine.isShuttingDown)
        // Without a fast request in progress the event goes on at once.
        var idle = Driver()
        let goesOnAtOnce = idle.machine.quiesce()
        #expect(goesOnAtOnce)
        idle.read(Self.fastGet)
        #expect(idle.take() == [])
    }

    @Test func readsPauseWhileTooMuchIsBufferedAndResumeWhenItDrains() {
        var driver = Driver(maximumBufferedBytes: 64)
        let body = String(repeating: "7", count: 90)
        let routed = "POST /api/q?priority=1 HTTP/1.1\r\nContent-Length: 90\r\n\r\n" + body
        driver.read(Self.fastGet + routed)
        #expect(driver.take() == ["serve GET q 10000"])
        #expect(driver.machine.bufferedBytes > 64)
        let readsNow = driver.machine.readRequested()
        #expect(!readsNow)
        driver.machine.fastResponseWritten()
        driver.drain()
        #expect(driver.take() == ["pass " + routed, "read complete", "read"])
        let readsAgain = driver.machine.readRequested()
        #expect(readsAgain)
    }

    @Test func aDroppedConnectionKeepsNothing() {
        var driver = Driver()
        driver.read(Self.fastGet + "POST /api/q HTTP/1.1\r\n")
        driver.machine.channelInactive()
        #expect(driver.machine.bufferedBytes == 0)
        #expect(driver.machine.clientDeparted)
    }

    /// Any mix of fast and routed requests, cut into reads anywhere, with responses written late
    /// or at once: every request is served or passed on exactly once, byte for byte, and the
    /// responses end in request order (a fast request is never served before the routed responses
    /// before it have ended, nor anything passed on while a fast response is pending).
    @Test func anyStreamCutAnywhereIsAnsweredInRequestOrder() async {
        let kinds = Gen.int(in: 0...5).array(of: 1...10)
        let cuts = Gen.int(in: 1...60).array(of: 1...40)
        let lags = Gen.bool.array(of: 1...40)
        await propertyCheck(count: 800, input: kinds, cuts, lags) { kinds, cuts, lags in
            let requests = kinds.enumerated().map { Self.request(kind: $1, index: $0) }
            var driver = Driver()
            var answered: [Int] = []
            var passed = ""
            var fastPending: Int?
            var routedAnswered = 0
            let routed = requests.enumerated().filter { !$1.fast }
            // Where each routed request ends in the bytes passed on.
            let routedEnds = routed.reduce(into: [Int]()) { ends, request in ends.append((ends.last ?? 0) + request.1.text.utf8.count) }

            func perform() {
                while let action = driver.machine.nextAction() {
                    switch action {
                    case .passOn(let bytes):
                        #expect(fastPending == nil, "passed on while a fast response was pending")
                        passed += String(buffer: bytes)
                    case .serve(_, _, let body):
                        let index = requests.indices.first { requests[$0].fast && !answered.contains($0) }!
                        #expect(String(buffer: body) == requests[index].body)
                        #expect(fastPending == nil)
                        fastPending = index
                    case .handOver:
                        Issue.record("handed over")
                    default:
                        break
                    }
                }
            }
            /// Writes every response that can be written now.
            func respond() {
                var progress = true
                while progress {
                    progress = false
                    if let index = fastPending {
                        answered.append(index)
                        fastPending = nil
                        driver.machine.fastResponseWritten()
                        perform()
                        progress = true
                    }
                    if routedAnswered < routedEnds.count, passed.utf8.count >= routedEnds[routedAnswered] {
                        answered.append(routed[routedAnswered].offset)
                        routedAnswered += 1
                        if driver.machine.routedResponseEnded() { perform() }
                        progress = true
                    }
                }
            }

            var bytes = Array(requests.map(\.text).joined().utf8)[...]
            var cut = 0
            while !bytes.isEmpty {
                let count = min(bytes.count, cuts[cut % cuts.count])
                _ = driver.machine.read(ByteBuffer(bytes: bytes.prefix(count)))
                perform()
                driver.machine.readComplete()
                bytes = bytes.dropFirst(count)
                if lags[cut % lags.count] { respond() }
                cut += 1
            }
            respond()
            #expect(answered == Array(requests.indices), "\(requests.map(\.text))")
            #expect(passed == routed.map(\.element.text).joined())
            #expect(driver.machine.bufferedBytes == 0)
        }
    }

    private static func request(kind: Int, index: Int) -> (text: String, fast: Bool, body: String) {
        switch kind {
        case 0: return (fastGet, true, "")
        case 1:
            let body = "[\(index)]"
            return ("POST /api/q HTTP/1.1\r\nContent-Length: \(body.utf8.count)\r\n\r\n" + body, true, body)
        case 2: return (routedPost, false, "")
        case 3: return ("POST /api/q HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n[\(index % 10)]\r\n0\r\n\r\n", false, "")
        case 4: return ("GET /api/q?visibility=10 HTTP/1.1\r\n\r\n", false, "")
        default: return ("POST /api/q HTTP/1.1\r\nContent-Length: 3\r\n\r\n{x}", false, "")
        }
    }
}
