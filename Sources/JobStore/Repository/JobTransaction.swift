import LMDB

/// The open handles of a store's databases.
struct Databases: Sendable {
    let meta: Database<StringCodec, BytesCodec>
    let jobs: Database<BytesCodec, BytesCodec>
    let stateCreated: Database<BytesCodec, EmptyCodec>
    let created: Database<BytesCodec, EmptyCodec>
    let ready: Database<BytesCodec, EmptyCodec>
    let readyAny: Database<BytesCodec, EmptyCodec>
    let lease: Database<BytesCodec, EmptyCodec>
    let unique: Database<BytesCodec, BytesCodec>
    /// `idx.finished`; `nil` only for a format-1 store opened read-only.
    let finished: Database<BytesCodec, EmptyCodec>?
    /// The pipeline databases; `nil` only for a format-1 store opened read-only (it has none,
    /// and cannot be upgraded without writing).
    let pipeline: PipelineDatabases?
    /// `history`; `nil` only for a store of format 1 or 2 opened read-only.
    let events: EventDatabases?

    init(_ env: Environment) throws {
        meta = try env.database(Schema.meta)
        jobs = try env.database(Schema.jobs)
        stateCreated = try env.database(Schema.stateCreated)
        created = try env.database(Schema.created)
        ready = try env.database(Schema.ready)
        readyAny = try env.database(Schema.readyAny)
        lease = try env.database(Schema.lease)
        unique = try env.database(Schema.unique)
        finished = try? env.database(Schema.finished)
        pipeline = try? PipelineDatabases(env)
        events = try? EventDatabases(env)
    }

    /// The job with `id` as `txn` sees it, or `nil`: decoded straight from the mapped page,
    /// the id's bytes the key (no copy). `reading` sees the record's view first.
    func job(_ id: JobID, in txn: Transaction, reading: (borrowing JobRecordView) -> Void = { _ in }) throws -> Job? {
        try id.withBytes { key in
            try txn.withValue(jobs, rawKey: key) { bytes in
                guard let bytes else { return nil }
                let view = try JobRecordView(bytes, id: id)
                reading(view)
                return view.job()
            }
        }
    }

    /// The pipeline databases, which every writable store has.
    func pipelines() throws -> PipelineDatabases {
        guard let pipeline else {
            throw JobStoreError(.newerFormat, "this store is of format 1 and open read-only: it has no pipeline databases", hint: "Open it writable once to upgrade it")
        }
        return pipeline
    }
}

/// The open handles of the pipeline databases (format 2).
struct PipelineDatabases: Sendable {
    let records: Database<BytesCodec, BytesCodec>
    let steps: Database<BytesCodec, BytesCodec>
    let stateCreated: Database<BytesCodec, EmptyCodec>
    let finished: Database<BytesCodec, EmptyCodec>

    /// Every index entry a pipeline has — its state · createdAt entry, and while finished its
    /// state · finishedAt entry — in one place: writes and `verify()` both use it.
    func entries(of pipeline: Pipeline) -> [(database: Database<BytesCodec, EmptyCodec>, key: [UInt8])] {
        var entries = [(stateCreated, Keys.pipelineStateCreated(pipeline.state, pipeline.createdAt, pipeline.id))]
        if let finishedAt = pipeline.finishedAt { entries.append((finished, Keys.pipelineFinished(pipeline.state, finishedAt, pipeline.id))) }
        return entries
    }

    init(_ env: Environment) throws {
        records = try env.database(Schema.pipelines)
        steps = try env.database(Schema.pipelineSteps)
        stateCreated = try env.database(Schema.pipelineStateCreated)
        finished = try env.database(Schema.pipelineFinished)
    }
}

/// The open handle of the history database (format 3).
struct EventDatabases: Sendable {
    /// `history`: every event in commit order.
    let history: Database<BytesCodec, BytesCodec>

    init(_ env: Environment) throws {
        history = try env.database(Schema.history)
    }

    /// The position of the history's newest event in `txn`, or `nil` when it is empty.
    func lastPosition(in txn: Transaction) throws -> HistoryPosition? {
        try txn.withCursor(history) { cursor in
            try cursor.last() ? try cursor.withCurrent { key, _ in try EventFormat.position(fromKey: key) } : nil
        }
    }

    /// The keys of the events recorded before `cutoff` (by the history clock).
    static func keys(before cutoff: Timestamp) -> KeyRange<[UInt8]> {
        .upTo(EventFormat.historyKey(HistoryPosition(time: cutoff, sequence: 0)))
    }
}

/// What a job contributes to the indexes: every (database, key, value) entry, in one place.
/// Writes and `verify()` both use it, so they cannot disagree.
enum IndexEntry: Hashable {
    case stateCreated([UInt8])
    case created([UInt8])
    case ready([UInt8])
    case readyAny([UInt8])
    case lease([UInt8])
    case finished([UInt8])
    case unique(key: [UInt8], id: [UInt8])

    /// The index a kind of entry lives in, one kind per index.
    enum Kind: CaseIterable {
        case stateCreated, created, ready, readyAny, lease, unique, finished
    }

    /// Every kind, in the order entries are listed (kept once: `allCases` builds an array).
    static let kinds = Kind.allCases

    /// The entry of `kind` with `key`; `id`, the value, only for `.unique`.
    init(_ kind: Kind, key: [UInt8], id: [UInt8] = []) {
        self = switch kind {
        case .stateCreated: .stateCreated(key)
        case .created: .created(key)
        case .ready: .ready(key)
        case .readyAny: .readyAny(key)
        case .lease: .lease(key)
        case .unique: .unique(key: key, id: id)
        case .finished: .finished(key)
        }
    }

    /// The index the entry is in.
    var kind: Kind {
        switch self {
        case .stateCreated: .stateCreated
        case .created: .created
        case .ready: .ready
        case .readyAny: .readyAny
        case .lease: .lease
        case .unique: .unique
        case .finished: .finished
        }
    }

    /// The entry's key.
    var key: [UInt8] {
        switch self {
        case .stateCreated(let key), .created(let key), .ready(let key), .readyAny(let key), .lease(let key), .finished(let key): key
        case .unique(let key, _): key
        }
    }

    /// Writes the key of `job`'s entry in the `kind` index into `buffer` (at least
    /// ``Keys/maxJobKeyBytes`` bytes) and returns its length, or `nil` when the job has no entry
    /// there: the one definition of which index entries a job has. Writes build keys with it on
    /// the stack; `verify()` through ``entry(_:of:)``. A unique-key entry's value is the job's id.
    static func writeKey(_ kind: Kind, of job: Job, into buffer: UnsafeMutableRawBufferPointer) throws -> Int? {
        switch kind {
        case .stateCreated: Keys.writeStateCreated(job.state, job.createdAt, job.id, into: buffer)
        case .created: Keys.writeCreated(job.createdAt, job.id, into: buffer)
        case .ready: job.state == .pending ? try Keys.writeReady(job.queue, job.priority, job.runAt, job.id, into: buffer) : nil
        case .readyAny: job.state == .pending ? Keys.writeReadyAny(job.priority, job.runAt, job.id, into: buffer) : nil
        case .lease: job.state == .running ? job.lease.map { Keys.writeCreated($0.expiresAt, job.id, into: buffer) } : nil
        case .unique: job.state.isTerminal ? nil : try job.uniqueKey.map { try Keys.writeUnique($0, into: buffer) }
        case .finished: job.state.isTerminal ? Keys.writeStateCreated(job.state, job.updatedAt, job.id, into: buffer) : nil
        }
    }

    /// Calls `body` with the key of `job`'s entry in the `kind` index, built on the stack, or
    /// with `nil` when the job has none there.
    static func withKey<R>(_ kind: Kind, of job: Job, _ body: (UnsafeRawBufferPointer?) throws -> R) throws -> R {
        try withUnsafeTemporaryAllocation(byteCount: Keys.maxJobKeyBytes, alignment: 8) { buffer in
            try body(try writeKey(kind, of: job, into: buffer).map { UnsafeRawBufferPointer(rebasing: buffer[..<$0]) })
        }
    }

    /// A job's entry in one index, if it has one there (``writeKey(_:of:into:)``, as an entry).
    static func entry(_ kind: Kind, of job: Job) throws -> IndexEntry? {
        try withKey(kind, of: job) { key in
            key.map { IndexEntry(kind, key: Array($0), id: kind == .unique ? Keys.id(job.id) : []) }
        }
    }

    /// Every index entry a job has.
    static func entries(of job: Job) throws -> [IndexEntry] {
        try kinds.compactMap { try entry($0, of: job) }
    }
}

extension Databases {
    /// The key-only index database holding `entry` and its key; `nil` for a unique-key entry,
    /// the one index whose value (the job id) is not empty, and for a finished entry in a
    /// format-1 store opened read-only (it has no `idx.finished`).
    func location(of entry: IndexEntry) -> (database: Database<BytesCodec, EmptyCodec>, key: [UInt8])? {
        keyOnlyIndex(entry.kind).map { ($0, entry.key) }
    }

    /// The key-only index of `kind`; `nil` for `.unique` (its values are ids) and for
    /// `.finished` in a format-1 store opened read-only.
    func keyOnlyIndex(_ kind: IndexEntry.Kind) -> Database<BytesCodec, EmptyCodec>? {
        switch kind {
        case .stateCreated: stateCreated
        case .created: created
        case .ready: ready
        case .readyAny: readyAny
        case .lease: lease
        case .finished: finished
        case .unique: nil
        }
    }

    /// Every key-only index, with how to rebuild an entry from one of its keys.
    var keyOnlyIndexes: [(database: Database<BytesCodec, EmptyCodec>, entry: ([UInt8]) -> IndexEntry)] {
        IndexEntry.kinds.compactMap { kind in keyOnlyIndex(kind).map { (database: $0, entry: { IndexEntry(kind, key: $0) }) } }
    }

    /// The job counters (per state, and per queue and state, by meta key) recounted from the
    /// records as `txn` sees them, reading only each record's state and queue in place (a
    /// tenth of a full decode). `verify()` compares them; `deleteDamaged` writes them.
    func recountJobCounters(in txn: Transaction) throws -> [String: Int64] {
        var counts: [String: Int64] = [:]
        try txn.forEach(jobs) { key, value in
            if let id = JobID(bytes: key), let (state, queue) = try? RecordFormat.stateAndQueue(value, id: id) {
                counts[MetaKey.stateCounter(state), default: 0] += 1
                counts[MetaKey.queueCounter(queue, state), default: 0] += 1
            }
            return true
        }
        return counts
    }

    /// The name of the database holding `entry`.
    func name(of entry: IndexEntry) -> String {
        switch entry {
        case .unique: unique.name
        case .finished: Schema.finished.name
        default: location(of: entry)?.database.name ?? "?"
        }
    }
}

/// A write transaction of a job store, handed to the closure of ``JobRepository/write(_:)-(JobTransaction)->T``.
/// Every operation in one closure commits together or not at all.
///
/// Valid only inside the closure. Every change keeps the record, every index and the counters
/// in step, in the same LMDB transaction.
public final class JobTransaction {
    let txn: WriteTransaction
    let db: Databases
    let ids: JobIDGenerator
    /// The time of this transaction (one clock reading for all its changes).
    public let now: Timestamp
    /// Who makes this transaction's changes, when it is not the program's own code (the admin
    /// tool, the dashboard): every event it records carries it (``JobEvent/actor``, at most 100
    /// bytes), so the history says who retried, cancelled or paused what. `nil` by default.
    @exclusivity(unchecked) public var actor: String?
    // The state below changes on every write. A transaction is used by one thread and no access
    // to it overlaps another, so the dynamic exclusivity checks of class properties are off (as
    // in LMDB's Transaction).
    @exclusivity(unchecked) var changes: [JobChange] = []
    @exclusivity(unchecked) private var counterDeltas = CounterDeltas()
    /// Pipeline steps whose job changed between unfinished, succeeded, failed and cancelled, to be
    /// advanced (see ``advancePipelines()``).
    @exclusivity(unchecked) var pipelineWork = StepWorklist()
    /// The last position given out in the history by this transaction (read from the history
    /// at the first event).
    @exclusivity(unchecked) private var historyClock: HistoryPosition?
    /// The timeline of the record ``job(_:)`` read last, in place on LMDB's page, with the
    /// transaction's write count then: while no write has happened since, the bytes are valid
    /// and a change of that job appends to them without looking its record up again.
    @exclusivity(unchecked) private var lastRead: (id: JobID, timeline: UnsafeRawBufferPointer?, writeCount: UInt64)?
    /// Bytes reused for every record and history entry this transaction writes
    /// (``scratch(_:)``), allocated at the first; each put copies them to LMDB's page before
    /// the next encoding.
    @exclusivity(unchecked) private var scratchBytes = UnsafeMutableRawBufferPointer(start: nil, count: 0)
    /// New records and creation-time entries that went in at the end of their database (for
    /// tests; ``putRecord(_:event:appendingTo:options:)``, ``putEntry(_:key:of:)``).
    @exclusivity(unchecked) private(set) var appendedPuts = 0

    init(txn: WriteTransaction, db: Databases, ids: JobIDGenerator, now: Timestamp) {
        self.txn = txn
        self.db = db
        self.ids = ids
        self.now = now
    }

    deinit { scratchBytes.deallocate() }

    // MARK: Reading inside the transaction

    /// The job with `id` as this transaction sees it, or `nil`.
    public func job(_ id: JobID) throws -> Job? {
        try db.job(id, in: txn) { view in lastRead = (id, view.timeline, txn.writeCount) }
    }

    func existing(_ id: JobID) throws -> Job {
        guard let job = try job(id) else { throw JobStoreError.notFound(id) }
        return job
    }

    // MARK: Inserting

    /// Inserts a job, pending. With a unique key that a live job holds, inserts nothing and
    /// returns that job.
    ///
    /// - Throws: `.invalidField` for a field out of its limits, `.invalidField` for a chosen id
    ///   that exists.
    @discardableResult
    public func insert(_ new: NewJob) throws -> Job {
        if let key = new.uniqueKey, let holder = try uniqueHolder(key) {
            return holder
        }
        return try add(job(from: new, state: .pending, pipeline: nil))
    }

    /// The job a ``NewJob`` describes, created now (or at its chosen time).
    func job(from new: NewJob, state: JobState, pipeline: PipelineReference?) -> Job {
        let id = new.id ?? ids.next(milliseconds: UInt64(max(0, (new.createdAt ?? now).microseconds / 1000)))
        return Job(new, id: id, now: now, state: state, pipeline: pipeline)
    }

    /// Stores a complete job exactly as given, in any state — for imports, restores and
    /// reproducible workloads. Validated, indexed and counted like an insert.
    ///
    /// - Throws: `.invalidField` for a field out of its limits, a running job without a lease,
    ///   or an id that exists.
    @discardableResult
    ///
    /// `timeline` (an import of an export) is the job's past: its events come first in the job's
    /// timeline, before the `inserted` event this restore records (the history gets only that).
    public func restore(_ job: Job, timeline: JobTimeline? = nil) throws -> Job {
        if !job.state.isTerminal, let key = job.uniqueKey, let holder = try uniqueHolder(key) {
            throw JobStoreError(
                .invalidField, "job \(job.id) has unique key '\(key)', which live job \(holder.id) holds", jobID: job.id)
        }
        return try add(job, restoring: true, timeline: timeline)
    }

    /// Adds a new job; `restoring` says whether it is a whole job put back (import, restore),
    /// or a `NewJob` inserted, for the hint when its id is taken. A restored job's `timeline`
    /// comes before its `inserted` event.
    func add(_ job: Job, restoring: Bool = false, timeline: JobTimeline? = nil) throws -> Job {
        try job.validate()
        let event = recorded(.inserted, job)
        do {
            if let timeline, !timeline.events.isEmpty || timeline.dropped > 0 {
                try EventFormat.encodeTimeline(timeline).withUnsafeBytes { block in
                    try putRecord(job, event: event, appendingTo: block, options: .noOverwrite)
                }
            } else {
                try putRecord(job, event: event, inserting: true, options: .noOverwrite)
            }
        } catch LMDBError.Code.keyExists {
            throw JobStoreError(
                .invalidField, "a job with id \(job.id) is already in the store", jobID: job.id,
                hint: restoring ? "Import into another store, or delete the job first" : "Give the NewJob no id to get a fresh one")
        }
        for kind in IndexEntry.kinds { try putEntry(kind, of: job) }
        count(job, +1)
        try record(event, of: job.id)
        changes.append(JobChange(kind: .inserted, id: job.id, job: job, previousState: nil))
        return job
    }

    /// Inserts jobs in order (see ``insert(_:)-(NewJob)``).
    @discardableResult
    public func insert(_ jobs: [NewJob]) throws -> [Job] {
        try jobs.map { try insert($0) }
    }

    func uniqueHolder(_ key: String) throws -> Job? {
        guard !key.isEmpty, key.utf8.count <= JobLimits.maxUniqueKeyBytes else { return nil }  // validate() reports it
        guard let idBytes = try txn.get(db.unique, Keys.unique(key)) else { return nil }
        let id = try idBytes.withUnsafeBytes { bytes -> JobID in
            guard let id = JobID(bytes: bytes) else {
                throw JobStoreError(.corruptRecord, "the unique-key index entry '\(key)' holds \(bytes.count) bytes, not an id")
            }
            return id
        }
        return try job(id)
    }

    // MARK: Changing

    /// Changes a job through `body` and stores the result, moving every index entry and counter
    /// with it. A change of state must be legal (``JobState/canMove(to:)``); the id and creation
    /// time cannot change.
    @discardableResult
    public func update(_ id: JobID, _ body: (inout Job) throws -> Void) throws -> Job {
        try update(try existing(id), body)
    }

    /// Changes `old` (just read in this transaction) through `body`; see ``update(_:_:)-(JobID,_)``.
    /// The job's timeline records `event`, or what the change itself says (``JobEvent/kind(from:to:)``).
    @discardableResult
    func update(_ old: Job, recording event: JobEvent.Kind? = nil, _ body: (inout Job) throws -> Void) throws -> Job {
        let new = try old.changed(at: now, body)
        if let reference = old.stepToCheck(new) {
            let step = try step(reference)
            try old.checkStep(new, step: step.name, remaining: step.remainingDependencies)
        }
        try replace(old, with: new, recording: event ?? JobEvent.kind(from: old, to: new))
        return new
    }

    /// Moves a job to `state` with the side effects that state needs
    /// (``Job/transition(to:at:lease:)``).
    @discardableResult
    public func transition(_ id: JobID, to state: JobState, lease: Duration = .seconds(300)) throws -> Job {
        try update(id) { try $0.transition(to: state, at: now, lease: lease) }
    }

    /// Deletes a job with its index entries. Returns false if there was none.
    ///
    /// - Throws: `.invalidArgument` for a pipeline step's job: it is deleted with its pipeline
    ///   (``deletePipeline(_:)``).
    @discardableResult
    public func delete(_ id: JobID) throws -> Bool {
        guard let job = try job(id) else { return false }
        if let step = job.pipeline {
            throw JobStoreError(
                .invalidArgument, "job \(id) is step \(step.step) of pipeline \(step.pipeline); deleting it alone would break the pipeline",
                jobID: id, hint: "Delete the whole pipeline (deletePipeline, `jobstore pipelines delete`)")
        }
        try remove(job, recording: .deleted)
        return true
    }

    /// Deletes a job whose record cannot be read: a damaged record (`verify` reports it as
    /// `badRecord`; its seal does not match, or its fields do not decode), which ``delete(_:)``
    /// cannot remove, since it reads the record to find the job's index entries.
    ///
    /// Removes the record and every index entry that names the id, then recounts the job
    /// counters from the records left. Each index and every record is walked: O(n), an
    /// operator's repair, not a program's everyday call. No `deleted` event is recorded (what
    /// the job was is unknown); its earlier history events stay until pruned.
    ///
    /// - Returns: how many index entries named the job (and were removed).
    /// - Throws: `.notFound` when no record is stored under `id`; `.invalidArgument` when the
    ///   record reads (delete the job with ``delete(_:)``) or a pipeline step names the job
    ///   (delete the pipeline).
    @discardableResult
    public func deleteDamaged(_ id: JobID) throws -> Int {
        let key = Keys.id(id)
        let readable: Bool? = try txn.withValue(db.jobs, key) { bytes in bytes.map { (try? RecordFormat.decode($0, id: id)) != nil } }
        guard let readable else {
            throw JobStoreError(.notFound, "no job \(id)", jobID: id)
        }
        if readable {
            throw JobStoreError(
                .invalidArgument, "the record of job \(id) reads: it is not damaged", jobID: id, hint: "Delete it as any job (`jobstore delete`)")
        }
        if let tables = db.pipeline {
            var step: (PipelineID, Int)?
            try txn.forEach(tables.steps) { stepKey, value in
                // A step record that cannot be read itself is verify's to report, not a reference.
                guard let pipeline = try? Keys.pipelineID(stepKey), let index = try? Keys.stepIndex(stepKey),
                    (try? PipelineFormat.decodeStep(value, pipeline: pipeline, index: index))?.jobID == id
                else { return true }
                step = (pipeline, index)
                return false
            }
            if let (pipeline, index) = step {
                throw JobStoreError(
                    .invalidArgument, "job \(id) is step \(index) of pipeline \(pipeline); deleting it alone would break the pipeline",
                    jobID: id, hint: "Delete the whole pipeline (`jobstore pipelines delete`)")
            }
        }
        try txn.delete(db.jobs, key)
        var removed = 0
        var state: JobState?
        for (database, _) in db.keyOnlyIndexes {
            var named: [[UInt8]] = []
            try txn.forEach(database) { indexKey, _ in
                if indexKey.count >= 16 && indexKey.suffix(16).elementsEqual(key) { named.append(Array(indexKey)) }
                return true
            }
            if database.name == db.stateCreated.name, let first = named.first?.first { state = JobState(rawValue: first) }
            for indexKey in named { try txn.delete(database, indexKey) }
            removed += named.count
        }
        var unique: [[UInt8]] = []
        try txn.forEach(db.unique) { uniqueKey, value in
            if value.elementsEqual(key) { unique.append(Array(uniqueKey)) }
            return true
        }
        for uniqueKey in unique { try txn.delete(db.unique, uniqueKey) }
        removed += unique.count
        try recountJobCounters()
        changes.append(JobChange(kind: .deleted, id: id, job: nil, previousState: state))
        return removed
    }

    /// Rewrites the job counters (per state, and per queue and state) from the records as this
    /// transaction sees them, reading each record's state and queue in place; the counter
    /// changes this transaction had pending are in the records, so they are dropped.
    private func recountJobCounters() throws {
        let counts = try db.recountJobCounters(in: txn)
        var stale: [String] = []
        for prefix in MetaKey.jobCounterPrefixes {
            try txn.forEach(db.meta, prefix: Array(prefix.utf8)) { key, _ in
                stale.append(String(decoding: key, as: UTF8.self))
                return true
            }
        }
        for key in stale where counts[key] == nil { try txn.delete(db.meta, key) }
        for (key, count) in counts { try txn.put(db.meta, key, Counters.encode(count)) }
        counterDeltas.dropJobCounters()
    }

    // MARK: Claims and their outcomes

    /// Claims up to `limit` ready jobs — pending, `runAt` come — of `queue` (or of any queue when
    /// `nil`): highest priority first, then earliest `runAt`, then oldest. Each becomes running
    /// with attempts + 1 and a lease until now + `lease` held by `owner`. Paused queues give
    /// none (``pause(queue:)``).
    ///
    /// Cost: O(log n) per claimed job, plus one seek per priority level that has only future jobs.
    public func claim(queue: String? = nil, limit: Int = 1, lease: Duration, owner: OwnerToken) throws -> [Job] {
        try claimBatch(queue: queue, limit: limit, lease: lease, owner: owner).jobs
    }

    /// ``claim(queue:limit:lease:owner:)``, also telling when to look again: when fewer than
    /// `limit` jobs were ready, the earliest `runAt` among the queue's pending jobs whose time
    /// has not come (found on the way: the first future entry of each priority level); when a
    /// rate limit held jobs back, the time of its next token, if earlier.
    public func claimBatch(queue: String? = nil, limit: Int, lease: Duration, owner: OwnerToken) throws -> ClaimBatch {
        guard limit > 0 else { return ClaimBatch(jobs: [], nextRunAt: nil) }
        // Paused queues give nothing; rate-limited ones no more than their tokens. From every
        // queue, each candidate's queue is read only while some queue is paused or limited.
        var gate = try claimGate(queue)
        if let queue, gate.paused.contains(queue) { return ClaimBatch(jobs: [], nextRunAt: nil) }
        var throttled: Timestamp?  // when a rate-limited queue gets its next token
        let prefix = queue.map(Keys.readyQueuePrefix) ?? []
        let index = queue == nil ? db.readyAny : db.ready
        var chosen: [JobID] = []
        var nextRunAt: Timestamp?
        try txn.withCursor(index) { cursor in
            var found = try prefix.isEmpty ? cursor.first() : cursor.seek(prefix: prefix)
            while found && chosen.count < limit {
                // Key: [queue 0x00] (255 − priority) runAt id.
                let (level, runAt, id) = try cursor.withCurrent { key, _ -> (UInt8, Timestamp, JobID) in
                    let (level, runAt) = try Keys.readyOrder(key, prefixLength: prefix.count)
                    return (level, runAt, try Keys.trailingID(key, index: index.name))
                }
                if runAt <= now {
                    let jobQueue = try queue ?? (gate.checksQueues ? existing(id).queue : "")
                    if !gate.checksQueues || gate.admit(jobQueue) {
                        chosen.append(id)
                    } else if let bucket = gate.buckets[jobQueue], !gate.paused.contains(jobQueue) {
                        throttled = min(throttled ?? bucket.nextTokenAt, bucket.nextTokenAt)
                        if queue != nil { break }  // this queue's tokens are spent
                    }
                    found = try cursor.next()
                } else {
                    nextRunAt = min(nextRunAt ?? runAt, runAt)
                    if level == 255 { break }  // the lowest priority has only future jobs
                    // Every later job of this priority is in the future: jump to the next priority.
                    found = try cursor.seek(atLeast: prefix + [level + 1])
                }
                if found && !prefix.isEmpty {
                    found = try cursor.withCurrent { key, _ in key.starts(with: prefix) }
                }
            }
        }
        let expiry = now.adding(lease)
        let jobs = try chosen.map { id in
            try update(id) { job in
                guard job.state == .pending else {
                    throw JobStoreError(
                        .corruptRecord, "the ready index lists job \(id), which is \(job.state)", jobID: id,
                        hint: "Run `jobstore verify`")
                }
                job.claim(until: expiry, owner: owner)
            }
        }
        try save(gate)
        let next = [jobs.count < limit ? nextRunAt : nil, throttled].compactMap { $0 }.min()
        return ClaimBatch(jobs: jobs, nextRunAt: next)
    }

    /// Checks that `owner` still holds the running job's lease.
    private func leased(_ id: JobID, by owner: OwnerToken) throws -> Job {
        let job = try existing(id)
        try job.requireLease(owner)
        return job
    }

    /// Writes how a run ended (succeeded, failed, snoozed or given back), if its owner still
    /// holds the job's lease: what ``complete(_:owner:result:)``, ``fail(_:owner:error:retryAt:)``,
    /// ``snooze(_:owner:until:)`` and ``release(_:owner:)`` each do.
    ///
    /// - Throws: `.leaseLost` if the job was rescued, cancelled or reclaimed meanwhile.
    @discardableResult
    public func finish(_ outcome: JobOutcome) throws -> Job {
        try update(try leased(outcome.id, by: outcome.owner), recording: outcome.kind.event) { outcome.kind.apply(to: &$0, at: now) }
    }

    /// Marks a running job succeeded, if `owner` still holds its lease.
    ///
    /// - Throws: `.leaseLost` if the job was rescued, cancelled or reclaimed meanwhile.
    @discardableResult
    public func complete(_ id: JobID, owner: OwnerToken, result: [UInt8]? = nil) throws -> Job {
        try finish(JobOutcome(id: id, owner: owner, kind: .succeeded(result: result)))
    }

    /// Records a failed attempt of a running job, if `owner` still holds its lease: back to
    /// pending at `retryAt` while attempts remain (and `retryAt` is given), otherwise failed.
    ///
    /// - Throws: `.leaseLost` if the job was rescued, cancelled or reclaimed meanwhile.
    @discardableResult
    public func fail(_ id: JobID, owner: OwnerToken, error: String, retryAt: Timestamp?) throws -> Job {
        try finish(JobOutcome(id: id, owner: owner, kind: .failed(error: error, retryAt: retryAt)))
    }

    /// Extends the lease of a running job held by `owner` to `expiry` (a heartbeat); a later
    /// expiry already set stays (``Job/extendLease(until:)``).
    ///
    /// - Throws: `.leaseLost` if the job was rescued, cancelled or reclaimed meanwhile.
    @discardableResult
    public func extendLease(_ id: JobID, owner: OwnerToken, until expiry: Timestamp) throws -> Job {
        try update(try leased(id, by: owner)) { $0.extendLease(until: expiry) }
    }

    /// Puts a running job held by `owner` back to pending until `until`, without counting the
    /// attempt (attempts − 1): the handler asked to run it later (a snooze).
    ///
    /// - Throws: `.leaseLost` if the job was rescued, cancelled or reclaimed meanwhile.
    @discardableResult
    public func snooze(_ id: JobID, owner: OwnerToken, until: Timestamp) throws -> Job {
        try finish(JobOutcome(id: id, owner: owner, kind: .snoozed(until: until)))
    }

    /// Gives a running job held by `owner` back, runnable now, without counting the attempt: its
    /// worker stops (a graceful shutdown) before the job finished, so another may take it at once
    /// instead of waiting for the lease to expire.
    ///
    /// - Throws: `.leaseLost` if the job was rescued, cancelled or reclaimed meanwhile.
    @discardableResult
    public func release(_ id: JobID, owner: OwnerToken) throws -> Job {
        try finish(JobOutcome(id: id, owner: owner, kind: .released))
    }

    /// Cancels a waiting, pending or running job.
    @discardableResult
    public func cancel(_ id: JobID) throws -> Job {
        try update(id) { try $0.cancel() }
    }

    /// Puts a failed or cancelled job back to pending, runnable now, with one more attempt
    /// allowed. A pipeline step some of whose dependencies have not succeeded goes to `waiting`
    /// instead; either way, its cancelled dependents go back to waiting (see ``retryPipeline(_:)``).
    @discardableResult
    public func retry(_ id: JobID) throws -> Job {
        let job = try existing(id)
        let blocked = try job.pipeline.map { try step($0).remainingDependencies > 0 } ?? false
        return try update(job) { try $0.retry(at: now, blocked: blocked) }
    }

    /// Puts a job back in line, runnable now: a running job returns to pending (its lease is
    /// dropped, so its worker's outcome will be refused); a pending job's runAt becomes now; a
    /// failed or cancelled one is retried (see ``retry(_:)``).
    @discardableResult
    public func requeue(_ id: JobID) throws -> Job {
        let job = try existing(id)
        switch job.state {
        case .failed, .cancelled:
            return try retry(id)
        case .running, .pending:
            return try update(job, recording: .requeued) { job in
                job.state = .pending
                job.runAt = now
            }
        case .waiting, .succeeded:
            throw JobStoreError.illegalTransition(id, from: job.state, to: .pending)
        }
    }

    /// Rescues up to `limit` running jobs whose lease expired before now: back to pending (runnable
    /// now) while attempts remain, otherwise failed; either way an error records the lost lease.
    /// The state and the lease are re-checked here, in the writing transaction. The jobs in
    /// `sparing` are passed over: a scheduler spares those it still runs itself, whose leases
    /// expired only because it stalled (a paused process, a starved thread pool, a slow write).
    public func rescueExpiredLeases(limit: Int = 1000, sparing: Set<JobID> = []) throws -> [Job] {
        guard limit > 0 else { return [] }
        var expired: [JobID] = []
        try txn.forEach(db.lease, in: .upTo(Keys.lease(now, JobID(high: 0, low: 0)))) { key, _ in
            let id = try Keys.trailingID(key, index: db.lease.name)
            if !sparing.contains(id) { expired.append(id) }
            return expired.count < limit
        }
        return try expired.map { id in
            try update(try existing(id), recording: .rescued) { job in
                guard job.state == .running, let lease = job.lease, lease.expiresAt < now else {
                    throw JobStoreError(.corruptRecord, "the lease index lists job \(id), which is \(job.state)", jobID: id)
                }
                job.rescue(at: now, leaseExpiredAt: lease.expiresAt)
            }
        }
    }

    /// Deletes up to `limit` jobs in the terminal `state` created before `cutoff`, oldest first.
    /// Returns how many were deleted. Pipeline steps' jobs are left to their pipeline
    /// (``prunePipelines(state:createdBefore:limit:)``).
    public func prune(state: JobState, createdBefore cutoff: Timestamp, limit: Int) throws -> Int {
        try prune(state: state, by: .created, before: cutoff, limit: limit, after: nil).deleted
    }

    /// Deletes up to `limit` jobs in the terminal `state` that finished (last changed) before
    /// `cutoff`, earliest first, from `idx.finished`. Returns how many were deleted. Pipeline
    /// steps' jobs are left to their pipeline (``prunePipelines(state:finishedBefore:limit:)``).
    public func prune(state: JobState, finishedBefore cutoff: Timestamp, limit: Int) throws -> Int {
        try prune(state: state, by: .finished, before: cutoff, limit: limit, after: nil).deleted
    }

    /// Which time a prune selects by.
    enum PruneTime: Sendable { case created, finished }

    /// A prune by `time` from after index key `after`; also returns the last key looked at, so
    /// the next batch does not look at skipped pipeline jobs again.
    func prune(state: JobState, by time: PruneTime, before cutoff: Timestamp, limit: Int, after: [UInt8]?) throws -> (deleted: Int, last: [UInt8]?) {
        try JobStoreError.requirePositive(limit, "the prune limit (batchSize)")
        guard state.isTerminal else {
            throw JobStoreError(.illegalTransition, "only succeeded, failed or cancelled jobs can be pruned, not \(state) ones")
        }
        let index = time == .created ? db.stateCreated : try writableIndex(.finished)
        var doomed: [Job] = []
        var last: [UInt8]?
        var range = Keys.stateCreated(state, before: cutoff)  // idx.finished has the same layout
        if let after { range.lower = .exclusive(after) }
        try txn.forEach(index, in: range) { key, _ in
            let id = try Keys.trailingID(key, index: index.name)
            last = Array(key)
            if let job = try job(id), job.pipeline == nil { doomed.append(job) }
            return doomed.count < limit
        }
        for job in doomed { try remove(job, recording: .pruned) }
        return (doomed.count, last)
    }

    // MARK: Keeping record, indexes and counters in step

    func replace(_ old: Job, with new: Job, recording event: JobEvent.Kind) throws {
        try JobLimits.validate(new)
        let recorded = recorded(event, new)
        try putRecord(new, event: recorded, inserting: false)
        // Index by index, only the entries that moved; the creation-time entry never does (the
        // id and creation time cannot change), so its key is not even built.
        for kind in IndexEntry.kinds where kind != .created || old.createdAt != new.createdAt || old.id != new.id {
            try IndexEntry.withKey(kind, of: old) { before in
                try IndexEntry.withKey(kind, of: new) { after in
                    if let before, let after, before.elementsEqual(after) { return }
                    if let before { try removeEntry(kind, key: before) }
                    if let after { try putEntry(kind, key: after, of: new) }
                }
            }
        }
        if old.state != new.state || old.queue != new.queue {
            count(old, -1)
            count(new, +1)
        }
        try record(recorded, of: new.id)
        changes.append(JobChange(kind: .updated, id: new.id, job: new, previousState: old.state))
        if pipelineWork.add(new, from: old.state) { try advancePipelines() }
    }

    /// Deletes a job (its timeline with it) and its index entries; the history records `event`
    /// (deleted or pruned).
    func remove(_ job: Job, recording event: JobEvent.Kind) throws {
        try txn.delete(db.jobs, Keys.id(job.id))
        for kind in IndexEntry.kinds { try removeEntry(kind, of: job) }
        count(job, -1)
        try record(recorded(event, job), of: job.id)
        changes.append(JobChange(kind: .deleted, id: job.id, job: nil, previousState: job.state))
    }

    /// Records an event in the store's history, at the next position after the history's last
    /// (the job's own timeline is written with its record: ``putRecord(_:event:inserting:options:)``).
    /// The event of `kind` that a change leaving `job` as it is records, with this transaction's actor.
    func recorded(_ kind: JobEvent.Kind, _ job: Job) -> JobEvent {
        var event = JobEvent.recording(kind, job, at: now)
        if let actor { event.actor = actor }
        return event
    }

    /// Records a queue event (paused, resumed, limited, unlimited) in the history, under no job.
    func recordQueueEvent(_ kind: JobEvent.Kind, _ description: String) throws {
        try record(JobEvent(kind: kind, at: now, state: .waiting, attempts: 0, message: description, actor: actor), of: .none)
    }

    private func record(_ event: JobEvent, of id: JobID) throws {
        guard let events = db.events else {
            throw JobStoreError(.newerFormat, "this store has no history database", hint: "Open it writable once to upgrade it")
        }
        let position = try nextHistoryPosition(events)
        // Key, then value, in the scratch bytes (the record put before copied them to its page).
        let bytes = scratch(EventFormat.historyKeySize + EventFormat.historyValueSize(of: event))
        let keyLength = EventFormat.writeHistoryKey(position, into: bytes)
        let value = UnsafeMutableRawBufferPointer(rebasing: bytes[keyLength...])
        let valueLength = EventFormat.writeHistoryValue(id, event, into: value)
        try txn.put(
            events.history, rawKey: UnsafeRawBufferPointer(rebasing: bytes[..<keyLength]),
            rawValue: UnsafeRawBufferPointer(rebasing: value[..<valueLength]), options: .append)
    }

    /// Puts the record of `job` with `event` appended to the timeline its stored record holds
    /// (none for an insert): the one ``job(_:)`` just read, when no write came between.
    private func putRecord(_ job: Job, event: JobEvent, inserting: Bool, options: PutOptions = []) throws {
        if inserting {
            try putRecord(job, event: event, appendingTo: nil, options: options)
        } else if let lastRead, lastRead.id == job.id, lastRead.writeCount == txn.writeCount {
            try putRecord(job, event: event, appendingTo: lastRead.timeline, options: options)
        } else {
            // Copied out: no write while bytes borrowed from the map are in scope.
            let stored: [UInt8]? = try job.id.withBytes { key in
                try txn.withValue(db.jobs, rawKey: key) { record in
                    try record.flatMap { try RecordFormat.timeline($0, id: job.id) }.map { Array($0) }
                }
            }
            if let stored {
                try stored.withUnsafeBytes { try putRecord(job, event: event, appendingTo: $0, options: options) }
            } else {
                try putRecord(job, event: event, appendingTo: nil, options: options)
            }
        }
    }

    /// Encodes the record — id, then the new timeline, then the record with it — into
    /// ``scratch`` and puts it. No closure holds `job` here: one did, and the optimiser copied
    /// the whole `Job` for it (a retain and a release per text and array of the job).
    private func putRecord(_ job: Job, event: JobEvent, appendingTo stored: UnsafeRawBufferPointer?, options: PutOptions) throws {
        let timeline = try EventFormat.TimelineAppend(event, to: stored, id: job.id)
        let recordSize = RecordFormat.encodedSize(job, timelineCount: timeline.size)
        let bytes = scratch(16 + timeline.size + recordSize)
        job.id.store(into: bytes, at: 0)
        let timelineBytes = UnsafeMutableRawBufferPointer(rebasing: bytes[16..<16 + timeline.size])
        _ = timeline.write(into: timelineBytes)
        let record = UnsafeMutableRawBufferPointer(rebasing: bytes[(16 + timeline.size)...])
        let length = RecordFormat.write(job, timeline: UnsafeRawBufferPointer(timelineBytes), into: record)
        let key = UnsafeRawBufferPointer(rebasing: bytes[..<16]), value = UnsafeRawBufferPointer(rebasing: record[..<length])
        if options.contains(.noOverwrite) {
            // A new job: its id (time-ordered) is usually past the last.
            if try txn.putAppendingIfLast(db.jobs, rawKey: key, rawValue: value, options: options) { appendedPuts += 1 }
        } else {
            try txn.put(db.jobs, rawKey: key, rawValue: value, options: options)
        }
    }

    /// At least `count` bytes of ``scratchBytes``, grown (and its bytes forgotten) when short.
    private func scratch(_ count: Int) -> UnsafeMutableRawBufferPointer {
        if scratchBytes.count < count {
            scratchBytes.deallocate()
            scratchBytes = .allocate(byteCount: max(count, 2 * scratchBytes.count, 1024), alignment: 8)
        }
        return scratchBytes
    }

    /// The history position after the last one given out: the transaction's time, or — when
    /// the history already holds that time or a later one (the clock went back) — the last
    /// position's time with the next sequence number. So positions only grow, in commit order.
    private func nextHistoryPosition(_ events: EventDatabases) throws -> HistoryPosition {
        let last = try historyClock ?? events.lastPosition(in: txn)
        var next = HistoryPosition(time: now, sequence: 0)
        if let last, last.time >= now {
            next = last.sequence == .max
                ? HistoryPosition(time: last.time.adding(.microseconds(1)), sequence: 0)
                : HistoryPosition(time: last.time, sequence: last.sequence + 1)
        }
        historyClock = next
        return next
    }

    /// Puts `job`'s entry in the `kind` index, if it has one there.
    private func putEntry(_ kind: IndexEntry.Kind, of job: Job) throws {
        try IndexEntry.withKey(kind, of: job) { key in
            if let key { try putEntry(kind, key: key, of: job) }
        }
    }

    private func putEntry(_ kind: IndexEntry.Kind, key: UnsafeRawBufferPointer, of job: Job) throws {
        if kind == .unique {
            try job.id.withBytes { id in try txn.put(db.unique, rawKey: key, rawValue: id) }
        } else {
            let index = try writableIndex(kind), empty = UnsafeRawBufferPointer(start: nil, count: 0)
            if kind == .created {
                // Put once, at the insert; creation times grow, so usually past the last.
                if try txn.putAppendingIfLast(index, rawKey: key, rawValue: empty) { appendedPuts += 1 }
            } else {
                try txn.put(index, rawKey: key, rawValue: empty)
            }
        }
    }

    /// Removes `job`'s entry from the `kind` index, if it has one there.
    private func removeEntry(_ kind: IndexEntry.Kind, of job: Job) throws {
        try IndexEntry.withKey(kind, of: job) { key in
            if let key { try removeEntry(kind, key: key) }
        }
    }

    private func removeEntry(_ kind: IndexEntry.Kind, key: UnsafeRawBufferPointer) throws {
        if kind == .unique {
            try txn.delete(db.unique, rawKey: key)
        } else {
            try txn.delete(try writableIndex(kind), rawKey: key)
        }
    }

    /// The key-only index of `kind` (not `.unique`); a writable store has every index (it was
    /// upgraded on open).
    func writableIndex(_ kind: IndexEntry.Kind) throws -> Database<BytesCodec, EmptyCodec> {
        guard let index = db.keyOnlyIndex(kind) else {
            throw JobStoreError(.newerFormat, "this store has no \(kind) index", hint: "Open it writable once to upgrade it")
        }
        return index
    }

    func countPipeline(_ state: PipelineState, _ delta: Int64) {
        counterDeltas.pipelines[state, default: 0] += delta
    }

    private func count(_ job: Job, _ delta: Int64) {
        counterDeltas.add(delta, job.state, queue: job.queue)
    }

    /// Writes the counters changed by this transaction (once per counter, however many jobs changed it).
    func flushCounters() throws {
        try counterDeltas.forEachChange { key, delta in try Counters.add(delta, txn, db.meta, rawKey: key) }
        counterDeltas = CounterDeltas()
    }
}

/// The counter changes of one transaction, named without building their meta keys (those are
/// built on the stack, once per changed counter at the commit, not per changed job), and on the
/// per-job path without hashing: a slot per state, and per queue a slot per state, the queue
/// found by comparing its name with the last one used (a transaction touches few queues).
struct CounterDeltas {
    /// One delta per job state.
    struct PerState {
        var waiting: Int64 = 0, pending: Int64 = 0, running: Int64 = 0
        var succeeded: Int64 = 0, failed: Int64 = 0, cancelled: Int64 = 0

        subscript(state: JobState) -> Int64 {
            get {
                switch state {
                case .waiting: waiting
                case .pending: pending
                case .running: running
                case .succeeded: succeeded
                case .failed: failed
                case .cancelled: cancelled
                }
            }
            set {
                switch state {
                case .waiting: waiting = newValue
                case .pending: pending = newValue
                case .running: running = newValue
                case .succeeded: succeeded = newValue
                case .failed: failed = newValue
                case .cancelled: cancelled = newValue
                }
            }
        }
    }

    struct Queue {
        let name: String
        var deltas = PerState()
    }

    private var states = PerState()
    private var queues: [Queue] = []
    private var lastQueue = 0
    /// Pipelines per state (rarer: a dictionary will do).
    var pipelines: [PipelineState: Int64] = [:]

    mutating func add(_ delta: Int64, _ state: JobState, queue: String) {
        states[state] += delta
        if lastQueue >= queues.count || queues[lastQueue].name != queue {
            if let index = queues.firstIndex(where: { $0.name == queue }) {
                lastQueue = index
            } else {
                queues.append(Queue(name: queue))
                lastQueue = queues.count - 1
            }
        }
        queues[lastQueue].deltas[state] += delta
    }

    /// Forgets the per-state and per-queue changes (they were recounted); keeps the pipelines'.
    mutating func dropJobCounters() {
        states = PerState()
        queues = []
    }

    /// Hands each changed counter's meta key (its bytes, built on the stack) and its delta to
    /// `body` (zeros left out).
    func forEachChange(_ body: (_ key: UnsafeRawBufferPointer, _ delta: Int64) throws -> Void) throws {
        for state in JobState.allCases where states[state] != 0 {
            try StringCodec.withEncoded(MetaKey.stateCounter(state)) { try body($0, states[state]) }
        }
        for queue in queues {
            for state in JobState.allCases where queue.deltas[state] != 0 {
                try MetaKey.withQueueCounter(queue.name, state) { try body($0, queue.deltas[state]) }
            }
        }
        for (state, delta) in pipelines where delta != 0 {
            try StringCodec.withEncoded(MetaKey.pipelineCounter(state)) { try body($0, delta) }
        }
    }
}
