#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The part of every fuzz target's entry point that is the same.
public enum FuzzInput {
    /// Checks libFuzzer's input with `oracle`; a broken invariant is printed and aborts the run,
    /// which libFuzzer records as a crash and writes the input to a file.
    public static func check(_ data: UnsafePointer<UInt8>?, _ count: Int, with oracle: ([UInt8]) throws(OracleFailure) -> Void) {
        let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: count)) } ?? []
        do {
            try oracle(bytes)
        } catch {
            let message = Array("INVARIANT BROKEN: \(error.description)\n".utf8)
            _ = message.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
            abort()
        }
    }
}

/// libFuzzer's driver, for an entry point of our own (`LLVMFuzzerRunDriver`, libFuzzer's API for
/// programs that have their own `main`).
@_silgen_name("LLVMFuzzerRunDriver")
private func runFuzzerDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ testOneInput: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

extension FuzzInput {
    /// Runs libFuzzer with the process's arguments. SwiftPM links an executable's `main` to
    /// `<module>_main`, so libFuzzer's own `main` is never linked: each target's `<module>_main`
    /// calls this instead.
    public static func runDriver(
        _ argc: CInt,
        _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>,
        _ testOneInput: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
    ) -> CInt {
        var argc = argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = argv
        return runFuzzerDriver(&argc, &argv, testOneInput)
    }
}
