import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import SkiffQueue
import SkiffTestSupport
import Testing

@testable import SkiffAPI

/// `openapi.yaml` describes exactly the routes the router serves, and `/openapi.yaml` serves the
/// file as it is.
@Suite("OpenAPI document") struct OpenAPIDocumentTests {
    /// `METHOD /path/{param}` for every operation in the document.
    private static func documentedOperations(_ yaml: String) -> Set<String> {
        var operations: Set<String> = []
        var path: String?
        for line in yaml.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("  /"), line.hasSuffix(":") {
                path = String(line.dropFirst(2).dropLast())
            } else if line.hasPrefix("    "), !line.hasPrefix("     "), let path, let method = line.dropFirst(4).split(separator: ":").first,
                ["get", "put", "post", "delete", "patch", "head", "options"].contains(method)
            {
                operations.insert("\(method.uppercased()) \(path)")
            } else if !line.hasPrefix(" "), !line.isEmpty {
                path = nil
            }
        }
        return operations
    }

    @Test func theDocumentDescribesExactlyTheRoutesServed() async throws {
        // With a payload store that signs links, so that its route is served too.
        let directory = NSTemporaryDirectory() + TestEnvironment.uniqueName("openapi-payloads")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try FileSystemPayloadStore(root: directory, urlSigner: PayloadURLSigner(secret: Array(repeating: 7, count: 32)))
        let backend = OffloadingQueues(
            MemoryQueueBackend(eventLoop: NIOSingletons.posixEventLoopGroup.next()), offload: PayloadOffload(store: store, maximumBodyBytes: 1 << 20),
            logger: Logger(label: "openapi"))
        let router = buildRouter(backend: backend, configuration: SkiffConfiguration())
        let documented = Self.documentedOperations(OpenAPIDocument.yaml)
        #expect(documented.count > 15)
        // A route the router holds is served unless it answers 405 (the `Allow` routes).
        let routes = router.routes.map { (pattern: $0.path.description, method: $0.method) }
        let app = Application(router: router)
        let served = try await app.test(.router) { client in
            var served: Set<String> = []
            for route in routes {
                let pattern = route.pattern
                let concrete = pattern.replacing(":queue", with: "openapi-check").replacing(":receipt", with: "01M9174ZM6A7ZJ6PJYM5RXWP14.1")
                    .replacing(":asset", with: "console.js").replacing(":id", with: "G1M9174ZM6A7ZJ6PJYM5RXWP14")
                let response = try await client.execute(
                    uri: concrete + (route.method == .get && pattern.hasPrefix("/api/") ? "?timeout=0" : ""), method: route.method)
                if response.status != .methodNotAllowed {
                    served.insert(
                        "\(route.method.rawValue) "
                            + pattern.replacing(":queue", with: "{queue}").replacing(":receipt", with: "{receipt}").replacing(":asset", with: "{asset}")
                            .replacing(":id", with: "{id}")
                    )
                }
            }
            return served
        }
        #expect(served.subtracting(documented).isEmpty, "served but not documented: \(served.subtracting(documented).sorted())")
        #expect(documented.subtracting(served).isEmpty, "documented but not served: \(documented.subtracting(served).sorted())")
    }

    @Test func theDocumentIsServedAsItIs() async throws {
        try await makeApplication(.memory).test(.router) { client in
            let response = try await client.execute(uri: "/openapi.yaml", method: .get)
            #expect(response.status == .ok)
            #expect(response.text == OpenAPIDocument.yaml)
            #expect(response.text.hasPrefix("openapi: 3.1"))
        }
    }
}
