import CChecksum

/// Little-endian field writing and bounds-checked reading, shared by the record codecs
/// (``RecordFormat`` for jobs, ``PipelineFormat`` for pipelines and their steps).
struct RecordWriter {
    let buffer: UnsafeMutableRawBufferPointer
    var offset = 0

    mutating func put<T: FixedWidthInteger>(_ value: T) {
        buffer.storeBytes(of: value.littleEndian, toByteOffset: offset, as: T.self)
        offset += MemoryLayout<T>.size
    }

    /// 16 bytes, big-endian (ids and tokens are stored as in keys).
    mutating func put128(_ high: UInt64, _ low: UInt64) {
        buffer.storeBytes(of: high.bigEndian, toByteOffset: offset, as: UInt64.self)
        buffer.storeBytes(of: low.bigEndian, toByteOffset: offset + 8, as: UInt64.self)
        offset += 16
    }

    mutating func putBytes<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        // Text (a String's UTF-8) and arrays are contiguous: one copy, not a loop of bytes.
        let copied = bytes.withContiguousStorageIfAvailable { source -> Int in
            if let base = source.baseAddress, let target = buffer.baseAddress, source.count > 0 {
                (target + offset).copyMemory(from: base, byteCount: source.count)
            }
            return source.count
        }
        if let copied {
            offset += copied
            return
        }
        for byte in bytes {
            buffer[offset] = byte
            offset += 1
        }
    }

    mutating func putShort<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        put(UInt8(bytes.count))
        putBytes(bytes)
    }

    /// A job's headers as records keep them: count (UInt8), each name (UInt8 length + UTF-8)
    /// and value (UInt16 LE length + UTF-8), in the names' byte order. None: nothing written
    /// (a flag says whether they are there).
    mutating func putHeaders(_ headers: [String: String]) {
        guard !headers.isEmpty else { return }
        put(UInt8(headers.count))
        for (name, value) in RecordFormat.sortedHeaders(headers) {
            putShort(name.utf8)
            put(UInt16(value.utf8.count))
            putBytes(value.utf8)
        }
    }

    /// The bytes ``putHeaders(_:)`` writes.
    static func headersSize(_ headers: [String: String]) -> Int {
        headers.isEmpty ? 0 : headers.reduce(1) { $0 + 3 + $1.key.utf8.count + $1.value.utf8.count }
    }

    mutating func putLong(_ bytes: [UInt8]) {
        put(UInt32(bytes.count))
        bytes.withUnsafeBytes { source in
            if let base = source.baseAddress, source.count > 0 {
                (buffer.baseAddress! + offset).copyMemory(from: base, byteCount: source.count)
            }
        }
        offset += bytes.count
    }
}

/// The seal that ends every job record (version 3), pipeline and step record and history entry (version 2):
/// a CRC32C of every byte before it, UInt32 LE, as the record's last four bytes. LMDB keeps no
/// checksum, so without it a flipped bit in a record reads as a different, valid job.
enum Seal {
    static let size = 4

    /// The CRC32C of `bytes` (CChecksum: SSE 4.2's instruction where the CPU has it).
    static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        jobstore_crc32c(0, bytes.baseAddress, bytes.count)
    }

    /// Writes the seal of the bytes before the writer's offset, at its offset.
    static func put(_ writer: inout RecordWriter) {
        writer.put(checksum(UnsafeRawBufferPointer(rebasing: writer.buffer[..<writer.offset])))
    }

    /// The bytes a sealed record seals (all but its last four), once its seal matches them.
    ///
    /// - Throws: `.corruptRecord` naming the record when it holds no more than a seal or its bytes
    ///   do not give its seal (a bit changed on disk since it was written).
    static func open(_ bytes: UnsafeRawBufferPointer, _ subject: @autoclosure () -> RecordSubject) throws -> UnsafeRawBufferPointer {
        guard bytes.count > size else {
            throw RecordReader(bytes: bytes, subject: subject()).corrupt("\(bytes.count) bytes cannot hold a version byte and a \(size)-byte checksum")
        }
        let body = UnsafeRawBufferPointer(rebasing: bytes[..<(bytes.count - size)])
        let stored = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: body.count, as: UInt32.self))
        let computed = checksum(body)
        guard stored == computed else {
            var reader = RecordReader(bytes: bytes, subject: subject())
            reader.offset = body.count
            throw reader.corrupt(
                "its bytes do not match its checksum (stored \(hex(stored)), computed \(hex(computed))): the record changed on disk after it was written")
        }
        return body
    }

    /// A record's bytes without its seal, once its version (its first byte) is one this program
    /// reads and — from version `sealedSince` on — its seal matches them; an older record as it
    /// is. One place for every sealed kind: job, pipeline and step records, history entries.
    static func body(
        of record: UnsafeRawBufferPointer, _ subject: RecordSubject, current: UInt8, sealedSince: UInt8
    ) throws -> UnsafeRawBufferPointer {
        guard let version = record.first else { throw RecordReader(bytes: record, subject: subject).corrupt("the record is empty") }
        try checkVersion(version, subject, current: current)
        return version >= sealedSince ? try open(record, subject) : record
    }

    /// Refuses a record version this program does not read: a newer one (`.newerFormat`, naming
    /// both versions) or 0 (`.corruptRecord`).
    static func checkVersion(_ version: UInt8, _ subject: @autoclosure () -> RecordSubject, current: UInt8) throws {
        if version > current {
            let subject = subject()
            throw JobStoreError(
                .newerFormat, "the record of \(subject) is of version \(version); this program reads versions 1…\(current)",
                jobID: subject.jobID, hint: "Use a newer version of JobStore to read this store")
        }
        if version == 0 {
            let subject = subject()
            throw JobStoreError(
                .corruptRecord, "the record of \(subject) has version 0, which does not exist", jobID: subject.jobID,
                hint: RecordReader.damagedHint)
        }
    }

    private static func hex(_ value: UInt32) -> String {
        let digits = String(value, radix: 16)
        return "0x" + String(repeating: "0", count: 8 - digits.count) + digits
    }
}

struct RecordReader {
    /// What to do about a damaged record: the hint of every `corruptRecord` error about one.
    static let damagedHint = """
        Run `jobstore verify` on the store. Delete a damaged job with `jobstore delete --damaged ID` (deleteDamaged), \
        or restore the store from a backup
        """

    let bytes: UnsafeRawBufferPointer
    /// Whose record it is, for errors (built only when one is thrown: decoding is a hot path).
    let subject: RecordSubject
    var offset = 0

    func corrupt(_ what: String) -> JobStoreError {
        JobStoreError(
            .corruptRecord, "the record of \(subject) is corrupt at byte \(offset): \(what)", jobID: subject.jobID,
            hint: RecordReader.damagedHint)
    }

    // The reading functions below are inlined into the codecs (one record is read through a
    // dozen of them), and every error is built out of line: a call each, and a `String` for
    // `what`, were a third of reading a record in place. `what` names the field in the error.

    /// The next `count` bytes.
    @inline(__always)
    mutating func take(_ count: Int, _ what: StaticString) throws -> UnsafeRawBufferPointer {
        guard count >= 0, offset + count <= bytes.count else { throw missing(count, "\(what)") }
        defer { offset += count }
        return UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + count])
    }

    /// Steps over the next `count` bytes; returns where they start.
    @inline(__always)
    mutating func skip(_ count: Int, _ what: StaticString) throws -> Int {
        let start = offset
        _ = try take(count, what)
        return start
    }

    @inline(__always)
    mutating func integer<T: FixedWidthInteger>(_ type: T.Type) throws -> T {
        let size = MemoryLayout<T>.size
        guard offset + size <= bytes.count else { throw missing(size, "\(T.self)") }
        defer { offset += size }
        return T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
    }

    /// The error for a field that needs more bytes than are left.
    @inline(never)
    func missing(_ count: Int, _ what: String) -> JobStoreError {
        corrupt("\(what) needs \(count) bytes, \(bytes.count - offset) are left")
    }

    @inline(__always) mutating func u8() throws -> UInt8 { try integer(UInt8.self) }
    @inline(__always) mutating func u16() throws -> UInt16 { try integer(UInt16.self) }
    mutating func u128() throws -> (UInt64, UInt64) {
        let bytes = try take(16, "a 16-byte id")
        return (
            UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self)),
            UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        )
    }
    mutating func i64() throws -> Int64 { try integer(Int64.self) }

    /// Where the next `count` bytes of text lie, once they are valid UTF-8.
    @inline(__always)
    mutating func text(_ count: Int, _ what: StaticString) throws -> Range<Int> {
        let start = offset
        let raw = try take(count, what)
        guard RecordReader.isUTF8(raw) else { throw notUTF8(at: start, what) }
        return start..<offset
    }

    @inline(never)
    mutating func notUTF8(at start: Int, _ what: StaticString) -> JobStoreError {
        offset = start
        return corrupt("the \(what) is not valid UTF-8")
    }

    /// Where the next short text lies (a UInt8 length, then 1…255 bytes of UTF-8).
    @inline(__always)
    mutating func shortText(_ what: StaticString) throws -> Range<Int> {
        let count = Int(try u8())
        if count == 0 { throw corrupt("the \(what) is empty") }
        return try text(count, what)
    }

    /// Where the next long byte string lies (a UInt32 length, then the bytes).
    @inline(__always)
    mutating func longBytesRange(_ what: StaticString) throws -> Range<Int> {
        let count = Int(try integer(UInt32.self))
        let start = try skip(count, what)
        return start..<offset
    }

    mutating func string(_ count: Int, _ what: StaticString) throws -> String {
        RecordReader.string(bytes, try text(count, what))
    }

    mutating func shortString(_ what: StaticString) throws -> String {
        RecordReader.string(bytes, try shortText(what))
    }

    /// Headers as ``RecordWriter/putHeaders(_:)`` writes them (at least one), checked: names in
    /// ascending byte order, none repeated.
    mutating func headers() throws -> [String: String] {
        let count = Int(try u8())
        if count == 0 { throw corrupt("its headers flag is set but it has 0 headers") }
        var headers: [String: String] = [:]
        var previous: Range<Int>? = nil
        for _ in 0..<count {
            let name = try shortText("header name")
            if let previous, !bytes[previous].lexicographicallyPrecedes(bytes[name]) {
                throw corrupt("its header names are not in ascending order (or one repeats)")
            }
            previous = name
            headers[RecordReader.string(bytes, name)] = try string(Int(try u16()), "header value")
        }
        return headers
    }

    mutating func longBytes(_ what: StaticString) throws -> [UInt8] {
        Array(UnsafeRawBufferPointer(rebasing: bytes[try longBytesRange(what)]))
    }

    /// Whether `raw` is valid UTF-8. ASCII (names, queues, tenants nearly always are) is checked
    /// by a plain loop: the generic validation instantiates type metadata on every call.
    @inline(__always)
    static func isUTF8(_ raw: UnsafeRawBufferPointer) -> Bool {
        var high: UInt64 = 0  // every byte's top bit, eight bytes at a time
        var at = 0
        while at + 8 <= raw.count {
            high |= raw.loadUnaligned(fromByteOffset: at, as: UInt64.self)
            at += 8
        }
        while at < raw.count {
            high |= UInt64(raw[at])
            at += 1
        }
        return high & 0x8080_8080_8080_8080 == 0 || isNonASCIIUTF8(raw)
    }

    @inline(never)
    static func isNonASCIIUTF8(_ raw: UnsafeRawBufferPointer) -> Bool {
        String(validating: raw.bindMemory(to: UInt8.self), as: UTF8.self) != nil
    }

    /// The text at `range` of `bytes`, already checked by ``isUTF8(_:)``.
    static func string(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> String {
        String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self)
    }
}

/// Whose record a ``RecordReader`` reads.
enum RecordSubject: CustomStringConvertible {
    case job(JobID)
    case pipeline(PipelineID)
    case step(PipelineID, Int)
    case schedule(String)
    case rateLimit(String)
    case history(HistoryPosition)
    case progress(JobID)
    case worker(OwnerToken)

    var jobID: JobID? {
        switch self {
        case .job(let id), .progress(let id): id
        default: nil
        }
    }

    var description: String {
        switch self {
        case .job(let id): "job \(id)"
        case .pipeline(let id): "pipeline \(id)"
        case .step(let id, let index): "step \(index) of pipeline \(id)"
        case .schedule(let name): "schedule '\(name)'"
        case .rateLimit(let queue): "the rate limit of queue '\(queue)'"
        case .history(let position): "history entry \(position)"
        case .progress(let id): "the progress of job \(id)"
        case .worker(let id): "the heartbeat of scheduler \(id)"
        }
    }
}
