import Foundation
import JobCore
import PostgresNIO

// The store's values as PostgreSQL columns and back: ids as `uuid`, times as `bigint` µs,
// states as `smallint`, errors as `jsonb`, payloads as `bytea`.

extension UUID {
    /// The 16 bytes of a job id, as stored in its record (big-endian halves).
    init(_ id: JobID) { self = UUID(high: id.high, low: id.low) }
    /// The 16 bytes of a pipeline id.
    init(_ id: PipelineID) { self = UUID(high: id.high, low: id.low) }
    /// The 16 bytes of a lease's owner token.
    init(_ owner: OwnerToken) { self = UUID(high: owner.high, low: owner.low) }

    init(high: UInt64, low: UInt64) {
        var bytes = uuid_t(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &bytes) { raw in
            raw.storeBytes(of: high.bigEndian, toByteOffset: 0, as: UInt64.self)
            raw.storeBytes(of: low.bigEndian, toByteOffset: 8, as: UInt64.self)
        }
        self.init(uuid: bytes)
    }

    /// The two big-endian halves.
    var halves: (high: UInt64, low: UInt64) {
        withUnsafeBytes(of: uuid) { raw in
            (UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self)),
             UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self)))
        }
    }
}

extension JobID {
    init(_ uuid: UUID) { self.init(high: uuid.halves.high, low: uuid.halves.low) }
}

extension PipelineID {
    init(_ uuid: UUID) { self.init(high: uuid.halves.high, low: uuid.halves.low) }
}

extension OwnerToken {
    init(_ uuid: UUID) { self.init(high: uuid.halves.high, low: uuid.halves.low) }
}

/// A job row (columns ``Statements/jobColumns``) decoded into a ``JobCore/Job``.
enum JobRow {
    static func decode(_ row: PostgresRow) throws -> Job {
        let cells = row.makeRandomAccess()
        let id = JobID(try cells[0].decode(UUID.self))
        func state(_ raw: Int16) throws -> JobState {
            guard let state = JobState(rawValue: UInt8(clamping: raw)), raw >= 0 else {
                throw JobStoreError(.corruptRecord, "job \(id) has state \(raw) in PostgreSQL, which is no job state", jobID: id)
            }
            return state
        }
        let leaseExpiry = try cells[11].decode(Int64?.self)
        let leaseOwner = try cells[12].decode(UUID?.self)
        let pipeline = try cells[15].decode(UUID?.self)
        let step = try cells[16].decode(Int32?.self)
        return Job(
            id: id, name: try cells[1].decode(String.self), queue: try cells[2].decode(String.self),
            tenant: try cells[3].decode(String?.self), state: try state(try cells[4].decode(Int16.self)),
            priority: UInt8(clamping: try cells[5].decode(Int16.self)),
            createdAt: Timestamp(microseconds: try cells[6].decode(Int64.self)),
            updatedAt: Timestamp(microseconds: try cells[7].decode(Int64.self)),
            runAt: Timestamp(microseconds: try cells[8].decode(Int64.self)),
            attempts: UInt16(clamping: try cells[9].decode(Int32.self)), maxAttempts: UInt16(clamping: try cells[10].decode(Int32.self)),
            lease: leaseExpiry.flatMap { expiry in leaseOwner.map { Lease(expiresAt: Timestamp(microseconds: expiry), owner: OwnerToken($0)) } },
            errors: try errors(try cells[13].decode(String.self), of: id),
            uniqueKey: try cells[14].decode(String?.self),
            pipeline: pipeline.flatMap { pipeline in step.map { PipelineReference(pipeline: PipelineID(pipeline), step: UInt16(clamping: $0)) } },
            timeout: try cells[19].decode(Int64?.self).map { .microseconds($0) },
            headers: try headers(try cells[20].decode(String?.self), of: "job \(id)", jobID: id),
            payload: Array((try cells[17].decode(ByteBuffer.self)).readableBytesView),
            result: try cells[18].decode(ByteBuffer?.self).map { Array($0.readableBytesView) })
    }

    /// A job's headers as stored: a JSON object of texts, keys sorted; `nil` (NULL) for none.
    static func headersJSON(_ headers: [String: String]) throws -> String? {
        guard !headers.isEmpty else { return nil }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(headers), as: UTF8.self)
    }

    /// Headers as ``headersJSON(_:)`` stores them (`nil`: none), of `what` (a job, a schedule's job).
    static func headers(_ json: String?, of what: @autoclosure () -> String, jobID: JobID? = nil) throws -> [String: String] {
        guard let json else { return [:] }
        do {
            return try JSONDecoder().decode([String: String].self, from: Data(json.utf8))
        } catch {
            throw JobStoreError(.corruptRecord, "the headers of \(what()) in PostgreSQL are not readable: \(error)", jobID: jobID)
        }
    }

    /// A job's errors as stored: the kept ones (``JobCore/Job/storedErrors``) as a JSON array of
    /// `{"message", "attempt", "at"}` (µs).
    static func errorsJSON(_ errors: [JobErrorRecord]) throws -> String {
        let kept = Job.storedErrors(errors)
        return String(decoding: try JSONEncoder().encode(kept.map(StoredError.init)), as: UTF8.self)
    }

    private static func errors(_ json: String, of id: JobID) throws -> [JobErrorRecord] {
        do {
            return try JSONDecoder().decode([StoredError].self, from: Data(json.utf8)).map(\.record)
        } catch {
            throw JobStoreError(.corruptRecord, "the errors of job \(id) in PostgreSQL are not readable: \(error)", jobID: id)
        }
    }

    /// One error in the `errors` column.
    private struct StoredError: Codable {
        var message: String
        var attempt: UInt16
        var at: Int64

        init(_ record: JobErrorRecord) {
            message = record.message
            attempt = record.attempt
            at = record.at.microseconds
        }

        var record: JobErrorRecord { JobErrorRecord(message: message, attempt: attempt, at: Timestamp(microseconds: at)) }
    }
}

/// A pipeline row (columns ``Statements/pipelineColumns``).
enum PipelineRow {
    static func decode(_ row: PostgresRow) throws -> Pipeline {
        let cells = row.makeRandomAccess()
        let id = PipelineID(try cells[0].decode(UUID.self))
        let raw = try cells[4].decode(Int16.self)
        guard raw >= 0, let state = PipelineState(rawValue: UInt8(clamping: raw)) else {
            throw JobStoreError(.corruptRecord, "pipeline \(id) has state \(raw) in PostgreSQL, which is no pipeline state")
        }
        return Pipeline(
            id: id, name: try cells[1].decode(String.self), version: UInt32(clamping: try cells[2].decode(Int64.self)),
            failFast: try cells[3].decode(Bool.self), state: state,
            createdAt: Timestamp(microseconds: try cells[5].decode(Int64.self)),
            updatedAt: Timestamp(microseconds: try cells[6].decode(Int64.self)),
            finishedAt: try cells[7].decode(Int64?.self).map(Timestamp.init(microseconds:)),
            stepCount: Int(try cells[8].decode(Int32.self)), succeededSteps: Int(try cells[9].decode(Int32.self)),
            failedSteps: Int(try cells[10].decode(Int32.self)), cancelledSteps: Int(try cells[11].decode(Int32.self)))
    }
}

/// A step row (columns ``Statements/stepColumns``).
enum StepRow {
    static func decode(_ row: PostgresRow) throws -> PipelineStepRecord {
        let cells = row.makeRandomAccess()
        return PipelineStepRecord(
            index: Int(try cells[0].decode(Int32.self)), name: try cells[1].decode(String.self),
            jobID: JobID(try cells[2].decode(UUID.self)), dependents: try cells[3].decode([Int32].self).map(Int.init),
            remainingDependencies: Int(try cells[4].decode(Int32.self)))
    }
}

/// A schedule row (columns ``Statements/scheduleColumns``).
enum ScheduleRow {
    static func decode(_ row: PostgresRow) throws -> ScheduleRecord {
        let cells = row.makeRandomAccess()
        return ScheduleRecord(
            name: try cells[0].decode(String.self), timing: try cells[1].decode(String.self),
            timeZone: try cells[2].decode(String.self), queue: try cells[3].decode(String.self),
            jobName: try cells[4].decode(String.self),
            missedTicks: MissedTickPolicy(rawValue: UInt8(clamping: try cells[5].decode(Int16.self))) ?? .skip,
            lastTick: try cells[6].decode(Int64?.self).map(Timestamp.init(microseconds:)),
            nextTick: try cells[7].decode(Int64?.self).map(Timestamp.init(microseconds:)),
            updatedAt: Timestamp(microseconds: try cells[8].decode(Int64.self)), job: try job(cells))
    }

    /// The job a row keeps (columns 9…15), `nil` when `job_max_attempts` is NULL.
    private static func job(_ cells: PostgresRandomAccessRow) throws -> NewJob? {
        guard let maxAttempts = try cells[10].decode(Int32?.self) else { return nil }
        let name = try cells[0].decode(String.self)
        let headers = try JobRow.headers(try cells[15].decode(String?.self), of: "the job of schedule '\(name)'")
        return NewJob(
            name: try cells[4].decode(String.self), queue: try cells[3].decode(String.self),
            payload: try cells[13].decode(ByteBuffer?.self).map { Array($0.readableBytesView) } ?? [],
            priority: UInt8(clamping: try cells[9].decode(Int16?.self) ?? 0), maxAttempts: UInt16(clamping: maxAttempts),
            tenant: try cells[11].decode(String?.self), uniqueKey: try cells[12].decode(String?.self),
            timeout: try cells[14].decode(Int64?.self).map { .microseconds($0) }, headers: headers)
    }
}

/// A queue's control row (columns ``Statements/queueColumns``): when it was paused, and its
/// rate limit's bucket.
enum QueueRow {
    /// The queue columns (``Statements/queueColumns``) from column `first` on.
    static func decode(_ row: PostgresRow, from first: Int = 0) throws -> (pausedAt: Timestamp?, limit: RateLimit?) {
        let cells = row.makeRandomAccess()
        let paused = try cells[first].decode(Int64?.self).map(Timestamp.init(microseconds:))
        guard let starts = try cells[first + 1].decode(Int32?.self), let period = try cells[first + 2].decode(Int64?.self),
            let tokens = try cells[first + 3].decode(Double?.self), let refilled = try cells[first + 4].decode(Int64?.self)
        else { return (paused, nil) }
        return (paused, RateLimit(starts: Int(starts), period: .microseconds(period), tokens: tokens, refilledAt: Timestamp(microseconds: refilled)))
    }
}

/// An event a transaction records, with its number within the transaction: its row's `n`
/// (the transaction's id is the row's `xid`, set by PostgreSQL).
struct RecordedEvent {
    var number: Int32
    var jobID: JobID
    var event: JobEvent
}

/// An event row (columns ``Statements/eventColumns``). Its place in the history is (xid, n):
/// as a ``JobCore/HistoryPosition``, the transaction id in `time` and n in `sequence`.
enum EventRow {
    static func decode(_ row: PostgresRow) throws -> HistoryEntry {
        let cells = row.makeRandomAccess()
        let xid = try cells[0].decode(Int64.self)
        let number = try cells[1].decode(Int32.self)
        let id = JobID(try cells[2].decode(UUID.self))
        let rawKind = try cells[3].decode(Int16.self)
        let rawState = try cells[5].decode(Int16.self)
        guard let kind = JobEvent.Kind(rawValue: UInt8(clamping: rawKind)), rawKind > 0,
            let state = JobState(rawValue: UInt8(clamping: rawState)), rawState >= 0
        else {
            throw JobStoreError(
                .corruptRecord, "the history event \(xid).\(number) in PostgreSQL has kind \(rawKind) and state \(rawState), which this program does not know",
                jobID: id, hint: "A newer program may have written it; upgrade this one")
        }
        let event = JobEvent(
            kind: kind, at: Timestamp(microseconds: try cells[4].decode(Int64.self)), state: state,
            attempts: UInt16(clamping: try cells[6].decode(Int32.self)), owner: try cells[7].decode(UUID?.self).map(OwnerToken.init),
            until: try cells[8].decode(Int64?.self).map(Timestamp.init(microseconds:)), message: try cells[9].decode(String?.self),
            actor: try cells[10].decode(String?.self))
        return HistoryEntry(
            position: HistoryPosition(time: Timestamp(microseconds: xid), sequence: UInt32(clamping: number)), jobID: id, event: event)
    }
}

/// A scheduler's heartbeat row (`jobstore_workers`).
enum WorkerRow {
    /// One running job in the `running` column.
    private struct StoredJob: Codable {
        var id: String
        var queue: String
        var name: String
        var since: Int64
    }

    /// The `queues` and `running` columns of `worker`.
    static func json(_ worker: WorkerRecord) throws -> (queues: String, running: String) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let running = worker.running.map { StoredJob(id: $0.id.description, queue: $0.queue, name: $0.name, since: $0.since.microseconds) }
        return (String(decoding: try encoder.encode(worker.queues), as: UTF8.self), String(decoding: try encoder.encode(running), as: UTF8.self))
    }

    static func decode(_ row: PostgresRow) throws -> WorkerRecord {
        let (uuid, host, pid, startedAt, beatAt, interval, concurrency, queues, running) =
            try row.decode((UUID, String, Int32, Int64, Int64, Int64, Int32, String, String).self)
        let bits = JobID(uuid)
        let id = OwnerToken(high: bits.high, low: bits.low)
        do {
            let jobs = try JSONDecoder().decode([StoredJob].self, from: Data(running.utf8)).map { job in
                WorkerRecord.RunningJob(id: try JobID(parsing: job.id), queue: job.queue, name: job.name, since: Timestamp(microseconds: job.since))
            }
            return WorkerRecord(
                id: id, host: host, pid: pid, startedAt: Timestamp(microseconds: startedAt), beatAt: Timestamp(microseconds: beatAt),
                interval: .microseconds(interval), concurrency: Int(concurrency),
                queues: try JSONDecoder().decode([String].self, from: Data(queues.utf8)), running: jobs)
        } catch {
            throw JobStoreError(.corruptRecord, "the heartbeat of scheduler \(id) in PostgreSQL is not readable: \(error)")
        }
    }
}
