/// The OpenAPI 3.1 description of every route (`Rendering/openapi.yaml`, linked from the
/// repository root and compiled into the binary), served as is at `GET /openapi.yaml`.
/// OpenAPIDocumentTests holds it to the routes the router serves.
enum OpenAPIDocument {
    static let yaml = String(decoding: PackageResources.openapi_yaml, as: UTF8.self)
}
