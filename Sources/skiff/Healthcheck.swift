import ArgumentParser
import Configuration
import Foundation
import SkiffAPI

#if canImport(Glibc)
import Glibc
#endif

/// `skiff healthcheck`: exits 0 when this host's replica answers `GET /health` with 200. For
/// container health checks in images that have no curl.
struct Healthcheck: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Exit 0 if the local replica's /health answers 200.")

    @Option(help: "Port of the local replica (env PORT, default 8080).") var port: Int?

    func run() throws {
        let environment = SettingsReader(ConfigReader(provider: EnvironmentVariablesProvider()))
        let port = try self.port ?? environment.integer(Settings.port, in: 1...65535) ?? 8080
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ExitCode(2) }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 3, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw ExitCode(1) }
        let request = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        _ = request.withCString { send(fd, $0, strlen($0), 0) }
        var buffer = [UInt8](repeating: 0, count: 64)
        let count = recv(fd, &buffer, buffer.count, 0)
        guard count > 12 else { throw ExitCode(1) }
        let statusLine = String(decoding: buffer[0..<count], as: UTF8.self)
        guard statusLine.hasPrefix("HTTP/1.1 200") else { throw ExitCode(1) }
    }
}
