import Foundation
import Synchronization

/// A `redis-server` owned by one test, for tests that stop and restart Redis.
public final class RedisServerProcess: @unchecked Sendable {
    /// Chosen when the server is made; a first start that finds it taken moves to another.
    public private(set) var port: Int
    private var process: Process?
    private let directory: URL
    /// The port may still change: it was picked here and no server of ours has listened on it.
    private var portIsProvisional: Bool

    public var url: String { "redis://127.0.0.1:\(port)" }

    public init(port: Int? = nil) throws {
        self.port = try port ?? Self.freePort()
        portIsProvisional = port == nil
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("skiff-redis-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    /// Starts the server and waits until it accepts connections as itself: a free port can be
    /// taken by another test's server between being picked and being bound, and that server's
    /// answers must not pass for this one's (its end would look like a crash of this one).
    public func start(extraArguments: [String] = []) throws {
        for _ in 0..<5 {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: try Self.redisServerPath())
            process.arguments = ["--port", "\(port)", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", directory.path] + extraArguments
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            self.process = process
            for _ in 0..<100 {
                if !process.isRunning { break }
                if Self.listens(process, on: port) {
                    portIsProvisional = false
                    return
                }
                usleep(20_000)
            }
            kill()
            guard portIsProvisional else { break }
            port = try Self.freePort()
        }
        throw CocoaError(.fileReadUnknown, userInfo: [NSLocalizedDescriptionKey: "redis-server did not start on port \(port)"])
    }

    /// Whether `process` holds the socket listening on 127.0.0.1:`port` (from `/proc`, so that a
    /// server that wants a password is told apart as well). Cheap: a connect first, then one
    /// search of the kernel's socket table for the listening line.
    static func listens(_ process: Process, on port: Int) -> Bool {
        guard canConnect(port: port) else { return false }
        // Read to the end: a `/proc` file says it is empty, and a reader going by its size stops early.
        guard let file = FileHandle(forReadingAtPath: "/proc/net/tcp"), let table = try? file.readToEnd() else { return true }
        try? file.close()
        // `sl local rem st tx:rx tr:when retrnsmt uid timeout inode`, remote 0 and state LISTEN.
        let prefix = Data(String(format: " 0100007F:%04X 00000000:0000 0A ", port).utf8)
        guard let found = table.range(of: prefix) else { return false }
        let rest = table[found.upperBound...].prefix { $0 != UInt8(ascii: "\n") }
        let fields = String(decoding: rest, as: UTF8.self).split(separator: " ")
        guard fields.count > 5 else { return false }
        let socket = "socket:[\(fields[5])]"
        let descriptors = "/proc/\(process.processIdentifier)/fd"
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: descriptors)) ?? []
        return entries.contains { (try? FileManager.default.destinationOfSymbolicLink(atPath: "\(descriptors)/\($0)")) == socket }
    }

    /// Kills the server at once (SIGKILL), like a crash.
    public func kill() {
        guard let process else { return }
        Foundation.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        self.process = nil
    }

    deinit {
        kill()
        try? FileManager.default.removeItem(at: directory)
    }

    public static func redisServerPath() throws -> String {
        for path in ["/usr/bin/redis-server", "/usr/local/bin/redis-server"] where FileManager.default.isExecutableFile(atPath: path) {
            return path
        }
        throw CocoaError(.fileNoSuchFile, userInfo: [NSLocalizedDescriptionKey: "redis-server not found; run the tests through `make test`"])
    }

    /// Ports handed out by ``freePort()`` in this process.
    private static let handedOut = Mutex<Set<Int>>([])

    /// A TCP port free on 127.0.0.1 a moment ago, that no other caller in this process got: a test
    /// whose server was killed keeps reconnecting to its port and must not find another test's
    /// server there. Below the kernel's ephemeral range (32768 up), so that an outgoing connection
    /// cannot take the port of a server that is restarting, and clear of the Redis Cluster that
    /// `scripts/test.sh` starts (17000–21005 and their bus ports 27000–31005).
    public static func freePort() throws -> Int {
        for _ in 0..<1_000 {
            let port = Int.random(in: 12_000..<16_000)
            guard handedOut.withLock({ $0.insert(port).inserted }) else { continue }
            if isFree(port) { return port }
        }
        throw POSIXError(.EADDRINUSE)
    }

    private static func isFree(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        return bound == 0
    }

    public static func canConnect(port: Int) -> Bool {
        guard let fd = LoopbackSocket.connect(port: port) else { return false }
        close(fd)
        return true
    }
}
