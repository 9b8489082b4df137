import HTTPTypes
public import Hummingbird
import NIOCore

/// The web console at `/ui/` (docs/console.md): three files compiled into the binary
/// (`Console/Assets`), served by every replica.
///
/// The files hold no data, so they are served without a key; everything the page shows comes from
/// the API, called with the key its user signs in with (kept in the tab's session storage), which
/// needs the admin scope when keys are configured. A strict Content-Security-Policy allows the page
/// its own script, style and API only: no inline script, nothing from elsewhere, no framing.
public struct ConsoleController: Sendable {
    public typealias Context = SkiffRequestContext

    public init() {}

    /// A file of the console with the headers it is served with.
    struct Asset: Sendable {
        let body: ByteBuffer
        let contentType: String
        /// A strong validator of the bytes, so a browser revalidates with a 304 instead of a body.
        let entityTag: String

        init(_ bytes: [UInt8], contentType: String) {
            self.body = ByteBuffer(bytes: bytes)
            self.contentType = contentType
            // FNV-1a over the bytes: they are fixed for the life of the binary.
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325
            for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
            self.entityTag = "\"" + String(hash, radix: 16) + "\""
        }
    }

    static let index = Asset(PackageResources.index_html, contentType: "text/html; charset=utf-8")
    static let assets: [String: Asset] = [
        "console.js": Asset(PackageResources.console_js, contentType: "text/javascript; charset=utf-8"),
        "console.css": Asset(PackageResources.console_css, contentType: "text/css; charset=utf-8"),
    ]

    static let contentSecurityPolicy =
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

    public func addRoutes(to router: Router<Context>) {
        router.get("/ui", use: page)
        router.addMethodNotAllowed(path: "/ui", allowed: [.get])
        router.get("/ui/:asset", use: asset)
        router.addMethodNotAllowed(path: "/ui/:asset", allowed: [.get])
    }

    /// `/ui` moves to `/ui/`, so that the page's relative URLs (`console.js`) stay under it.
    @Sendable func page(request: Request, context: Context) async throws -> Response {
        guard request.uri.path.hasSuffix("/") else {
            return Response(status: .permanentRedirect, headers: [.location: "/ui/", .contentLength: "0"])
        }
        return Self.serve(Self.index, to: request)
    }

    @Sendable func asset(request: Request, context: Context) async throws -> Response {
        guard let name = context.parameters.get("asset"), let asset = Self.assets[name] else {
            throw APIError(.notFound, "the console has no file \(request.uri.path)")
        }
        return Self.serve(asset, to: request)
    }

    static func serve(_ asset: Asset, to request: Request) -> Response {
        var headers: HTTPFields = [
            .eTag: asset.entityTag,
            // Revalidated on every load (a 304 is a few bytes): a new binary's console is seen at once.
            .cacheControl: "no-cache",
            .contentSecurityPolicy: contentSecurityPolicy,
            .xContentTypeOptions: "nosniff",
            .init("Referrer-Policy")!: "no-referrer",
            .init("Cross-Origin-Opener-Policy")!: "same-origin",
        ]
        let tags = request.headers[values: .ifNoneMatch].flatMap { $0.split(separator: ",").map { String($0.filter { !$0.isWhitespace }) } }
        if tags.contains(asset.entityTag) || tags.contains("*") {
            headers[.contentLength] = "0"
            return Response(status: .notModified, headers: headers)
        }
        headers[.contentType] = asset.contentType
        headers[.contentLength] = String(asset.body.readableBytes)
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: asset.body))
    }
}
