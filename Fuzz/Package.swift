// swift-tools-version:6.1
import PackageDescription

// libFuzzer targets for Skiff's hand-written HTTP/1 and JSON parsers (issue 16). Built only by
// scripts/fuzz.sh, with `-sanitize=fuzzer,address -parse-as-library`: libFuzzer provides `main`,
// so a plain `swift build` of this package does not link, and the root package never sees it.
//
// The parsers are compiled from their own files in Sources/SkiffAPI (symlinks in
// Sources/FuzzedParsers), together with the invariants they are checked against. So this build
// needs swift-nio only, not Hummingbird: about a minute on two cores instead of ten. The same
// invariant files run in the root package's tests (Tests/SkiffAPITests/FuzzOracles, symlinks too),
// over the corpus kept in Fuzz/corpus.
let package = Package(
    name: "skiff-fuzz",
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2")
    ],
    targets: [
        // FastPathRequestHead, ChunkedBodyFraming and JSONValidator as Skiff builds them, and the
        // invariants each must keep (RequestHeadOracle, ChunkedBodyOracle, JSONValidatorOracle).
        .target(
            name: "FuzzedParsers",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .executableTarget(name: "FuzzRequestHead", dependencies: ["FuzzedParsers"]),
        .executableTarget(name: "FuzzChunkedBody", dependencies: ["FuzzedParsers"]),
        .executableTarget(name: "FuzzJSONValidator", dependencies: ["FuzzedParsers"]),
    ]
)
