// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "skiff",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "skiff", targets: ["skiff"]),
        // The Swift client: every API call with safe retries, and a Worker (README, "Clients").
        .library(name: "SkiffClient", targets: ["SkiffClient"]),
        // The stream client of `make bench` (not shipped).
        .executable(name: "skiff-streambench", targets: ["SkiffStreamBench"]),
        // The Worker client of `make bench` (not shipped).
        .executable(name: "skiff-workerbench", targets: ["SkiffWorkerBench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        // Settings declared once, read from flags, the environment and a JSON file.
        .package(url: "https://github.com/apple/swift-configuration.git", from: "1.4.0"),
        .package(url: "https://github.com/apple/swift-system.git", from: "1.8.1"),
        // HTTP to Google Cloud (the metadata server's tokens).
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        // HMAC-SHA256 signatures of push deliveries.
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        // A real WebSocket client: the client library's streams, and the stream tests.
        .package(url: "https://github.com/hummingbird-project/swift-websocket.git", from: "1.6.2"),
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.3"),
        // OTLP over HTTP only: the gRPC exporter would add grpc-swift to every build.
        .package(url: "https://github.com/swift-otel/swift-otel.git", from: "1.6.0", traits: ["OTLPHTTP"]),
        // Tests only: property-based checks (random operation sequences, hostile byte streams).
        .package(url: "https://github.com/x-sheep/swift-property-based.git", from: "2.0.1"),
    ],
    targets: [
        // hiredis from Debian's libhiredis-dev: RESP encoding and reply parsing.
        .systemLibrary(
            name: "CHiredis",
            pkgConfig: "hiredis",
            providers: [.apt(["libhiredis-dev"])]
        ),
        // Small helpers every layer uses (the event-loop task executor, Duration in ms), so that a
        // module that needs them need not depend on the Redis client.
        .target(
            name: "SkiffSupport",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        // The Redis client: codec, channel handler, connection, pool, client. No queue knowledge.
        .target(
            name: "SkiffRedis",
            dependencies: [
                "CHiredis",
                "SkiffSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ]
        ),
        // Google Cloud without an SDK: access tokens from the metadata server (Memorystore's IAM
        // authentication), and a Cloud Storage client with the payload store over it (it
        // implements SkiffQueue's PayloadStore). No Redis knowledge.
        .target(
            name: "SkiffGoogleCloud",
            dependencies: [
                "SkiffQueue",
                "SkiffSupport",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Queue semantics: the QueueBackend protocol and model, the delivery lifecycle (lease,
        // waiters, coalescer) and the in-memory backend. No HTTP, no Redis.
        .target(
            name: "SkiffQueue",
            dependencies: [
                "SkiffSupport",
                // SHA-256 of offloaded message bodies (the payload stores).
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The Redis queue backend: keys, envelope, Lua scripts, waiting, maintenance.
        .target(
            name: "SkiffRedisQueue",
            dependencies: [
                "SkiffQueue",
                "SkiffRedis",
                "SkiffSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            // The Lua scripts are files, compiled into the binary (no bundle to ship beside it).
            resources: [
                .embedInCode("Lua/acknowledge.lua"),
                .embedInCode("Lua/change-visibility.lua"),
                .embedInCode("Lua/claim.lua"),
                .embedInCode("Lua/configure.lua"),
                .embedInCode("Lua/due-queues.lua"),
                .embedInCode("Lua/due-slots.lua"),
                .embedInCode("Lua/enqueue.lua"),
                .embedInCode("Lua/expire.lua"),
                .embedInCode("Lua/graveyard-take.lua"),
                .embedInCode("Lua/held.lua"),
                .embedInCode("Lua/history.lua"),
                .embedInCode("Lua/history-record.lua"),
                .embedInCode("Lua/library.lua"),
                .embedInCode("Lua/list.lua"),
                .embedInCode("Lua/lookup.lua"),
                .embedInCode("Lua/promote.lua"),
                .embedInCode("Lua/publish.lua"),
                .embedInCode("Lua/payload-references.lua"),
                .embedInCode("Lua/peek.lua"),
                .embedInCode("Lua/purge.lua"),
                .embedInCode("Lua/recover.lua"),
                .embedInCode("Lua/redrive.lua"),
                .embedInCode("Lua/register.lua"),
                .embedInCode("Lua/reject.lua"),
                .embedInCode("Lua/release.lua"),
                .embedInCode("Lua/stats.lua"),
                .embedInCode("Lua/topic-append.lua"),
                .embedInCode("Lua/topic-count-pushes.lua"),
                .embedInCode("Lua/topic-delete.lua"),
                .embedInCode("Lua/topic-forget.lua"),
                .embedInCode("Lua/topic-deliver.lua"),
                .embedInCode("Lua/topic-library.lua"),
                .embedInCode("Lua/topic-log.lua"),
                .embedInCode("Lua/topic-settle.lua"),
                .embedInCode("Lua/topic-subscribe.lua"),
                .embedInCode("Lua/topic-subscriptions.lua"),
                .embedInCode("Lua/topic-unsubscribe.lua"),
                .embedInCode("Lua/unregistered.lua"),
            ]
        ),
        // Push subscriptions: consumes their queues and POSTs each message to its endpoint
        // (AsyncHTTPClient, HMAC signatures, address rules against SSRF). No server knowledge.
        .target(
            name: "SkiffPush",
            dependencies: [
                "SkiffQueue",
                "SkiffSupport",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The client library: HTTP calls with retries that never duplicate a send, and the Worker.
        // Depends on no other Skiff module (users link it alone).
        .target(
            name: "SkiffClient",
            dependencies: [
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "WSClient", package: "swift-websocket"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The HTTP API: Hummingbird routes, request validation, error mapping, application assembly.
        .target(
            name: "SkiffAPI",
            dependencies: [
                "SkiffGoogleCloud",
                "SkiffPush",
                "SkiffQueue",
                "SkiffRedisQueue",
                "SkiffRedis",
                "SkiffSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "OTel", package: "swift-otel"),
            ],
            // Served at /openapi.yaml as is (the repository root links to it), and the console's
            // files at /ui/ (no bundle to ship beside the binary).
            resources: [
                .embedInCode("Rendering/openapi.yaml"),
                .embedInCode("Console/Assets/index.html"),
                .embedInCode("Console/Assets/console.js"),
                .embedInCode("Console/Assets/console.css"),
            ]
        ),
        // The only target that knows Prometheus: it bootstraps swift-metrics with it and hands the
        // registry to the `/metrics` route.
        .executableTarget(
            name: "skiff",
            dependencies: [
                "SkiffAPI",
                "SkiffClient",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        // Helpers shared by the test targets: harness-provided Redis URLs, throwaway redis-servers.
        .target(
            name: "SkiffTestSupport",
            dependencies: [
                "SkiffRedis",
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ]
        ),
        .testTarget(
            name: "SkiffGoogleCloudTests",
            dependencies: [
                "SkiffGoogleCloud",
                "SkiffQueue",
                "SkiffTestSupport",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                // RSA signatures with the fixture's throwaway key (signed URLs).
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            // Read by path (#filePath): Google's own library made them, see the file.
            exclude: ["Fixtures"]
        ),
        .testTarget(
            name: "SkiffRedisTests",
            dependencies: [
                "SkiffRedis",
                "SkiffSupport",
                "SkiffTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOTestUtils", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "SkiffQueueTests",
            dependencies: [
                "SkiffQueue",
                // The payload store contract also runs against Cloud Storage (the emulator).
                "SkiffGoogleCloud",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                "SkiffRedisQueue",
                "SkiffRedis",
                "SkiffSupport",
                "SkiffTestSupport",
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "PropertyBased", package: "swift-property-based"),
            ]
        ),
        .testTarget(
            name: "SkiffAPITests",
            dependencies: [
                "SkiffAPI",
                "SkiffPush",
                "SkiffQueue",
                "SkiffRedisQueue",
                "SkiffRedis",
                "SkiffSupport",
                "SkiffTestSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "WSClient", package: "swift-websocket"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "PropertyBased", package: "swift-property-based"),
                .product(name: "Configuration", package: "swift-configuration"),
            ]
        ),
        .testTarget(
            name: "SkiffClientTests",
            dependencies: [
                "SkiffClient",
                "SkiffAPI",
                "SkiffQueue",
                "SkiffRedis",
                "SkiffTestSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Runs against the local cluster that `make test` starts with `scripts/cluster.sh up`.
        // `make bench`'s WebSocket client: one fast consumer or publisher, or many idle streams.
        .executableTarget(
            name: "SkiffStreamBench",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "SkiffWorkerBench",
            dependencies: ["SkiffClient", .product(name: "NIOCore", package: "swift-nio")]
        ),
        .testTarget(
            name: "SkiffClusterTests",
            dependencies: [
                "SkiffClient", "SkiffTestSupport", .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
    ]
)

// Imports are internal unless marked `public import`: a module's API shows which dependencies it
// exposes, and nothing else leaks to its users.
for target in package.targets where target.type != .system {
    target.swiftSettings = (target.swiftSettings ?? []) + [.enableUpcomingFeature("InternalImportsByDefault")]
}
