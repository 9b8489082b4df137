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
    /// server that wants a password is told apart as well).
    static func listens(_ process: Process, on port: Int) -> Bool {
        guard let table = try? String(contentsOfFile: "/proc/net/tcp", encoding: .utf8) else { return canConnect(port: port) }
        let local = String(format: "0100007F:%04X", port)
        var inode: Substring?
        for line in table.split(separator: "\n") {
            let fields = line.split(separator: " ")
            if fields.count > 9, fields[1] == local, fields[3] == "0A" { inode = fields[9] }
        }
        guard let inode else { return false }
        let descriptors = "/proc/\(process.processIdentifier)/fd"
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: descriptors)) ?? []
        return entries.contains { (try? FileManager.default.destinationOfSymbolicLink(atPath: "\(descriptors)/\($0)")) == "socket:[\(inode)]" }
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

    /// A TCP port that was free a moment ago on 127.0.0.1, and that no other caller in this process
    /// got: a test whose server was killed keeps reconnecting to its port, and must not find another
    /// test's server there (its scripts would run in that test's Redis).
    public static func freePort() throws -> Int {
        for _ in 0..<100 {
            let port = try kernelsFreePort()
            if handedOut.withLock({ $0.insert(port).inserted }) { return port }
        }
        throw POSIXError(.EADDRINUSE)
    }

    private static func kernelsFreePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard bound == 0 else { throw POSIXError(.EADDRINUSE) }
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    public static func canConnect(port: Int) -> Bool {
        guard let fd = LoopbackSocket.connect(port: port) else { return false }
        close(fd)
        return true
    }
}
