import NIOCore
import SkiffClient
import Synchronization

/// `skiff-workerbench --port P --queue Q --messages N --concurrency C`: fills the queue with N
/// small messages, then times one ``Worker`` (no-op handler, concurrency C) from its start until
/// every message was handled and acked. Prints one JSON line: `ok`, `seconds`, `ok_per_second`.
/// `make bench`'s scenario w; not shipped.
@main
struct WorkerBench {
    static func main() async throws {
        var options: [String: String] = [:]
        var arguments = CommandLine.arguments.dropFirst()
        while let name = arguments.popFirst(), name.hasPrefix("--"), let value = arguments.popFirst() { options[String(name.dropFirst(2))] = value }
        guard let port = options["port"].flatMap(Int.init), let queue = options["queue"] else {
            print("usage: skiff-workerbench --port P --queue Q [--messages N] [--concurrency C]")
            return
        }
        let count = options["messages"].flatMap(Int.init) ?? 20_000
        let concurrency = options["concurrency"].flatMap(Int.init) ?? 10
        let client = SkiffClient(configuration: SkiffClientConfiguration(url: "http://127.0.0.1:\(port)"))
        var sent = 0
        while sent < count {
            let batch = Array(repeating: ByteBuffer(string: #"{"work":1}"#), count: min(1000, count - sent))
            sent += try await client.sendBatch(batch, to: queue).count
        }
        let handled = Atomic<Int>(0)
        let (finished, finish) = AsyncStream.makeStream(of: Void.self)
        let worker = Worker(
            client: client,
            configuration: WorkerConfiguration(queue: queue, concurrency: concurrency, batchSize: min(concurrency, 100), receiveWait: .seconds(1))
        ) { _ in
            if handled.wrappingAdd(1, ordering: .relaxed).newValue == count { finish.yield() }
        }
        let started = ContinuousClock.now
        let running = Task { try await worker.run() }
        var iterator = finished.makeAsyncIterator()
        await iterator.next()
        // The last acks are on their way: done when nothing is in flight.
        while try await client.stats(of: queue).inFlight > 0 { try await Task.sleep(for: .milliseconds(5)) }
        let elapsed = ContinuousClock.now - started
        worker.stop()
        try await running.value
        try await client.shutdown()
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        print(#"{"ok": \#(count), "concurrency": \#(concurrency), "seconds": \#(seconds), "ok_per_second": \#(Double(count) / seconds)}"#)
    }
}
