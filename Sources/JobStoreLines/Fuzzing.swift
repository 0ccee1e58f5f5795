import Foundation
import JobStore

/// The entry point for the fuzzer (`Fuzz/`, target `import-line`) and the corpus replay test:
/// arbitrary bytes read as one line of an export, the way `jobstore import` reads a file. Not
/// API: `@_spi(Fuzzing) import JobStoreLines`.
@_spi(Fuzzing)
public enum LineFuzzing {
    /// Decodes `bytes` as an export line; a job it accepts is restored into `store` (when given)
    /// in a transaction that is rolled back, as `import --dry-run` does, so the store's own
    /// checks see it too. Returns whether the line was accepted. It must never crash, whatever
    /// the bytes: a bad line is an error, swallowed here.
    @discardableResult
    public static func run(_ bytes: UnsafeRawBufferPointer, store: JobRepository?) -> Bool {
        struct RolledBack: Error {}
        let line = ArraySlice(bytes.bindMemory(to: UInt8.self))
        if ExportLine.isBlank(line) { return false }
        guard let item = try? ExportLine(line, decoder) else { return false }
        guard case .job(let job, _) = item, let store else { return true }
        do {
            try store.write { txn in
                try txn.restore(job)
                throw RolledBack()
            }
        } catch is RolledBack {
            return true
        } catch {}
        return false
    }

    private static let decoder = JSONDecoder()
}
