internal import LMDB
import Instrumentation

/// A write transaction of a job store, handed to the closure of `JobRepository/write(_:)-(JobTransaction)->T`.
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
    /// tool, the dashboard): every event it records carries it (`JobEvent/actor`, at most 100
    /// bytes), so the history says who retried, cancelled or paused what. `nil` by default.
    @exclusivity(unchecked) public var actor: String?
    // The state below changes on every write. A transaction is used by one thread and no access
    // to it overlaps another, so the dynamic exclusivity checks of class properties are off (as
    // in LMDB's Transaction).
    @exclusivity(unchecked) var changes: [JobChange] = []
    /// The progress reports stored, for the change feed.
    @exclusivity(unchecked) var progressReports: [ProgressReport] = []
    @exclusivity(unchecked) var counterDeltas = CounterDeltas()
    /// Pipeline steps whose job changed between unfinished, succeeded, failed and cancelled, to be
    /// advanced (see ``advancePipelines()``).
    @exclusivity(unchecked) var pipelineWork = StepWorklist()
    /// The last position given out in the history by this transaction (read from the history
    /// at the first event).
    @exclusivity(unchecked) var historyClock: HistoryPosition?
    /// The timeline of the record ``job(_:)`` read last, in place on LMDB's page, with the
    /// transaction's write count then: while no write has happened since, the bytes are valid
    /// and a change of that job appends to them without looking its record up again.
    @exclusivity(unchecked) var lastRead: (id: JobID, timeline: UnsafeRawBufferPointer?, writeCount: UInt64)?
    /// Bytes reused for every record and history entry this transaction writes
    /// (``scratch(_:)``), allocated at the first; each put copies them to LMDB's page before
    /// the next encoding.
    @exclusivity(unchecked) var scratchBytes = UnsafeMutableRawBufferPointer(start: nil, count: 0)
    /// New records and creation-time entries that went in at the end of their database (for
    /// tests; ``putRecord(_:event:appendingTo:options:)``, ``putEntry(_:key:of:)``).
    @exclusivity(unchecked) var appendedPuts = 0

    /// What writes a new job's trace context into its headers (`nil`: the bootstrapped one).
    let instrument: (any Instrument)?

    init(txn: WriteTransaction, db: Databases, ids: JobIDGenerator, now: Timestamp, instrument: (any Instrument)? = nil) {
        self.txn = txn
        self.db = db
        self.ids = ids
        self.now = now
        self.instrument = instrument
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
        return Job(new, id: id, now: now, state: state, pipeline: pipeline, instrument: instrument)
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
            throw JobStoreError.uniqueKeyHeld(job, key, by: holder)
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
    /// with it. A change of state must be legal (`JobState/canMove(to:)`); the id and creation
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
    /// (`Job/transition(to:at:lease:)`).
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
        if let progress = db.progress { try txn.delete(progress, key) }
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
    /// none (`pause(queue:)`).
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
    /// expiry already set stays (`Job/extendLease(until:)`).
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
        if job.requeueRetries { return try retry(id) }
        return try update(job, recording: .requeued) { try $0.putBack(at: now) }
    }

    /// Rescues up to `limit` running jobs whose lease expired before now: back to pending (runnable
    /// now) while attempts remain, otherwise failed; either way an error records the lost lease.
    /// The state and the lease are re-checked here, in the writing transaction. The jobs in
    /// `sparing` are passed over: a scheduler spares those it still runs itself, whose leases
    /// expired only because it stalled (a paused process, a starved thread pool, a slow write).
    /// `expiredBefore` (at most now; `nil`: now): the time `sparing` was read — a lease that
    /// expired after it may be of a job the scheduler claimed since, so it is left too.
    public func rescueExpiredLeases(limit: Int = 1000, sparing: Set<JobID> = [], expiredBefore: Timestamp? = nil) throws -> [Job] {
        guard limit > 0 else { return [] }
        let cutoff = min(now, expiredBefore ?? now)
        var expired: [JobID] = []
        try txn.forEach(db.lease, in: .upTo(Keys.lease(cutoff, JobID(high: 0, low: 0)))) { key, _ in
            let id = try Keys.trailingID(key, index: db.lease.name)
            if !sparing.contains(id) { expired.append(id) }
            return expired.count < limit
        }
        return try expired.map { id in
            try update(try existing(id), recording: .rescued) { job in
                guard job.state == .running, let lease = job.lease, lease.expiresAt < cutoff else {
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
}
