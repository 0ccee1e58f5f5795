/// What the hot-path benchmarks (`Benchmarks/HotPaths`) measure below the store's API: a job
/// record's encoding and decoding alone. Not API: `@_spi(Benchmarks) import JobStore`.
@_spi(Benchmarks)
public enum BenchmarkHooks {
    /// The record of `job` as the store writes it (no timeline).
    public static func encode(_ job: Job) -> [UInt8] { RecordFormat.encode(job) }

    /// Decodes a record as the store reads one.
    public static func decode(_ bytes: UnsafeRawBufferPointer, id: JobID) throws -> Job { try RecordFormat.decode(bytes, id: id) }
}
