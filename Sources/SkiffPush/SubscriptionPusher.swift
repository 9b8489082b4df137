import AsyncHTTPClient
import Logging
import NIOCore
import NIOHTTP1
import SkiffQueue
import Synchronization

/// One push subscription's consumers on one replica: ``PushEndpoint/concurrency`` loops, each
/// claiming a message from the subscription's queue, pushing it and settling it.
final class SubscriptionPusher: Sendable {
    enum Outcome: Sendable, Equatable {
        case pushed
        /// Failed; the queue retries it after its backoff.
        case retried
        /// Failed at its last attempt; the queue dead-letters it.
        case deadLettered
    }

    let topic: TopicName
    let subscription: TopicSubscription
    let endpoint: PushEndpoint
    let backend: any QueueBackend
    let client: HTTPClient
    let configuration: PushConfiguration
    let metrics: PushMetrics
    let logger: Logger
    let resolve: @Sendable (String) async throws -> [IPAddress]
    let report: @Sendable (Outcome) -> Void
    private let checkedAddresses = Mutex<(startedAt: ContinuousClock.Instant, task: Task<Result<Void, QueueError>, Never>)?>(nil)

    init(
        topic: TopicName,
        subscription: TopicSubscription,
        endpoint: PushEndpoint,
        backend: any QueueBackend,
        client: HTTPClient,
        configuration: PushConfiguration,
        metrics: PushMetrics,
        logger: Logger,
        resolve: @escaping @Sendable (String) async throws -> [IPAddress],
        report: @escaping @Sendable (Outcome) -> Void
    ) {
        self.topic = topic
        self.subscription = subscription
        self.endpoint = endpoint
        self.backend = backend
        self.client = client
        self.configuration = configuration
        self.metrics = metrics
        var logger = logger
        logger[metadataKey: "topic.name"] = "\(topic)"
        logger[metadataKey: "subscription.name"] = "\(subscription.name)"
        self.logger = logger
        self.resolve = resolve
        self.report = report
    }

    /// Runs until cancelled; a push under way when it is cancelled still finishes and settles.
    func run() async {
        // The queue may have been configured by hand since the subscription was stored.
        _ = await settingsInForce(subscription.queue)
        await withDiscardingTaskGroup { group in
            for _ in 0..<endpoint.concurrency {
                group.addTask { await self.consume() }
            }
        }
    }

    private var lease: Duration { .milliseconds(endpoint.timeoutMilliseconds) + configuration.leaseMargin }

    private func consume() async {
        let context = DeliveryContext(logger: logger)
        let request = DeliveryRequest(queue: subscription.queue, timeout: configuration.receiveWait, mode: .acknowledge(visibilityTimeout: lease))
        while !Task.isCancelled {
            do {
                guard let lease = try await backend.deliver(request, context: context) else { continue }
                guard try await lease.isStillHeld() else { continue }
                // Acknowledged mode: nothing is deleted now; the push's answer settles each one.
                await lease.delivered()
                for delivery in lease.deliveries {
                    // Not cancelled with the consumer: a push under way finishes and settles.
                    await Task { await self.push(delivery) }.value
                }
            } catch is CancellationError {
                return
            } catch {
                logger.warning("could not receive from the push queue; trying again", metadata: ["queue.name": "\(subscription.queue)", "error": "\(error)"])
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    /// Pushes one message and settles it: ack on 2xx, nack otherwise.
    func push(_ delivery: Delivery) async {
        let attempt = delivery.message.receiveCount
        // A partition's message is settled through its queue, as every transport does: the
        // receipt names the partition.
        let queue = delivery.queue.logical
        let started = ContinuousClock.now
        let failure = await attemptPush(delivery, attempt: attempt)
        metrics.recordAttempt(duration: ContinuousClock.now - started, succeeded: failure == nil)
        var metadata: Logger.Metadata = ["message.id": "\(delivery.message.id)", "push.attempt": "\(attempt)"]
        do {
            guard let failure else {
                if try await backend.acknowledge([delivery.receipt], in: queue).first == true {
                    report(.pushed)
                } else {
                    logger.warning("a push succeeded after its lease ran out; the message may be pushed again", metadata: metadata)
                }
                return
            }
            metadata["error"] = "\(failure)"
            // The queue decides, under the endpoint's settings (put back if someone changed
            // them): past maxReceiveCount (maxAttempts) the nack dead-letters the message,
            // otherwise it comes back after the backoff, with jitter. Never an immediate retry.
            let settings = await settingsInForce(queue)
            let last = settings.maxReceiveCount.map { attempt >= $0 } ?? false
            guard try await backend.reject(delivery.receipt, in: queue, delay: nil, reason: "push: \(failure)") else {
                logger.warning("a failed push could not be settled: its lease ran out", metadata: metadata)
                return
            }
            if last {
                metrics.deadLettered()
                report(.deadLettered)
                logger.warning("push failed at its last attempt; the message is dead-lettered", metadata: metadata)
            } else {
                report(.retried)
                logger.info("push failed; it will be retried", metadata: metadata)
            }
        } catch {
            metadata["error"] = "\(error)"
            logger.error("could not settle a push; the message comes back after its lease", metadata: metadata)
        }
    }

    /// The push queue's settings: the endpoint's (attempts, backoff, dead letters, lease). A
    /// `PUT /api/{q}/config` replaces every setting of a queue, so one that left these out is
    /// undone here, before the nack that relies on them.
    func settingsInForce(_ queue: QueueName) async -> QueueSettings {
        let margin = configuration.leaseMargin.milliseconds
        guard let current = try? await backend.settings(of: queue) else {
            return endpoint.queueSettings(from: QueueSettings(), leaseMarginMilliseconds: margin)
        }
        let wanted = endpoint.queueSettings(from: current, leaseMarginMilliseconds: margin)
        guard wanted != current else { return current }
        do {
            try await backend.updateSettings(wanted, of: queue)
            logger.notice("the push queue's settings were changed; the subscription's are put back", metadata: ["queue.name": "\(queue)"])
            return wanted
        } catch {
            logger.warning("could not put back the push queue's settings", metadata: ["queue.name": "\(queue)", "error": "\(error)"])
            return current
        }
    }

    /// `nil` when the endpoint took the message (2xx); otherwise why not. The whole attempt
    /// (the address check, connecting, sending, the answer to its last byte) has the endpoint's
    /// timeout: an answer that trickles is cut there.
    private func attemptPush(_ delivery: Delivery, attempt: Int) async -> String? {
        let timeout = Duration.milliseconds(endpoint.timeoutMilliseconds)
        let outcome = await Deadline.run(within: timeout) { await self.pushOnce(delivery, attempt: attempt) }
        return outcome ?? "no complete answer within \(endpoint.timeoutMilliseconds) ms"
    }

    private func pushOnce(_ delivery: Delivery, attempt: Int) async -> String? {
        let url: PushURL
        do {
            url = try PushURL(endpoint.url)
        } catch {
            return "\(error)"
        }
        if case .failure(let refused) = await checkAddresses(url) { return "\(refused)" }
        let timestamp = MessageID.currentMilliseconds() / 1000
        var request = HTTPClientRequest(url: endpoint.url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "Skiff-Push/1")
        request.headers.add(name: "Skiff-Topic", value: topic.rawValue)
        request.headers.add(name: "Skiff-Subscription", value: subscription.name.rawValue)
        request.headers.add(name: "Skiff-Message-Id", value: delivery.message.id)
        // The same for every attempt at this message for this subscription: a receiver drops repeats by it.
        request.headers.add(name: "Skiff-Delivery-Id", value: "\(topic.rawValue)/\(subscription.name.rawValue)/\(delivery.message.id)")
        request.headers.add(name: "Skiff-Attempt", value: String(attempt))
        request.headers.add(name: "Skiff-Timestamp", value: String(timestamp))
        request.headers.add(
            name: "Skiff-Signature", value: PushSignature.header(secret: endpoint.secret, timestampSeconds: timestamp, body: delivery.message.body))
        request.body = .bytes(delivery.message.body)
        do {
            let response = try await client.execute(request, timeout: .milliseconds(endpoint.timeoutMilliseconds), logger: logger)
            // Read (and drop) a bounded answer, so the connection can be used again.
            var read = 0
            for try await part in response.body {
                read += part.readableBytes
                if read > Self.maximumAnswerBytes { break }
            }
            guard (200..<300).contains(response.status.code) else { return "the endpoint answered \(response.status.code)" }
            return nil
        } catch let error as HTTPClientError where error == .deadlineExceeded {
            return "no answer within \(endpoint.timeoutMilliseconds) ms"
        } catch {
            return "\(error)"
        }
    }

    /// Answer bytes read from an endpoint at most; the rest is not read.
    static var maximumAnswerBytes: Int { 64 << 10 }

    /// The address rules, with the host's resolution trusted for
    /// ``PushConfiguration/resolutionLifetime``. One resolution at a time per subscription: the
    /// consumers share it, and one that hangs in the resolver holds a thread of the pool, not
    /// the pushes (their deadline ends the wait).
    private func checkAddresses(_ url: PushURL) async -> Result<Void, QueueError> {
        let now = ContinuousClock.now
        let (rules, resolve, lifetime) = (configuration.addressRules, self.resolve, configuration.resolutionLifetime)
        let check = checkedAddresses.withLock { checked -> Task<Result<Void, QueueError>, Never> in
            if let checked, now - checked.startedAt < lifetime { return checked.task }
            let task = Task { () -> Result<Void, QueueError> in
                do throws(QueueError) {
                    try await rules.check(url, resolve: resolve)
                    return .success(())
                } catch {
                    return .failure(error)
                }
            }
            checked = (now, task)
            return task
        }
        return await check.value
    }
}
