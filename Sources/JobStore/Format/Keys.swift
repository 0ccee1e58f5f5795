package import LMDB

/// Every named database of a job store and the layout of every key, in this one file.
///
/// Integers in keys are big-endian, signed ones with the sign bit flipped, so LMDB's byte order
/// is numeric order. Index values are empty: the key says everything.
package enum Schema {
    /// `meta`: ASCII name → value. Holds the store's format version and the counters.
    package static let meta = DatabaseDefinition<StringCodec, BytesCodec>(name: "meta")
    /// `jobs`: job id (16 bytes) → job record (``RecordFormat``).
    package static let jobs = DatabaseDefinition<BytesCodec, BytesCodec>(name: "jobs")
    /// `idx.state_created`: state (1) · createdAt (8) · id (16) → empty. Every job.
    package static let stateCreated = DatabaseDefinition<BytesCodec, EmptyCodec>(name: "idx.state_created")
    /// `idx.created`: createdAt (8) · id (16) → empty. Every job.
    package static let created = DatabaseDefinition<BytesCodec, EmptyCodec>(name: "idx.created")
    /// `idx.ready`: queue (UTF-8) · 0x00 · (255 − priority) (1) · runAt (8) · id (16) → empty. Pending jobs only.
    package static let ready = DatabaseDefinition<BytesCodec, EmptyCodec>(name: "idx.ready")
    /// `idx.ready_any`: (255 − priority) (1) · runAt (8) · id (16) → empty. Pending jobs only, every queue.
    package static let readyAny = DatabaseDefinition<BytesCodec, EmptyCodec>(name: "idx.ready_any")
    /// `idx.lease`: lease expiry (8) · id (16) → empty. Running jobs only.
    package static let lease = DatabaseDefinition<BytesCodec, EmptyCodec>(name: "idx.lease")
    /// `idx.unique`: unique key (UTF-8) → id (16). Live (waiting, pending, running) jobs with a key.
    package static let unique = DatabaseDefinition<BytesCodec, BytesCodec>(name: "idx.unique")

    /// `idx.finished`: state (1) · updatedAt (8) · id (16) → empty. Finished (succeeded, failed,
    /// cancelled) jobs, by when they finished (their last change). Since format 2.
    package static let finished = DatabaseDefinition<BytesCodec, EmptyCodec>(name: "idx.finished")
    /// `pipelines`: pipeline id (16) → pipeline record (``PipelineFormat``). Since format 2.
    package static let pipelines = DatabaseDefinition<BytesCodec, BytesCodec>(name: "pipelines")
    /// `pipeline_steps`: pipeline id (16) · step index (UInt16 BE) → step record (its job id,
    /// remaining-dependency count, dependents, name). Since format 2.
    package static let pipelineSteps = DatabaseDefinition<BytesCodec, BytesCodec>(name: "pipeline_steps")
    /// `idx.pipeline_state_created`: state (1) · createdAt (8) · pipeline id (16) → empty. Every pipeline. Since format 2.
    package static let pipelineStateCreated = DatabaseDefinition<BytesCodec, EmptyCodec>(name: "idx.pipeline_state_created")
    /// `idx.pipeline_finished`: state (1) · finishedAt (8) · pipeline id (16) → empty. Finished pipelines. Since format 2.
    package static let pipelineFinished = DatabaseDefinition<BytesCodec, EmptyCodec>(name: "idx.pipeline_finished")

    /// `history`: history clock (8) · sequence (UInt32 BE) → job id · event (``EventFormat``):
    /// every job's events in commit order, kept until pruned. Since format 3.
    package static let history = DatabaseDefinition<BytesCodec, BytesCodec>(name: "history")

    /// `progress`: job id (16) → the progress its handler last reported (``ProgressFormat``).
    /// Written apart from the job's record (a report rewrites 40 bytes, not the record), removed
    /// with the job. Since format 6.
    package static let progress = DatabaseDefinition<BytesCodec, BytesCodec>(name: "progress")

    /// `workers`: scheduler id (16) → its heartbeat (``WorkerFormat``): who runs what. Written
    /// by each scheduler every few seconds, deleted when it stops (or, gone an hour, by another's
    /// heartbeat). Since format 7.
    package static let workers = DatabaseDefinition<BytesCodec, BytesCodec>(name: "workers")

    /// The databases of format 1.
    static let formatOne: [any AnyDatabaseDefinition] = [meta, jobs, stateCreated, created, ready, readyAny, lease, unique]
    /// The databases added by format 2 (finished jobs by finish time, pipelines).
    static let formatTwo: [any AnyDatabaseDefinition] = [finished, pipelines, pipelineSteps, pipelineStateCreated, pipelineFinished]
    /// The database added by format 3 (the store's history; each job's timeline is in its record).
    static let formatThree: [any AnyDatabaseDefinition] = [history]
    /// The database added by format 6 (handlers' progress reports).
    static let formatSix: [any AnyDatabaseDefinition] = [progress]
    /// The database added by format 7 (the schedulers' heartbeats).
    static let formatSeven: [any AnyDatabaseDefinition] = [workers]
    /// Every database, opened together when a store opens.
    package static let all: [any AnyDatabaseDefinition] = formatOne + formatTwo + formatThree + formatSix + formatSeven

    /// The store format version, kept in `meta` under ``MetaKey/formatVersion``. Version 1: jobs
    /// (the first eight databases, record format 1). Version 2: plus finished jobs by finish time
    /// and pipelines (the next five databases, ``PipelineFormat``). A version-1 store is upgraded
    /// when a program of version 2 first opens it writable: the new databases are created, the
    /// finished jobs entered in `idx.finished`, and the version set, in one transaction; no
    /// record changes. Version 3: plus the store's history (the last database, ``EventFormat``),
    /// created empty when an older store is first opened writable, and job records of version
    /// 2, which end with the job's timeline; a version-1 record (a job from before) reads as a
    /// job without a timeline and is rewritten as version 2 at its next change. Version 4: job
    /// records of version 3, pipeline and step records and history entries of version 2, each
    /// ending with a CRC32C of its bytes (``Seal``), so a damaged record is an error, never a
    /// different job; no database is added, and older records stay readable and are sealed at
    /// their next change. Version 5: events may carry who made the change (flag bit 3, the
    /// actor), and the history holds queue events (paused, resumed, limited, unlimited) under
    /// the all-zero job id; nothing is rewritten, the version only says that a program of
    /// version 4 would not read them. Version 6: job records of version 4 (a job's own timeout
    /// and its headers, flag bits 5 and 6) and the `progress` database, created empty when an
    /// older store is first opened writable; older records stay readable as they are. Version
    /// 7: the `workers` database (schedulers' heartbeats, ``WorkerFormat``), created empty when
    /// an older store is first opened writable. Version 8: schedule records of version 2 (the
    /// job "run now" enqueues, and a seal); nothing is rewritten — a version-1 record reads as a
    /// schedule keeping no job and is rewritten at its next registration — the version only
    /// says that a program of version 7 would not read them.
    package static let formatVersion: UInt32 = 8
}

/// Keys of the `meta` database.
enum MetaKey {
    /// UInt32 LE: the store format version.
    static let formatVersion = "format_version"
    /// UInt64 LE: jobs in a state. `counter/state/<state>`.
    static func stateCounter(_ state: JobState) -> String { stateCounterKeys[Int(state.rawValue)] }
    /// Every state's counter key, built once (the counts are read and written on hot paths);
    /// the raw values are 0, 1, 2… in `allCases` order.
    private static let stateCounterKeys = JobState.allCases.map { "counter/state/\($0)" }
    /// UInt64 LE: jobs of a queue in a state. `counter/queue/<state>/<queue>`.
    static func queueCounter(_ queue: String, _ state: JobState) -> String { queueCounterPrefix(state) + queue }
    /// ``queueCounter(_:_:)``'s bytes lent to `body`, built on the stack: each commit writes a
    /// few (built as strings, with the values as arrays, they were 6 % of a single transition's
    /// instructions).
    static func withQueueCounter<R>(_ queue: String, _ state: JobState, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        try StringCodec.withEncoded(queueCounterPrefix(state)) { prefix in
            try StringCodec.withEncoded(queue) { name in
                try withUnsafeTemporaryAllocation(byteCount: prefix.count + name.count, alignment: 1) { key in
                    key.copyMemory(from: prefix)
                    UnsafeMutableRawBufferPointer(rebasing: key[prefix.count...]).copyMemory(from: name)
                    return try body(UnsafeRawBufferPointer(key))
                }
            }
        }
    }
    /// Prefix of every queue counter of a state.
    static func queueCounterPrefix(_ state: JobState) -> String { queueCounterPrefixes[Int(state.rawValue)] }
    private static let queueCounterPrefixes = JobState.allCases.map { "counter/queue/\($0)/" }
    /// UInt64 LE: pipelines in a state. `counter/pipeline/<state>`.
    static func pipelineCounter(_ state: PipelineState) -> String { pipelineCounterKeys[Int(state.rawValue)] }
    /// Every pipeline state's counter key, built once (raw values are 0, 1, 2…, as for jobs).
    private static let pipelineCounterKeys = PipelineState.allCases.map { "counter/pipeline/\($0)" }
    /// Prefix of every counter.
    static let counterPrefix = "counter/"
    /// Prefixes of the job counters: per state, and per queue and state.
    static let jobCounterPrefixes = ["counter/state/", "counter/queue/"]
    /// Prefix of every key that controls a queue (paused, rate limit).
    static let queueControlPrefix = "queue/"
    /// Int64 LE (µs): when the queue was paused. Present while it is paused. `queue/paused/<queue>`.
    static func pausedQueue(_ queue: String) -> String { pausedQueuePrefix + queue }
    /// Prefix of every paused-queue key.
    static let pausedQueuePrefix = "queue/paused/"
    /// A queue's rate limit and token bucket (``RateLimit``). `queue/rate/<queue>`.
    static func rateLimit(_ queue: String) -> String { rateLimitPrefix + queue }
    /// Prefix of every rate-limit key.
    static let rateLimitPrefix = "queue/rate/"
    /// A periodic job's registration (``ScheduleFormat``). `schedule/<name>`.
    static func schedule(_ name: String) -> String { schedulePrefix + name }
    /// Prefix of every schedule key.
    static let schedulePrefix = "schedule/"

    /// The queue named by a queue-counter key of `state` (the key starts with ``queueCounterPrefix(_:)``).
    static func queue(fromCounterKey key: UnsafeRawBufferPointer, state: JobState) -> String {
        String(decoding: key.dropFirst(queueCounterPrefix(state).utf8.count), as: UTF8.self)
    }
}

/// Counters in `meta`: UInt64 little-endian values, encoded and decoded only here.
enum Counters {
    static func encode(_ value: Int64) -> [UInt8] { withUnsafeBytes(of: UInt64(bitPattern: value).littleEndian) { Array($0) } }

    /// Decodes a stored 8-byte value (a counter, or a time); `key` names it in the error.
    static func decode(_ bytes: UnsafeRawBufferPointer, key: @autoclosure () -> String) throws -> Int64 {
        guard bytes.count == 8 else {
            throw JobStoreError(.corruptRecord, "meta \(key()) holds \(bytes.count) bytes, not 8", hint: "Run `jobstore verify`")
        }
        return Int64(bitPattern: UInt64(littleEndian: bytes.loadUnaligned(as: UInt64.self)))
    }

    /// A counter's value (0 when absent). A negative one is damage, never a count.
    static func read(_ txn: Transaction, _ meta: Database<StringCodec, BytesCodec>, _ key: String) throws -> Int64 {
        try StringCodec.withEncoded(key) { try read(txn, meta, rawKey: $0) }
    }

    /// ``read(_:_:_:)`` with the key given as its bytes.
    static func read(_ txn: Transaction, _ meta: Database<StringCodec, BytesCodec>, rawKey key: UnsafeRawBufferPointer) throws -> Int64 {
        let value = try txn.withValue(meta, rawKey: key) { bytes in try bytes.map { try decode($0, key: name(key)) } ?? 0 }
        guard value >= 0 else {
            throw JobStoreError(.corruptRecord, "counter \(name(key)) holds \(value), which no count can be", hint: "Run `jobstore verify`")
        }
        return value
    }

    /// Adds `delta` to the counter under `key`, deleting it when it reaches 0 (an absent
    /// counter is 0), with the value's bytes on the stack.
    ///
    /// - Throws: `.corruptRecord` when the counter would go below 0 (it no longer matches the
    ///   jobs: `jobstore verify` says where).
    static func add(_ delta: Int64, _ txn: WriteTransaction, _ meta: Database<StringCodec, BytesCodec>, rawKey key: UnsafeRawBufferPointer) throws {
        let updated = try read(txn, meta, rawKey: key) + delta
        if updated < 0 {
            throw JobStoreError(.corruptRecord, "counter \(name(key)) would become \(updated)", hint: "Run `jobstore verify`")
        }
        if updated == 0 {
            try txn.delete(meta, rawKey: key)
        } else {
            try withUnsafeBytes(of: UInt64(bitPattern: updated).littleEndian) { try txn.put(meta, rawKey: key, rawValue: $0) }
        }
    }

    /// A key's bytes as text, for an error.
    private static func name(_ key: UnsafeRawBufferPointer) -> String { String(decoding: key, as: UTF8.self) }
}

/// Builders of index keys.
enum Keys {
    @inline(__always)
    static func orderedTime(_ time: Timestamp) -> UInt64 {
        (UInt64(bitPattern: time.microseconds) ^ (1 << 63)).bigEndian
    }

    static func time(from bytes: UnsafeRawBufferPointer, at offset: Int) -> Timestamp {
        let raw = UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
        return Timestamp(microseconds: Int64(bitPattern: raw ^ (1 << 63)))
    }

    static func id(_ id: JobID) -> [UInt8] { id.withBytes { Array($0) } }

    /// A scheduler's id (16 bytes, big-endian), the key of its `workers` record.
    static func owner(_ id: OwnerToken) -> [UInt8] { Keys.id(JobID(high: id.high, low: id.low)) }

    /// The scheduler id a `workers` key holds.
    static func owner(_ key: UnsafeRawBufferPointer) throws -> OwnerToken {
        guard key.count == 16 else {
            throw JobStoreError(.corruptRecord, "a key of the workers database has \(key.count) bytes, not 16", hint: "Run `jobstore verify`")
        }
        let id = try trailingID(key, index: Schema.workers.name)
        return OwnerToken(high: id.high, low: id.low)
    }

    // Each key of a job's index entries is written by one function into a caller's buffer (the
    // write path builds keys on the stack, `IndexEntry.writeKey`); the array builders below
    // call the same functions.

    /// The most bytes a job's index key can take: a ready key with a queue name as long as a
    /// record can hold (255 bytes), longer than any unique key.
    static let maxJobKeyBytes = 255 + 26

    /// Writes state · time · id (25 bytes) at the start of `raw`; returns 25.
    static func writeStateCreated(_ state: JobState, _ time: Timestamp, _ id: JobID, into raw: UnsafeMutableRawBufferPointer) -> Int {
        raw[0] = state.rawValue
        raw.storeBytes(of: orderedTime(time), toByteOffset: 1, as: UInt64.self)
        id.store(into: raw, at: 9)
        return 25
    }

    /// Writes time · id (24 bytes) at the start of `raw`; returns 24.
    static func writeCreated(_ time: Timestamp, _ id: JobID, into raw: UnsafeMutableRawBufferPointer) -> Int {
        raw.storeBytes(of: orderedTime(time), toByteOffset: 0, as: UInt64.self)
        id.store(into: raw, at: 8)
        return 24
    }

    /// Writes (255 − priority) · runAt · id (25 bytes) at `offset` of `raw`; returns 25.
    static func writeReadyAny(_ priority: UInt8, _ runAt: Timestamp, _ id: JobID, into raw: UnsafeMutableRawBufferPointer, at offset: Int = 0) -> Int {
        raw[offset] = 255 - priority
        raw.storeBytes(of: orderedTime(runAt), toByteOffset: offset + 1, as: UInt64.self)
        id.store(into: raw, at: offset + 9)
        return 25
    }

    /// Writes queue · 0x00 · (255 − priority) · runAt · id at the start of `raw`; returns its length.
    static func writeReady(_ queue: String, _ priority: UInt8, _ runAt: Timestamp, _ id: JobID, into raw: UnsafeMutableRawBufferPointer) throws -> Int {
        let length = try writeText(queue, "queue", into: raw)
        raw[length] = 0
        return length + 1 + writeReadyAny(priority, runAt, id, into: raw, at: length + 1)
    }

    /// Writes a unique key's bytes at the start of `raw`; returns their count.
    static func writeUnique(_ key: String, into raw: UnsafeMutableRawBufferPointer) throws -> Int {
        try writeText(key, "unique key", into: raw)
    }

    /// Copies `text`'s UTF-8 (at most 255 bytes, the most a record holds) to the start of `raw`.
    private static func writeText(_ text: String, _ field: String, into raw: UnsafeMutableRawBufferPointer) throws -> Int {
        var text = text
        return try text.withUTF8 { bytes in
            guard bytes.count <= 255 else {
                throw JobStoreError(.invalidField, "a \(field) of \(bytes.count) bytes is too long for an index key (at most 255)")
            }
            raw.copyMemory(from: UnsafeRawBufferPointer(bytes))
            return bytes.count
        }
    }

    /// An array of at most `capacity` bytes written by `write` (which returns how many it wrote).
    static func bytes(_ capacity: Int, _ write: (UnsafeMutableRawBufferPointer) throws -> Int) rethrows -> [UInt8] {
        try [UInt8](unsafeUninitializedCapacity: capacity) { buffer, count in
            count = try write(UnsafeMutableRawBufferPointer(buffer))
        }
    }

    /// state · createdAt · id (25 bytes).
    static func stateCreated(_ state: JobState, _ createdAt: Timestamp, _ id: JobID) -> [UInt8] {
        bytes(25) { writeStateCreated(state, createdAt, id, into: $0) }
    }

    /// The 9-byte prefix state · createdAt (id omitted), for range bounds.
    static func stateCreatedPrefix(_ state: JobState, _ createdAt: Timestamp) -> [UInt8] {
        Array(stateCreated(state, createdAt, JobID(high: 0, low: 0)).prefix(9))
    }

    /// The `idx.state_created` range of the jobs in `state` created before `cutoff`.
    static func stateCreated(_ state: JobState, before cutoff: Timestamp) -> KeyRange<[UInt8]> {
        .between(stateCreatedPrefix(state, Timestamp(microseconds: .min)), stateCreatedPrefix(state, cutoff))
    }

    /// createdAt · id (24 bytes).
    static func created(_ createdAt: Timestamp, _ id: JobID) -> [UInt8] {
        bytes(24) { writeCreated(createdAt, id, into: $0) }
    }

    /// (255 − priority) · runAt · id (25 bytes): the queue-less ready key.
    static func readyAny(_ priority: UInt8, _ runAt: Timestamp, _ id: JobID) -> [UInt8] {
        bytes(25) { writeReadyAny(priority, runAt, id, into: $0) }
    }

    /// queue · 0x00: the prefix of a queue's ready entries.
    static func readyQueuePrefix(_ queue: String) -> [UInt8] { Array(queue.utf8) + [0] }

    /// leaseUntil · id (24 bytes).
    static func lease(_ until: Timestamp, _ id: JobID) -> [UInt8] { created(until, id) }

    /// The unique key's bytes.
    static func unique(_ key: String) -> [UInt8] { Array(key.utf8) }

    /// pipeline id · step index (UInt16 BE): 18 bytes.
    static func step(_ pipeline: PipelineID, _ index: Int) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: 18) { buffer, count in
            let raw = UnsafeMutableRawBufferPointer(buffer)
            pipeline.bits.store(into: raw, at: 0)
            raw.storeBytes(of: UInt16(index).bigEndian, toByteOffset: 16, as: UInt16.self)
            count = 18
        }
    }

    /// The step index at the end of a `pipeline_steps` key.
    static func stepIndex(_ key: UnsafeRawBufferPointer) throws -> Int {
        guard key.count == 18 else {
            throw JobStoreError(.corruptRecord, "a pipeline_steps key of \(key.count) bytes is not pipeline id · step", hint: "Run `jobstore verify`")
        }
        return Int(UInt16(bigEndian: key.loadUnaligned(fromByteOffset: 16, as: UInt16.self)))
    }

    /// The pipeline id of a `pipelines` or `pipeline_steps` key (its first 16 bytes).
    static func pipelineID(_ key: UnsafeRawBufferPointer) throws -> PipelineID {
        guard key.count >= 16, let bits = JobID(bytes: UnsafeRawBufferPointer(rebasing: key[0..<16])) else {
            throw JobStoreError(.corruptRecord, "a pipeline key of \(key.count) bytes is too short for an id", hint: "Run `jobstore verify`")
        }
        return PipelineID(bits)
    }

    /// state · createdAt · pipeline id (25 bytes), the `idx.pipeline_state_created` key.
    static func pipelineStateCreated(_ state: PipelineState, _ createdAt: Timestamp, _ id: PipelineID) -> [UInt8] {
        var key = stateCreated(.waiting, createdAt, id.bits)
        key[0] = state.rawValue
        return key
    }

    /// state · updatedAt · id (25 bytes), the `idx.finished` key of a finished job (the
    /// `idx.state_created` layout, with the finish time).
    static func finished(_ state: JobState, _ finishedAt: Timestamp, _ id: JobID) -> [UInt8] {
        stateCreated(state, finishedAt, id)
    }

    /// state · finishedAt · pipeline id, the `idx.pipeline_finished` key of a finished pipeline.
    static func pipelineFinished(_ state: PipelineState, _ finishedAt: Timestamp, _ id: PipelineID) -> [UInt8] {
        pipelineStateCreated(state, finishedAt, id)
    }

    /// The `idx.pipeline_state_created` range of the pipelines in `state` created before `cutoff`.
    static func pipelineStateCreated(_ state: PipelineState, before cutoff: Timestamp) -> KeyRange<[UInt8]> {
        func prefix(_ time: Timestamp) -> [UInt8] { Array(pipelineStateCreated(state, time, PipelineID(high: 0, low: 0)).prefix(9)) }
        return .between(prefix(Timestamp(microseconds: .min)), prefix(cutoff))
    }

    /// The id at the end of an index key of `index`.
    ///
    /// - Throws: `.corruptRecord` for a key shorter than an id (corrupt data is an error, never a crash).
    @inline(__always)
    static func trailingID(_ key: UnsafeRawBufferPointer, index: String) throws -> JobID {
        // Read on every row of an index scan: the check inline, the error built out of line.
        guard key.count >= 16 else { throw keyTooShort(key.count, index: index) }
        return JobID(
            high: UInt64(bigEndian: key.loadUnaligned(fromByteOffset: key.count - 16, as: UInt64.self)),
            low: UInt64(bigEndian: key.loadUnaligned(fromByteOffset: key.count - 8, as: UInt64.self)))
    }

    @inline(never)
    private static func keyTooShort(_ count: Int, index: String) -> JobStoreError {
        JobStoreError(
            .corruptRecord, "a key of \(count) bytes in \(index) is too short to end with a job id",
            hint: "Run `jobstore verify`; the index can be rebuilt by exporting and importing the store")
    }

    /// The (255 − priority) byte and runAt of a ready key, after the queue prefix of `prefixLength` bytes.
    static func readyOrder(_ key: UnsafeRawBufferPointer, prefixLength: Int) throws -> (level: UInt8, runAt: Timestamp) {
        guard key.count == prefixLength + 25 else {
            throw JobStoreError(
                .corruptRecord, "a ready-index key of \(key.count) bytes does not fit its layout",
                hint: "Run `jobstore verify`")
        }
        return (key[prefixLength], time(from: key, at: prefixLength + 1))
    }
}
