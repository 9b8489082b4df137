import Foundation
import Logging
import OTel
import ServiceLifecycle

/// Tracing's configuration (docs/tracing.md): on when an OTLP endpoint is set, off otherwise.
public struct TracingSettings: Sendable, Equatable {
    /// Where spans go over OTLP/HTTP: the full URL of the traces endpoint
    /// (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, or `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/traces`).
    public var tracesEndpoint: String
    /// `http/protobuf` (the default) or `http/json`.
    public var usesJSON: Bool
    public var serviceName: String
    /// How long finished spans wait to be exported in a batch.
    public var exportDelay: Duration

    public init(tracesEndpoint: String, usesJSON: Bool = false, serviceName: String = "skiff", exportDelay: Duration = .seconds(5)) {
        self.tracesEndpoint = tracesEndpoint
        self.usesJSON = usesJSON
        self.serviceName = serviceName
        self.exportDelay = exportDelay
    }

    /// The traces endpoint for `OTEL_EXPORTER_OTLP_ENDPOINT`, a base URL.
    static func tracesEndpoint(base: String) -> String {
        base.hasSuffix("/") ? base + "v1/traces" : base + "/v1/traces"
    }
}

/// A tracer exporting over OTLP/HTTP, and the service that batches and exports its spans (it
/// flushes what is left when the replica stops).
struct TracingBackend: Sendable {
    let tracing: MessageTracing
    let service: any Service

    /// - Parameter environment: the process's, which swift-otel also reads (`OTEL_*`).
    init(
        _ settings: TracingSettings, replicaID: String, logger: Logger, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws {
        // swift-otel reads this one itself, after our configuration, and stops the process on a
        // protocol this build lacks: refused here instead (tracing off, and said so).
        let tracesProtocol = environment["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"]
        if let tracesProtocol, !["http/protobuf", "http/json", ""].contains(tracesProtocol) {
            throw TracingConfigurationError(message: "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL \(tracesProtocol) is not built in: http/protobuf or http/json")
        }
        var configuration = OTel.Configuration.default
        configuration.serviceName = settings.serviceName
        configuration.resourceAttributes["service.instance.id"] = replicaID
        configuration.diagnosticLogger = .custom(logger)
        configuration.diagnosticLogLevel = .warning
        configuration.logs.enabled = false
        configuration.metrics.enabled = false
        configuration.traces.enabled = true
        configuration.traces.otlpExporter.endpoint = settings.tracesEndpoint
        configuration.traces.otlpExporter.protocol = settings.usesJSON ? .httpJSON : .httpProtobuf
        configuration.traces.batchSpanProcessor.scheduleDelay = settings.exportDelay
        let (tracer, service) = try OTel.makeTracingBackend(configuration: configuration)
        self.tracing = MessageTracing(tracer: tracer)
        self.service = service
    }
}

struct TracingConfigurationError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}
