import Foundation

/// A TCP connection to 127.0.0.1, as a plain file descriptor, for tests that need a client the
/// HTTP clients cannot be: one that never reads, resets, or sends bytes one at a time.
public enum LoopbackSocket {
    /// A connected socket (the caller closes it), or `nil` when nothing accepts on `port`.
    /// - Parameter receiveBufferBytes: a small receive buffer makes a client that does not read
    ///   hold up the server's writes (`SO_RCVBUF`, set before connecting).
    public static func connect(port: Int, receiveTimeoutSeconds: Int = 10, receiveBufferBytes: Int32? = nil) -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        var timeout = timeval(tv_sec: receiveTimeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        if var size = receiveBufferBytes { setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size)) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Foundation.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            close(fd)
            return nil
        }
        return fd
    }
}
