import Foundation
import Logging
import SkiffAPI

/// One JSON object per line on standard output, with the fields Cloud Logging reads
/// (`severity`, `message`, `time`) and the structured metadata beside them.
struct JSONLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]
    private static let lock = NSLock()

    init(label: String) { self.label = label }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var fields = metadata
        if let extra = event.metadata { fields.merge(extra) { $1 } }
        var line = "{"
        line += #""severity":"# + JSONText.quoted(Self.severity(event.level))
        line += #","message":"# + JSONText.quoted("\(event.message)")
        line += #","time":"# + JSONText.quoted(JSONText.timestamp(milliseconds: Int64(Date().timeIntervalSince1970 * 1000)))
        line += #","logger":"# + JSONText.quoted(label)
        for (key, value) in fields.sorted(by: { $0.key < $1.key }) {
            line += "," + JSONText.quoted(key) + ":" + JSONText.quoted("\(value)")
        }
        line += "}\n"
        Self.lock.lock()
        FileHandle.standardOutput.write(Data(line.utf8))
        Self.lock.unlock()
    }

    static func severity(_ level: Logger.Level) -> String {
        switch level {
        case .trace, .debug: return "DEBUG"
        case .info: return "INFO"
        case .notice: return "NOTICE"
        case .warning: return "WARNING"
        case .error: return "ERROR"
        case .critical: return "CRITICAL"
        }
    }
}
