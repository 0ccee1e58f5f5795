#if canImport(Glibc)
import Glibc
#endif
/// A job read in place: its record's bytes on LMDB's mapped page, lent to a closure, each field
/// read from the page when asked for — no allocation for the fixed fields, the payload's bytes
/// or text compared in place. ``job()`` builds the owned `Job` when one is wanted.
///
/// A view is made only after the record's seal matches its bytes and every field has been
/// checked as ``job()`` would (lengths, UTF-8, flags): whatever it returns is what the owned job
/// would hold. It is non-copyable and lent `borrowing`, so it cannot outlive the closure it is
/// lent to (the page it reads may be reused once the read transaction ends); copy out what you
/// keep. Lent by ``JobRepository/forEachJob(matching:order:after:_:)`` and
/// ``JobRepository/withJob(_:_:)``.
public struct JobRecordView: ~Copyable {
    /// The job's id.
    public let id: JobID
    /// The record without its seal.
    @usableFromInline let bytes: UnsafeRawBufferPointer
    // Inlinable where the accessors that take a closure read them: specialised in the caller's
    // module rather than generic over the closure's result (an owned `Optional<R>` built through
    // generic value witnesses on every call).
    @usableFromInline let nameRange: Range<Int>, queueRange: Range<Int>
    @usableFromInline let tenantRange: Range<Int>?, uniqueKeyRange: Range<Int>?
    private let leaseOwner: Int?, pipelineAt: Int?
    @usableFromInline let payloadRange: Range<Int>
    private let resultRange: Range<Int>?
    /// Where the timeout lies (8 bytes), and where the headers start (their count byte).
    private let timeoutAt: Int?, headersAt: Int?
    /// Where the errors start (their count byte), and how many there are.
    private let errorsAt: Int, errorCount: Int
    /// The timeline block (record version 2 and later).
    private let timelineRange: Range<Int>?

    /// The job's state.
    public let state: JobState
    /// The job's priority (higher runs first).
    public let priority: UInt8
    /// Claims so far.
    public let attempts: UInt16
    /// Claims allowed before the job fails for good.
    public let maxAttempts: UInt16
    /// Creation time.
    public let createdAt: Timestamp
    /// Last change.
    public let updatedAt: Timestamp
    /// Earliest run time.
    public let runAt: Timestamp
    private let leaseUntil: Timestamp?

    /// Checks and maps a record stored under `id`: every check ``RecordFormat/decode(_:id:)`` makes.
    ///
    /// - Throws: `.newerFormat` for a record of a later version, `.corruptRecord` for bytes that
    ///   are not a valid record (with the offset where reading failed) or do not match its seal.
    init(_ record: UnsafeRawBufferPointer, id: JobID) throws {
        // The seal first: a damaged record is named as such whichever field the damage hit.
        let bytes = try RecordFormat.body(record, id: id)
        let header = try RecordFormat.header(bytes, id: id)
        let flags = bytes[3]
        typealias Flag = RecordFormat.Flag
        var reader = RecordReader(bytes: bytes, subject: .job(id))
        reader.offset = RecordFormat.headerSize
        // Every field is found (and checked) before any is stored: a non-copyable value is
        // initialised all at once.
        let name = try reader.shortText("name")
        let queue = try reader.shortText("queue")
        let tenant = flags & Flag.tenant != 0 ? try reader.shortText("tenant") : nil
        let uniqueKey = flags & Flag.uniqueKey != 0 ? try reader.shortText("unique key") : nil
        let leaseOwner = flags & Flag.lease != 0 ? try reader.skip(16, "the lease owner") : nil
        let pipelineAt = flags & Flag.pipeline != 0 ? try reader.skip(18, "the pipeline reference") : nil
        let payload = try reader.longBytesRange("payload")
        let result = flags & Flag.result != 0 ? try reader.longBytesRange("result") : nil
        let timeoutAt = flags & Flag.timeout != 0 ? try reader.skip(8, "the timeout") : nil
        let headersAt = flags & Flag.headers != 0 ? reader.offset : nil
        if headersAt != nil {
            let count = Int(try reader.u8())
            if count == 0 { throw reader.corrupt("its headers flag is set but it has 0 headers") }
            var previous: Range<Int>? = nil
            for _ in 0..<count {
                let name = try reader.shortText("header name")
                if let previous, !bytes[previous].lexicographicallyPrecedes(bytes[name]) {
                    throw reader.corrupt("its header names are not in ascending order (or one repeats)")
                }
                previous = name
                _ = try reader.text(Int(try reader.u16()), "header value")
            }
        }
        let errorsAt = reader.offset
        let errorCount = Int(try reader.u8())
        for _ in 0..<errorCount {
            _ = try reader.skip(10, "an error's attempt and time")
            _ = try reader.text(Int(try reader.u16()), "error message")
        }
        let timeline = bytes[0] >= 2 ? try RecordFormat.timelineRange(bytes, id: id) : nil
        let end = timeline?.lowerBound ?? bytes.count
        guard reader.offset == end else {
            throw reader.offset < end
                ? reader.corrupt("\(end - reader.offset) bytes left over after the errors")
                : reader.corrupt("the fields run into the timeline, which starts at byte \(end)")
        }
        if flags & ~Flag.known(inVersion: bytes[0]) != 0 {
            throw reader.corrupt("unknown flag bits \(flags)")
        }
        self.id = id
        self.bytes = bytes
        (nameRange, queueRange, tenantRange, uniqueKeyRange) = (name, queue, tenant, uniqueKey)
        (self.leaseOwner, self.pipelineAt, payloadRange, resultRange) = (leaseOwner, pipelineAt, payload, result)
        (self.timeoutAt, self.headersAt) = (timeoutAt, headersAt)
        (self.errorsAt, self.errorCount, timelineRange) = (errorsAt, errorCount, timeline)
        state = header.state
        priority = header.priority
        attempts = header.attempts
        maxAttempts = header.maxAttempts
        createdAt = header.createdAt
        updatedAt = header.updatedAt
        runAt = header.runAt
        leaseUntil = header.leaseUntil
    }

    /// The record's timeline block on the page (``EventFormat``), or `nil` when it has none:
    /// what a change appends its event to.
    var timeline: UnsafeRawBufferPointer? {
        guard let timelineRange, !timelineRange.isEmpty else { return nil }
        return UnsafeRawBufferPointer(rebasing: bytes[timelineRange])
    }

    // MARK: Fields

    /// The job's name.
    public var name: String { RecordReader.string(bytes, nameRange) }
    /// The job's queue.
    public var queue: String { RecordReader.string(bytes, queueRange) }
    /// The job's tenant, if it has one.
    public var tenant: String? { tenantRange.map { RecordReader.string(bytes, $0) } }
    /// The job's unique key, if it has one.
    public var uniqueKey: String? { uniqueKeyRange.map { RecordReader.string(bytes, $0) } }

    /// A text field, for ``withUTF8(_:_:)``.
    public enum TextField: Sendable {
        case name, queue, tenant, uniqueKey
    }

    /// Calls `body` with a text field's UTF-8 bytes on the page (valid only during the call), or
    /// returns `nil` for a tenant or unique key the job does not have: text read without making
    /// a `String`.
    @inlinable
    public func withUTF8<R, E: Error>(_ field: TextField, _ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R? {
        let range: Range<Int>? = switch field {
        case .name: nameRange
        case .queue: queueRange
        case .tenant: tenantRange
        case .uniqueKey: uniqueKeyRange
        }
        guard let range else { return nil }
        return try body(UnsafeRawBufferPointer(rebasing: bytes[range]))
    }

    /// Whether the job is of `queue`, compared in place.
    public func isInQueue(_ queue: String) -> Bool { equals(queueRange, queue) }

    /// Whether the job is of `tenant` (`nil`: has none), compared in place.
    public func hasTenant(_ tenant: String?) -> Bool {
        switch (tenantRange, tenant) {
        case (nil, nil): true
        case (let range?, let tenant?): equals(range, tenant)
        default: false
        }
    }

    /// The lease of a running job.
    public var lease: Lease? {
        guard let leaseOwner, let leaseUntil else { return nil }
        let (high, low) = u128(at: leaseOwner)
        return Lease(expiresAt: leaseUntil, owner: OwnerToken(high: high, low: low))
    }

    /// The pipeline step this job is, if it is one.
    public var pipeline: PipelineReference? {
        guard let pipelineAt else { return nil }
        let (high, low) = u128(at: pipelineAt)
        let step = UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: pipelineAt + 16, as: UInt16.self))
        return PipelineReference(pipeline: PipelineID(high: high, low: low), step: step)
    }

    /// The payload's size in bytes.
    @inlinable public var payloadCount: Int { payloadRange.count }

    /// Calls `body` with the payload's bytes on the page (valid only during the call).
    @inlinable
    public func withPayload<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeRawBufferPointer(rebasing: bytes[payloadRange]))
    }

    /// The payload, copied.
    public var payload: [UInt8] { Array(UnsafeRawBufferPointer(rebasing: bytes[payloadRange])) }

    /// The result a succeeded job stored, copied.
    public var result: [UInt8]? { resultRange.map { Array(UnsafeRawBufferPointer(rebasing: bytes[$0])) } }

    /// The job's own timeout (`Job/timeout`), if it has one.
    public var timeout: Duration? {
        timeoutAt.map { .microseconds(Int64(littleEndian: bytes.loadUnaligned(fromByteOffset: $0, as: Int64.self))) }
    }

    /// The job's headers (`Job/headers`).
    public var headers: [String: String] {
        guard let headersAt else { return [:] }
        var headers: [String: String] = [:]
        let count = Int(bytes[headersAt])
        headers.reserveCapacity(count)
        var at = headersAt + 1
        for _ in 0..<count {
            let nameLength = Int(bytes[at])
            let name = RecordReader.string(bytes, (at + 1)..<(at + 1 + nameLength))
            at += 1 + nameLength
            let valueLength = Int(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt16.self)))
            headers[name] = RecordReader.string(bytes, (at + 2)..<(at + 2 + valueLength))
            at += 2 + valueLength
        }
        return headers
    }

    /// The errors of failed attempts, oldest first.
    public var errors: [JobErrorRecord] {
        var errors: [JobErrorRecord] = []
        guard errorCount > 0 else { return errors }
        errors.reserveCapacity(errorCount)
        var at = errorsAt + 1
        for _ in 0..<errorCount {
            let attempt = UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt16.self))
            let time = Int64(littleEndian: bytes.loadUnaligned(fromByteOffset: at + 2, as: Int64.self))
            let length = Int(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: at + 10, as: UInt16.self)))
            let message = RecordReader.string(bytes, (at + 12)..<(at + 12 + length))
            errors.append(JobErrorRecord(message: message, attempt: attempt, at: Timestamp(microseconds: time)))
            at += 12 + length
        }
        return errors
    }

    /// Whether the job's name is `name`, compared in place.
    public func hasName(_ name: String) -> Bool { equals(nameRange, name) }

    /// Whether the payload contains `needle` (bytes; an empty needle is in every payload),
    /// searched in place.
    public func payloadContains(_ needle: [UInt8]) -> Bool {
        withPayload { contains($0, needle) }
    }

    /// Whether the message of any attempt's error contains `needle`, searched in place.
    public func anyErrorContains(_ needle: [UInt8]) -> Bool {
        var found = false
        forEachErrorMessage { message in
            found = contains(message, needle)
            return !found
        }
        return found
    }

    /// The message of the last attempt's error, if any attempt failed.
    public var lastErrorMessage: String? {
        var last: Range<Int>?
        forEachErrorMessageRange { last = $0; return true }
        return last.map { RecordReader.string(bytes, $0) }
    }

    /// Calls `body` with each error message's bytes on the page, oldest first, until it returns `false`.
    private func forEachErrorMessage(_ body: (UnsafeRawBufferPointer) -> Bool) {
        forEachErrorMessageRange { body(UnsafeRawBufferPointer(rebasing: bytes[$0])) }
    }

    private func forEachErrorMessageRange(_ body: (Range<Int>) -> Bool) {
        var at = errorsAt + 1
        for _ in 0..<errorCount {
            let length = Int(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: at + 10, as: UInt16.self)))
            guard body((at + 12)..<(at + 12 + length)) else { return }
            at += 12 + length
        }
    }

    /// Where the next page starts when this job ends one (keyset paging by creation time).
    public var cursor: PageCursor { PageCursor(createdAt: createdAt, id: id) }

    /// The owned job, every field copied out of the page.
    public func job() -> Job {
        Job(
            id: id, name: name, queue: queue, tenant: tenant, state: state, priority: priority,
            createdAt: createdAt, updatedAt: updatedAt, runAt: runAt, attempts: attempts, maxAttempts: maxAttempts,
            lease: lease, errors: errors, uniqueKey: uniqueKey, pipeline: pipeline, timeout: timeout, headers: headers,
            payload: payload, result: result)
    }

    // MARK: Helpers

    private func contains(_ haystack: UnsafeRawBufferPointer, _ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty else { return true }
        guard haystack.count >= needle.count, let base = haystack.baseAddress else { return false }
        return needle.withUnsafeBytes { (needleBytes: UnsafeRawBufferPointer) -> Bool in
            // memchr finds each candidate first byte at memory speed; memcmp checks the rest.
            guard let needleBase = needleBytes.baseAddress else { return true }
            let first = Int32(needle[0])
            var at = 0
            while haystack.count - at >= needle.count {
                let window = haystack.count - at - needle.count + 1
                guard let found = memchr(base + at, first, window) else { return false }
                let hit = UnsafeRawPointer(found)
                if memcmp(hit, needleBase, needle.count) == 0 { return true }
                at = base.distance(to: hit) + 1
            }
            return false
        }
    }

    private func equals(_ range: Range<Int>, _ text: String) -> Bool {
        text.utf8.count == range.count && UnsafeRawBufferPointer(rebasing: bytes[range]).elementsEqual(text.utf8)
    }

    private func u128(at offset: Int) -> (UInt64, UInt64) {
        (
            UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self)),
            UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: offset + 8, as: UInt64.self))
        )
    }
}
