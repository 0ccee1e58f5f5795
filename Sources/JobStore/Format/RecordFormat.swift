/// The job record codec: every byte of a stored job, in this one file. docs/FORMAT.md is its
/// prose twin.
///
/// A record is the value stored under the job's 16-byte id in the `jobs` database:
///
/// | offset | size | field |
/// |-------:|-----:|-------|
/// | 0  | 1 | format version (4; 3 has no timeout or headers, 2 no seal either, 1 no timeline) |
/// | 1  | 1 | state (`JobState` raw value) |
/// | 2  | 1 | priority |
/// | 3  | 1 | flags: bit 0 tenant, 1 unique key, 2 pipeline, 3 result, 4 lease, 5 timeout, 6 headers (5 and 6: version 4) |
/// | 4  | 2 | attempts (UInt16 LE) |
/// | 6  | 2 | max attempts (UInt16 LE) |
/// | 8  | 8 | createdAt (Int64 LE, µs since the epoch) |
/// | 16 | 8 | updatedAt |
/// | 24 | 8 | runAt |
/// | 32 | 8 | lease expiry (0 without a lease) |
/// | 40 | … | variable fields, in this order: name (UInt8 length + UTF-8), queue (UInt8 length + UTF-8), [tenant (UInt8 length + UTF-8)], [unique key (UInt8 length + UTF-8)], [lease owner (16 bytes, big-endian)], [pipeline id (16 bytes, big-endian, as in keys) + step (UInt16 LE)], payload (UInt32 LE length + bytes), [result (UInt32 LE length + bytes)], [timeout (Int64 LE, µs)], [headers: count (UInt8), each: name (UInt8 length + UTF-8), value (UInt16 LE length + UTF-8), in the names' byte order], error count (UInt8), each error: attempt (UInt16 LE), at (Int64 LE), message (UInt16 LE length + UTF-8); version 2 and 3: the timeline block (`EventFormat`), then its length (UInt16 LE); version 3 and 4: the seal (`Seal`, a CRC32C of every byte before it, UInt32 LE) as the record's last four bytes |
///
/// Bracketed fields are present when their flag is set. The fixed header lets state, priority,
/// times and attempts be read straight from LMDB's page without decoding the rest (such in-place
/// reads do not check the seal; `decode(_:id:)`, `timeline(_:id:)` and so `verify()` do); the
/// trailing length finds the timeline without decoding the fields before it.
public enum RecordFormat {
    /// The version this program writes. Every older version stays readable.
    public static let currentVersion: UInt8 = 4
    /// Size of the fixed header.
    static let headerSize = 40

    enum Flag {
        static let tenant: UInt8 = 1 << 0
        static let uniqueKey: UInt8 = 1 << 1
        static let pipeline: UInt8 = 1 << 2
        static let result: UInt8 = 1 << 3
        static let lease: UInt8 = 1 << 4
        static let timeout: UInt8 = 1 << 5
        static let headers: UInt8 = 1 << 6
        /// The bits a record of `version` may set.
        static func known(inVersion version: UInt8) -> UInt8 {
            version >= 4 ? 0x7f : 0x1f
        }
    }

    /// Encodes a job (already validated) into a record of the current version, with `timeline`
    /// (a timeline block, ``EventFormat/appending(_:to:id:)``; empty for none). Error messages
    /// are cut to their limit and only the last ``JobLimits/maxErrors`` errors are kept.
    static func encode(_ job: Job, timeline: [UInt8] = []) -> [UInt8] {
        timeline.withUnsafeBytes { timeline in
            [UInt8](unsafeUninitializedCapacity: encodedSize(job, timelineCount: timeline.count)) { buffer, count in
                count = write(job, timeline: timeline, into: UnsafeMutableRawBufferPointer(buffer))
            }
        }
    }

    /// The bytes ``write(_:timeline:into:)`` writes.
    ///
    /// The write path calls both outside any closure, into a buffer its transaction reuses
    /// (``JobTransaction``): a `Job` captured by the closure of a temporary allocation was copied
    /// whole (a retain per text and array) for each use and each copy destroyed — a third of
    /// the encoding's time in a load.
    static func encodedSize(_ job: Job, timelineCount: Int) -> Int {
        var size = headerSize + 1 + job.name.utf8.count + 1 + job.queue.utf8.count + 4 + job.payload.count + 1
        if let tenant = job.tenant { size += 1 + tenant.utf8.count }
        if let key = job.uniqueKey { size += 1 + key.utf8.count }
        if job.lease != nil { size += 16 }
        if job.pipeline != nil { size += 18 }
        if let result = job.result { size += 4 + result.count }
        if job.timeout != nil { size += 8 }
        size += RecordWriter.headersSize(job.headers)
        // Only the last errors are kept (a slice, read here and in `write`: an array of pairs
        // cost an allocation and a tuple type's metadata lookup on every encode).
        for error in job.errors.suffix(JobLimits.maxErrors) {
            size += 12 + JobLimits.truncated(error.message, to: JobLimits.maxErrorMessageBytes).count
        }
        return size + timelineCount + 2 + Seal.size
    }

    /// Writes the record of `job` at the start of `raw` (at least ``encodedSize(_:timelineCount:)``
    /// bytes); returns its length.
    static func write(_ job: Job, timeline: UnsafeRawBufferPointer, into raw: UnsafeMutableRawBufferPointer) -> Int {
        var flags: UInt8 = 0
        if job.tenant != nil { flags |= Flag.tenant }
        if job.uniqueKey != nil { flags |= Flag.uniqueKey }
        if job.pipeline != nil { flags |= Flag.pipeline }
        if job.result != nil { flags |= Flag.result }
        if job.lease != nil { flags |= Flag.lease }
        if job.timeout != nil { flags |= Flag.timeout }
        if !job.headers.isEmpty { flags |= Flag.headers }

        var writer = RecordWriter(buffer: raw)
        writer.put(currentVersion)
        writer.put(job.state.rawValue)
        writer.put(job.priority)
        writer.put(flags)
        writer.put(job.attempts)
        writer.put(job.maxAttempts)
        writer.put(job.createdAt.microseconds)
        writer.put(job.updatedAt.microseconds)
        writer.put(job.runAt.microseconds)
        writer.put(job.lease?.expiresAt.microseconds ?? 0)
        writer.putShort(job.name.utf8)
        writer.putShort(job.queue.utf8)
        if let tenant = job.tenant { writer.putShort(tenant.utf8) }
        if let key = job.uniqueKey { writer.putShort(key.utf8) }
        if let lease = job.lease { writer.put128(lease.owner.high, lease.owner.low) }
        if let pipeline = job.pipeline {
            writer.put128(pipeline.pipeline.high, pipeline.pipeline.low)
            writer.put(pipeline.step)
        }
        writer.putLong(job.payload)
        if let result = job.result { writer.putLong(result) }
        if let timeout = job.timeout { writer.put(timeout.wholeMicroseconds) }
        writer.putHeaders(job.headers)
        let errors = job.errors.suffix(JobLimits.maxErrors)
        writer.put(UInt8(errors.count))
        for error in errors {
            let message = JobLimits.truncated(error.message, to: JobLimits.maxErrorMessageBytes)
            writer.put(error.attempt)
            writer.put(error.at.microseconds)
            writer.put(UInt16(message.count))
            writer.putBytes(message)
        }
        writer.putBytes(timeline)
        writer.put(UInt16(timeline.count))
        Seal.put(&writer)
        return writer.offset
    }

    /// A job's headers in the order a record keeps them: by the names' UTF-8 bytes (so equal
    /// jobs make equal records).
    static func sortedHeaders(_ headers: [String: String]) -> [(key: String, value: String)] {
        headers.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
    }

    /// Decodes a record stored under `id`.
    ///
    /// - Throws: `.newerFormat` for a record of a later version, `.corruptRecord` for bytes that
    ///   are not a valid record (with the offset where decoding failed) or do not match its seal.
    static func decode(_ record: UnsafeRawBufferPointer, id: JobID) throws -> Job {
        try JobRecordView(record, id: id).job()
    }

    /// A record's bytes without its seal, once its version is known and its seal matches them
    /// (version 3); an older record as it is.
    static func body(_ record: UnsafeRawBufferPointer, id: JobID) throws -> UnsafeRawBufferPointer {
        try Seal.body(of: record, .job(id), current: currentVersion, sealedSince: 3)
    }

    /// Where a record's timeline block lies (version 2 and later, `bytes` without the seal): the
    /// bytes before its trailing length.
    static func timelineRange(_ bytes: UnsafeRawBufferPointer, id: JobID) throws -> Range<Int> {
        guard bytes.count >= headerSize + 2 else {
            throw JobStoreError(.corruptRecord, "the record of job \(id) is \(bytes.count) bytes (without its seal), too short for its header and timeline length", jobID: id, hint: RecordReader.damagedHint)
        }
        let length = Int(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: bytes.count - 2, as: UInt16.self)))
        guard length <= bytes.count - 2 - headerSize else {
            throw JobStoreError(
                .corruptRecord, "the record of job \(id) says its timeline is \(length) bytes, longer than the record", jobID: id,
                hint: RecordReader.damagedHint)
        }
        return (bytes.count - 2 - length)..<(bytes.count - 2)
    }

    /// A record's timeline block, read in place (its trailing length says where it starts) once
    /// the record's seal matches: `nil` for a version-1 record or an empty block.
    static func timeline(_ record: UnsafeRawBufferPointer, id: JobID) throws -> UnsafeRawBufferPointer? {
        let bytes = try body(record, id: id)
        guard bytes[0] >= 2 else { return nil }
        let range = try timelineRange(bytes, id: id)
        return range.isEmpty ? nil : UnsafeRawBufferPointer(rebasing: bytes[range])
    }

    static func checkVersion(_ version: UInt8, id: JobID) throws {
        try Seal.checkVersion(version, .job(id), current: currentVersion)
    }

    // MARK: Reading hot fields in place

    /// The fields at fixed offsets, read without decoding the rest (e.g. straight from LMDB's page).
    struct Header: Equatable {
        var state: JobState
        var priority: UInt8
        var attempts: UInt16
        var maxAttempts: UInt16
        var createdAt: Timestamp
        var updatedAt: Timestamp
        var runAt: Timestamp
        var leaseUntil: Timestamp?
    }

    /// Reads the fixed header of a record.
    static func header(_ bytes: UnsafeRawBufferPointer, id: JobID) throws -> Header {
        guard bytes.count >= headerSize else {
            throw JobStoreError(.corruptRecord, "the record of job \(id) is \(bytes.count) bytes, shorter than its header", jobID: id, hint: RecordReader.damagedHint)
        }
        try checkVersion(bytes[0], id: id)
        guard let state = JobState(rawValue: bytes[1]) else {
            throw JobStoreError(.corruptRecord, "the record of job \(id) has state byte \(bytes[1])", jobID: id, hint: RecordReader.damagedHint)
        }
        func i64(_ offset: Int) -> Int64 { Int64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: Int64.self)) }
        let leaseUntil = bytes[3] & Flag.lease != 0 ? Timestamp(microseconds: i64(32)) : nil
        return Header(
            state: state, priority: bytes[2],
            attempts: UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 4, as: UInt16.self)),
            maxAttempts: UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 6, as: UInt16.self)),
            createdAt: Timestamp(microseconds: i64(8)), updatedAt: Timestamp(microseconds: i64(16)),
            runAt: Timestamp(microseconds: i64(24)), leaseUntil: leaseUntil)
    }

    /// A record's state and queue, read in place (the queue is the second variable field): what a
    /// counter recount needs, without decoding the rest.
    static func stateAndQueue(_ bytes: UnsafeRawBufferPointer, id: JobID) throws -> (JobState, String) {
        let header = try header(bytes, id: id)
        let nameLength = bytes.count > headerSize ? Int(bytes[headerSize]) : 0
        let queueAt = headerSize + 1 + nameLength
        guard queueAt < bytes.count else { return (header.state, try decode(bytes, id: id).queue) }  // let decode say what is wrong
        let queueLength = Int(bytes[queueAt])
        guard queueAt + 1 + queueLength <= bytes.count else { return (header.state, try decode(bytes, id: id).queue) }
        return (header.state, String(decoding: UnsafeRawBufferPointer(rebasing: bytes[(queueAt + 1)..<(queueAt + 1 + queueLength)]), as: UTF8.self))
    }

    /// Whether a record is a pipeline step's job (its pipeline flag), read in place.
    static func isPipelineStep(_ bytes: UnsafeRawBufferPointer, id: JobID) throws -> Bool {
        guard bytes.count >= headerSize else {
            throw JobStoreError(.corruptRecord, "the record of job \(id) is \(bytes.count) bytes, shorter than its header", jobID: id, hint: RecordReader.damagedHint)
        }
        try checkVersion(bytes[0], id: id)
        return bytes[3] & Flag.pipeline != 0
    }

}
