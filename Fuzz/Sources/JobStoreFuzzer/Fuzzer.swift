import CFuzz
@_spi(Fuzzing) import JobStore

#if canImport(Glibc)
import Glibc
#endif

/// The decoder this process fuzzes, from JOBSTORE_FUZZ_TARGET (default: job-record).
let target: Fuzzing.Target = {
    guard let name = getenv("JOBSTORE_FUZZ_TARGET").map({ String(cString: $0) }) else { return .jobRecord }
    guard let target = Fuzzing.Target(rawValue: name) else {
        print("JOBSTORE_FUZZ_TARGET=\(name) is not one of \(Fuzzing.Target.allCases.map(\.rawValue))")
        exit(2)
    }
    return target
}()

/// libFuzzer's entry point: one input, decoded every way the store reads that kind of data.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    Fuzzing.run(target, UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

/// The executable's entry point (SwiftPM links an executable's `main` to `<module>_main`):
/// libFuzzer's driver, with the target above.
@_cdecl("JobStoreFuzzer_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzz(data!, size) }
}
