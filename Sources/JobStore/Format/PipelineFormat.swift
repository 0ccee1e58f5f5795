/// The pipeline and step record codecs: every byte of a stored pipeline, in this one file.
/// docs/FORMAT.md is its prose twin.
///
/// A pipeline record is the value stored under the pipeline's 16-byte id in `pipelines`:
///
/// | offset | size | field |
/// |-------:|-----:|-------|
/// | 0  | 1 | record version (2; 1 has no seal) |
/// | 1  | 1 | state (``PipelineState`` raw value) |
/// | 2  | 1 | flags: bit 0 fail-fast, bit 1 finished |
/// | 3  | 1 | reserved (0) |
/// | 4  | 4 | definition version (UInt32 LE) |
/// | 8  | 8 | createdAt (Int64 LE, µs since the epoch) |
/// | 16 | 8 | updatedAt |
/// | 24 | 8 | finishedAt (0 unless finished) |
/// | 32 | 2 | step count (UInt16 LE) |
/// | 34 | 2 | succeeded steps (UInt16 LE) |
/// | 36 | 2 | failed steps (UInt16 LE) |
/// | 38 | 2 | cancelled steps (UInt16 LE) |
/// | 40 | … | name (UInt8 length + UTF-8) |
/// | end − 4 | 4 | version 2: the seal (``Seal``, a CRC32C of every byte before it, UInt32 LE) |
///
/// A step record is the value stored under pipeline id · step index (UInt16 BE) in
/// `pipeline_steps`:
///
/// | offset | size | field |
/// |-------:|-----:|-------|
/// | 0  | 1 | record version (2; 1 has no seal) |
/// | 1  | 1 | reserved (0) |
/// | 2  | 2 | remaining dependencies: dependencies not yet succeeded (UInt16 LE) |
/// | 4  | 16 | the step's job id (big-endian, as in keys) |
/// | 20 | 2 | dependent count E (UInt16 LE) |
/// | 22 | 2·E | the dependents' step indexes (UInt16 LE each), ascending |
/// | 22 + 2·E | … | name (UInt8 length + UTF-8) |
/// | end − 4 | 4 | version 2: the seal |
///
/// A step's dependencies are not stored: they are the steps listing it as a dependent. So
/// advancing a step rewrites only its dependents' small records, whatever their in-degree.
enum PipelineFormat {
    /// The version this program writes (of both records).
    static let currentVersion: UInt8 = 2
    static let headerSize = 40
    static let stepHeaderSize = 22

    enum Flag {
        static let failFast: UInt8 = 1 << 0
        static let finished: UInt8 = 1 << 1
    }

    static func encode(_ pipeline: Pipeline) -> [UInt8] {
        let size = headerSize + 1 + pipeline.name.utf8.count + Seal.size
        var flags: UInt8 = 0
        if pipeline.failFast { flags |= Flag.failFast }
        if pipeline.finishedAt != nil { flags |= Flag.finished }
        return [UInt8](unsafeUninitializedCapacity: size) { buffer, initialized in
            var writer = RecordWriter(buffer: UnsafeMutableRawBufferPointer(buffer))
            writer.put(currentVersion)
            writer.put(pipeline.state.rawValue)
            writer.put(flags)
            writer.put(UInt8(0))
            writer.put(pipeline.version)
            writer.put(pipeline.createdAt.microseconds)
            writer.put(pipeline.updatedAt.microseconds)
            writer.put(pipeline.finishedAt?.microseconds ?? 0)
            writer.put(UInt16(pipeline.stepCount))
            writer.put(UInt16(pipeline.succeededSteps))
            writer.put(UInt16(pipeline.failedSteps))
            writer.put(UInt16(pipeline.cancelledSteps))
            writer.putShort(pipeline.name.utf8)
            Seal.put(&writer)
            initialized = writer.offset
        }
    }

    static func decode(_ record: UnsafeRawBufferPointer, id: PipelineID) throws -> Pipeline {
        let bytes = try body(record, .pipeline(id))
        var reader = RecordReader(bytes: bytes, subject: .pipeline(id))
        _ = try reader.u8()
        let stateRaw = try reader.u8()
        guard let state = PipelineState(rawValue: stateRaw) else { throw reader.corrupt("state byte \(stateRaw) is not a known state") }
        let flags = try reader.u8()
        if flags & ~(Flag.failFast | Flag.finished) != 0 { throw reader.corrupt("unknown flag bits \(flags)") }
        _ = try reader.u8()
        let version = try reader.integer(UInt32.self)
        let createdAt = Timestamp(microseconds: try reader.i64())
        let updatedAt = Timestamp(microseconds: try reader.i64())
        let finishedAt = try reader.i64()
        let stepCount = Int(try reader.u16())
        let succeeded = Int(try reader.u16())
        let failed = Int(try reader.u16())
        let cancelled = Int(try reader.u16())
        if succeeded + failed + cancelled > stepCount {
            throw reader.corrupt("\(succeeded + failed + cancelled) finished steps of \(stepCount)")
        }
        let name = try reader.shortString("name")
        guard reader.offset == bytes.count else { throw reader.corrupt("\(bytes.count - reader.offset) bytes left over after the name") }
        return Pipeline(
            id: id, name: name, version: version, failFast: flags & Flag.failFast != 0, state: state, createdAt: createdAt,
            updatedAt: updatedAt, finishedAt: flags & Flag.finished != 0 ? Timestamp(microseconds: finishedAt) : nil,
            stepCount: stepCount, succeededSteps: succeeded, failedSteps: failed, cancelledSteps: cancelled)
    }

    static func encode(_ step: PipelineStepRecord) -> [UInt8] {
        let size = stepHeaderSize + 2 * step.dependents.count + 1 + step.name.utf8.count + Seal.size
        return [UInt8](unsafeUninitializedCapacity: size) { buffer, initialized in
            var writer = RecordWriter(buffer: UnsafeMutableRawBufferPointer(buffer))
            writer.put(currentVersion)
            writer.put(UInt8(0))
            writer.put(UInt16(step.remainingDependencies))
            writer.put128(step.jobID.high, step.jobID.low)
            writer.put(UInt16(step.dependents.count))
            for dependent in step.dependents { writer.put(UInt16(dependent)) }
            writer.putShort(step.name.utf8)
            Seal.put(&writer)
            initialized = writer.offset
        }
    }

    static func decodeStep(_ record: UnsafeRawBufferPointer, pipeline: PipelineID, index: Int) throws -> PipelineStepRecord {
        let bytes = try body(record, .step(pipeline, index))
        var reader = RecordReader(bytes: bytes, subject: .step(pipeline, index))
        _ = try reader.u8()
        _ = try reader.u8()
        let remaining = Int(try reader.u16())
        let (high, low) = try reader.u128()
        let dependentCount = Int(try reader.u16())
        var dependents: [Int] = []
        dependents.reserveCapacity(dependentCount)
        for _ in 0..<dependentCount { dependents.append(Int(try reader.u16())) }
        let name = try reader.shortString("name")
        guard reader.offset == bytes.count else { throw reader.corrupt("\(bytes.count - reader.offset) bytes left over after the name") }
        return PipelineStepRecord(
            index: index, name: name, jobID: JobID(high: high, low: low), dependents: dependents, remainingDependencies: remaining)
    }

    /// A record's bytes without its seal, once its version is known and its seal matches them
    /// (version 2); a version-1 record as it is.
    private static func body(_ record: UnsafeRawBufferPointer, _ subject: RecordSubject) throws -> UnsafeRawBufferPointer {
        try Seal.body(of: record, subject, current: currentVersion, sealedSince: 2)
    }
}
