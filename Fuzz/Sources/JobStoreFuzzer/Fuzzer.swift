import CFuzz
import Foundation
@_spi(Fuzzing) import JobStore
@_spi(Fuzzing) import JobStoreLines

#if canImport(Glibc)
import Glibc
#endif

/// What this process fuzzes, from JOBSTORE_FUZZ_TARGET (default: job-record): a decoder of
/// stored data, or `import-line`, the admin tool's import parser.
enum Target {
    case stored(Fuzzing.Target)
    /// One line of an export, restored into this store in a transaction rolled back.
    case importLine(JobRepository)
}

let importLine = "import-line"

let target: Target = {
    guard let name = getenv("JOBSTORE_FUZZ_TARGET").map({ String(cString: $0) }) else { return .stored(.jobRecord) }
    if name == importLine {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("jobstore-fuzz-\(getpid())").path
        do {
            return .importLine(try JobRepository(path: directory, options: JobStoreOptions(durability: .noSync)))
        } catch {
            print("cannot open a store in \(directory): \(error)")
            exit(2)
        }
    }
    guard let target = Fuzzing.Target(rawValue: name) else {
        print("JOBSTORE_FUZZ_TARGET=\(name) is not one of \(Fuzzing.Target.allCases.map(\.rawValue) + [importLine])")
        exit(2)
    }
    return .stored(target)
}()

/// libFuzzer's entry point: one input, decoded every way the store reads that kind of data.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    switch target {
    case .stored(let target): Fuzzing.run(target, bytes)
    case .importLine(let store): LineFuzzing.run(bytes, store: store)
    }
    return 0
}

/// The executable's entry point (SwiftPM links an executable's `main` to `<module>_main`):
/// libFuzzer's driver, with the target above.
@_cdecl("JobStoreFuzzer_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    // Opened before the first input: libFuzzer counts what an input allocates and keeps as a leak.
    _ = target
    return LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzz(data!, size) }
}
