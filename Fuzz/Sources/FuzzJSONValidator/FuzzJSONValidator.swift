import FuzzedParsers

/// libFuzzer's entry point: one input, checked against every invariant of `JSONValidatorOracle`. A broken
/// invariant prints what broke and aborts, which libFuzzer records as a crash with its input.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    FuzzInput.check(data, count, with: JSONValidatorOracle.check)
    return 0
}

/// The process's entry point under the name SwiftPM gives it (see `FuzzInput.runDriver`).
@_cdecl("FuzzJSONValidator_main")
public func main(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    FuzzInput.runDriver(argc, argv, fuzz)
}
