import Foundation
import JobCore
import Locking
import Logging
import PostgresNIO

/// One transaction of a ``PostgresJobStore``, inside its closure: the embedded store's
/// ``JobStore/JobTransaction`` rules (``JobCore/Job`` changes from `JobRules.swift`), applied to
/// rows. A job is read `FOR UPDATE` before it changes, so concurrent transactions on the same
/// job take turns; pipelines advance in the transaction that finishes a step.
final class PostgresTransaction {
    let connection: PostgresConnection
    let store: PostgresJobStore
    /// The time of this transaction (one clock reading for all its changes).
    let now = Timestamp.now
    /// Steps whose job moved between unfinished, succeeded, failed and cancelled, to advance
    /// their pipelines.
    private var pipelineWork = StepWorklist()
    /// Who makes this transaction's changes when it is not the program's own code (the admin
    /// tool, the dashboard): every event it records carries it (``JobCore/JobEvent/actor``).
    var actor: String?
    /// The events recorded and not yet written: the next write carries them (``write(_:)``),
    /// and the commit writes what is left (``writeEvents()``).
    private var pending: [RecordedEvent] = []
    /// How many events this transaction has recorded: the next one's number.
    private var recordedCount: Int32 = 0

    init(_ connection: PostgresConnection, store: PostgresJobStore) {
        self.connection = connection
        self.store = store
    }

    // MARK: Statements

    func run(_ query: PostgresQuery) async throws {
        _ = try await connection.answer(query, logger: store.logger)
    }

    func rows<T>(_ query: PostgresQuery, _ decode: (PostgresRow) throws -> T) async throws -> [T] {
        var result: [T] = []
        for try await row in try await connection.answer(query, logger: store.logger) { result.append(try decode(row)) }
        return result
    }

    /// Runs a statement that changes rows, carrying the events recorded so far
    /// (``Statements/carrying(_:_:)``): a change and its history in one round trip.
    func write(_ query: PostgresQuery) async throws {
        try await run(takingEvents(query))
    }

    /// ``write(_:)`` for a statement that returns rows.
    func writeRows<T>(_ query: PostgresQuery, _ decode: (PostgresRow) throws -> T) async throws -> [T] {
        try await rows(takingEvents(query), decode)
    }

    private func takingEvents(_ query: PostgresQuery) -> PostgresQuery {
        defer { pending = [] }
        return Statements.carrying(pending, query)
    }

    /// Writes the events no write carried; the transaction runs it just before it commits.
    func writeEvents() async throws {
        guard !pending.isEmpty else { return }
        try await write("SELECT 1")
    }

    /// Runs a claim statement, recording the claims' events in it (``Statements/recordingClaims(_:first:actor:)``);
    /// the claimed jobs in claim order.
    func claiming(_ claim: PostgresQuery) async throws -> [Job] {
        guard store.options.recordsHistory else { return try await rows(claim, JobRow.decode).sorted(by: ClaimOrder.precedes) }
        let jobs = try await writeRows(Statements.recordingClaims(claim, first: recordedCount, actor: actor), JobRow.decode)
        recordedCount += Int32(jobs.count)
        return jobs.sorted(by: ClaimOrder.precedes)
    }

    /// Whether events wait to be written (a lone statement must carry them all).
    var hasPendingEvents: Bool { !pending.isEmpty }

    // MARK: History

    /// Records the event of `kind` for `job` as this transaction's change left it.
    func record(_ kind: JobEvent.Kind, _ job: Job) {
        record(JobEvent.recording(kind, job, at: now, actor: actor), of: job.id)
    }

    /// Records a queue event (paused, resumed, limited, unlimited), under no job.
    func recordQueueEvent(_ kind: JobEvent.Kind, _ description: String) {
        record(JobEvent.queue(kind, description, at: now, actor: actor), of: .none)
    }

    private func record(_ event: JobEvent, of id: JobID) {
        guard store.options.recordsHistory else { return }
        pending.append(RecordedEvent(number: recordedCount, jobID: id, event: event))
        recordedCount += 1
    }

    // MARK: Jobs

    /// The job with `id`, locked for this transaction, or `nil`.
    func job(_ id: JobID) async throws -> Job? {
        try await rows(Statements.job(id, locked: true), JobRow.decode).first
    }

    func existing(_ id: JobID) async throws -> Job {
        guard let job = try await job(id) else { throw Self.notFound(id) }
        return job
    }

    /// The jobs with these ids, in the same order, locked for this transaction (in id order).
    ///
    /// - Throws: `.notFound` for an id without a job.
    func existing(_ ids: [JobID]) async throws -> [Job] {
        let found = Dictionary(try await rows(Statements.lockJobs(ids), JobRow.decode).map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        return try ids.map { id in
            guard let job = found[id] else { throw Self.notFound(id) }
            return job
        }
    }

    static func notFound(_ id: JobID) -> JobStoreError {
        JobStoreError(.notFound, "no job \(id)", jobID: id, hint: "Check the id; it may have been deleted or pruned")
    }

    /// The running job with `id` whose lease `owner` holds.
    func leased(_ id: JobID, by owner: OwnerToken) async throws -> Job {
        let job = try await existing(id)
        try job.requireLease(owner)
        return job
    }

    /// The running jobs among `leases` that their owner still holds, locked for this transaction
    /// (in id order, so concurrent transactions lock them in the same order and cannot
    /// deadlock), by id. A job missing here was deleted, or its lease was lost.
    func held(_ leases: [HeldLease]) async throws -> [JobID: Job] {
        let owners = Dictionary(leases.map { ($0.id, $0.owner) }, uniquingKeysWith: { first, _ in first })
        var held: [JobID: Job] = [:]
        for job in try await rows(Statements.lockJobs(leases.map(\.id)), JobRow.decode) {
            if let owner = owners[job.id], (try? job.requireLease(owner)) != nil { held[job.id] = job }
        }
        return held
    }

    /// Inserts jobs, pending, in one statement; a job whose unique key a live job holds (in the
    /// store, or earlier in `jobs`) is not inserted: that job is returned in its place.
    func insert(_ jobs: [NewJob]) async throws -> [Job] {
        var result: [Job] = []
        var fresh: [Job] = []
        var holders: [String: Job] = [:]
        for new in jobs {
            if let key = new.uniqueKey, let holder = try await uniqueHolder(key, among: holders) {
                result.append(holder)
                continue
            }
            let job = Job(new, id: nextID(new.createdAt ?? now), now: now, state: .pending, pipeline: nil, instrument: store.options.traceInstrument)
            try job.validate()
            if let key = job.uniqueKey { holders[key] = job }
            fresh.append(job)
            result.append(job)
        }
        try await add(fresh)
        return result
    }

    /// Inserts complete new jobs (validated) in one statement, with their `inserted` events;
    /// `restoring` (an import) for the hint when an id is taken.
    func add(_ jobs: [Job], restoring: Bool = false) async throws {
        guard !jobs.isEmpty else { return }
        for job in jobs { record(.inserted, job) }
        do {
            try await write(Statements.insert(jobs))
        } catch let error as PSQLError where error.serverInfo?[.constraintName] == "jobstore_jobs_pkey" {
            throw JobStoreError(
                .invalidField, "a job with a chosen id exists: \(error.serverInfo?[.detail] ?? "")", jobID: jobs.count == 1 ? jobs[0].id : nil,
                hint: restoring ? "Import into another store, or delete the job first" : "NewJob without an id gets a fresh one")
        }
    }

    /// The live job holding unique key `key`: one inserted earlier in this call, or in the store.
    func uniqueHolder(_ key: String, among inserted: [String: Job] = [:]) async throws -> Job? {
        if let holder = inserted[key] { return holder }
        return try await rows(Statements.uniqueHolder(key), JobRow.decode).first
    }

    func nextID(_ time: Timestamp) -> JobID {
        store.ids.next(milliseconds: UInt64(max(0, time.microseconds / 1000)))
    }

    /// Changes `old` (read locked in this transaction) through `body` and stores it, under the
    /// embedded store's rules: a legal move, the pipeline's word on waiting, no lease unless
    /// running, the errors kept as the store keeps them; records `event` (by default the one
    /// the move tells: ``JobCore/JobEvent/kind(from:to:)``); then advances its pipeline.
    @discardableResult
    func update(_ old: Job, recording event: JobEvent.Kind? = nil, _ body: (inout Job) throws -> Void) async throws -> Job {
        let new = try changed(old, body)
        if let reference = old.stepToCheck(new) {
            let step = try await step(reference.pipeline, Int(reference.step))
            try old.checkStep(new, step: step.name, remaining: step.remainingDependencies)
        }
        record(event ?? JobEvent.kind(from: old, to: new), new)
        try await write(try Statements.update(new))
        if pipelineWork.add(new, from: old.state) { try await advancePipelines() }
        return new
    }

    /// Changes jobs (each read locked in this transaction) through their bodies, in order, as
    /// ``update(_:_:)`` does: the jobs outside pipelines are stored together in one statement
    /// (``Statements/saveOutcomes(_:)``: every field a run or a move changes), pipeline steps
    /// one by one, each advancing its pipeline. Returns the changed jobs in the same order.
    func updateAll(_ changes: [(old: Job, event: JobEvent.Kind?, body: (inout Job) throws -> Void)]) async throws -> [Job] {
        var result: [Job] = []
        var batch: [Job] = []
        for (old, event, body) in changes {
            if old.pipeline == nil {
                let new = try changed(old, body)
                record(event ?? JobEvent.kind(from: old, to: new), new)
                batch.append(new)
                result.append(new)
            } else {
                result.append(try await update(old, recording: event, body))
            }
        }
        if !batch.isEmpty { try await write(Statements.saveOutcomes(batch)) }
        return result
    }

    /// `old` changed through `body` under the rules every store keeps — a legal move, no lease
    /// unless running, the errors kept as stored, every field in its limits — not yet stored.
    /// (The pipeline's word on waiting is ``update(_:_:)``'s: only steps wait.)
    func changed(_ old: Job, _ body: (inout Job) throws -> Void) throws -> Job {
        var new = try old.changed(at: now, body)
        new.errors = new.storedErrors
        try new.validate()
        return new
    }

    /// Claims up to `limit` ready jobs of `queue` (see ``Statements/claim(queue:limit:now:expiry:owner:)``),
    /// in claim order; when fewer were ready, also when the queue's next delayed job is due.
    /// From every queue when `queue` is `nil` (``claimFromEveryQueue(limit:lease:owner:)``).
    func claim(queue: String?, limit: Int, lease: Duration, owner: OwnerToken) async throws -> ClaimBatch {
        guard limit > 0 else { return ClaimBatch(jobs: [], nextRunAt: nil) }
        guard let queue else { return ClaimBatch(jobs: try await claimFromEveryQueue(limit: limit, lease: lease, owner: owner), nextRunAt: nil) }
        // A paused queue gives nothing; a rate-limited one no more than its whole tokens.
        var allowed = limit
        var bucket: RateLimit?
        if let control = try await rows(Statements.queueControl(queue), { try QueueRow.decode($0) }).first {
            if control.pausedAt != nil { return ClaimBatch(jobs: [], nextRunAt: nil) }
            if let limit = control.limit?.refilled(at: now) {
                bucket = limit
                allowed = min(allowed, Int(limit.tokens.rounded(.down)))
                if allowed == 0 { return ClaimBatch(jobs: [], nextRunAt: limit.nextTokenAt) }
            }
        }
        let jobs = try await claiming(Statements.claim(queue: queue, limit: allowed, now: now, expiry: now.adding(lease), owner: owner))
        var next: Timestamp?
        if jobs.count < allowed {
            next = try await rows(Statements.nextRunAt(queue: queue, now: now)) { try $0.decode(Int64?.self) }
                .first?.map(Timestamp.init(microseconds:))
        }
        if let bucket {
            try await spend(bucket, of: queue, on: jobs.count)
            if allowed < limit && jobs.count == allowed { next = min(next ?? bucket.nextTokenAt, bucket.nextTokenAt) }
        }
        return ClaimBatch(jobs: jobs, nextRunAt: next)
    }

    /// Claims up to `limit` ready jobs of any queue in claim order (priority, then runAt, then
    /// age), as the embedded store's claim without a queue does: paused queues give none,
    /// rate-limited ones no more than their whole tokens
    /// (``Statements/claimFromEveryQueue(limit:caps:now:expiry:owner:)``).
    func claimFromEveryQueue(limit: Int, lease: Duration, owner: OwnerToken) async throws -> [Job] {
        var buckets: [String: RateLimit] = [:]
        var caps: [(queue: String, cap: Int)] = []
        for (queue, control) in try await rows(Statements.queueControls(), { row in
            (try row.makeRandomAccess()[0].decode(String.self), try QueueRow.decode(row, from: 1))
        }) {
            if control.pausedAt != nil {
                caps.append((queue, 0))
            } else if let limit = control.limit?.refilled(at: now) {
                buckets[queue] = limit
                caps.append((queue, Int(limit.tokens.rounded(.down))))
            }
        }
        let jobs = try await claiming(Statements.claimFromEveryQueue(limit: limit, caps: caps, now: now, expiry: now.adding(lease), owner: owner))
        for (queue, bucket) in buckets.sorted(by: { $0.key < $1.key }) {
            let started = jobs.count { $0.queue == queue }
            if started > 0 { try await spend(bucket, of: queue, on: started) }
        }
        return jobs
    }


    /// Takes `started` tokens from `queue`'s refilled bucket and stores it.
    private func spend(_ bucket: RateLimit, of queue: String, on started: Int) async throws {
        var bucket = bucket
        bucket.tokens -= Double(started)
        try await write(Statements.setRateLimit(queue, bucket))
    }

    /// Stores complete jobs exactly as given (see ``JobStore/JobTransaction/restore(_:)``), in one
    /// statement: each validated, and a live one's unique key must be free.
    func restore(_ jobs: [Job]) async throws {
        var holders: [String: Job] = [:]
        for job in jobs {
            try job.validate()
            if let step = job.pipeline {
                throw JobStoreError(
                    .invalidArgument, "job \(job.id) is step \(step.step) of pipeline \(step.pipeline); a step is not restored alone",
                    jobID: job.id, hint: "Enqueue the pipeline again")
            }
            if !job.state.isTerminal, let key = job.uniqueKey {
                if let holder = try await uniqueHolder(key, among: holders) {
                    throw JobStoreError.uniqueKeyHeld(job, key, by: holder)
                }
                holders[key] = job
            }
        }
        try await add(jobs)
    }

    // MARK: Pipelines

    func pipeline(_ id: PipelineID) async throws -> Pipeline? {
        try await rows(Statements.pipeline(id, locked: true), PipelineRow.decode).first
    }

    func existingPipeline(_ id: PipelineID) async throws -> Pipeline {
        guard let pipeline = try await pipeline(id) else {
            throw JobStoreError(.notFound, "no pipeline \(id)", hint: "Check the id; it may have been deleted or pruned")
        }
        return pipeline
    }

    func step(_ pipeline: PipelineID, _ index: Int) async throws -> PipelineStepRecord {
        guard let step = try await rows(Statements.step(pipeline, index), StepRow.decode).first else {
            throw JobStoreError(.corruptRecord, "pipeline \(pipeline) has no step \(index) in PostgreSQL")
        }
        return step
    }

    /// Enqueues a validated plan: the pipeline row, one job per step (those without
    /// dependencies pending, the others waiting) and the step rows.
    func enqueue(_ plan: PipelinePlan) async throws -> Pipeline {
        let definition = plan.definition
        let bits = nextID(now)
        let id = PipelineID(high: bits.high, low: bits.low)
        var jobs: [Job] = []
        var keys: [String: Job] = [:]
        for (index, step) in definition.steps.enumerated() {
            if let key = step.job.uniqueKey, let holder = try await uniqueHolder(key, among: keys) {
                throw JobStoreError(
                    .invalidField, "step '\(step.name)' of pipeline '\(definition.name)' has unique key '\(key)', which live job \(holder.id) holds",
                    jobID: holder.id)
            }
            let job = Job(
                step.job, id: nextID(step.job.createdAt ?? now), now: now, state: plan.dependencies[index].isEmpty ? .pending : .waiting,
                pipeline: PipelineReference(pipeline: id, step: UInt16(index)), instrument: store.options.traceInstrument)
            try job.validate()
            if let key = job.uniqueKey { keys[key] = job }
            jobs.append(job)
        }
        let pipeline = Pipeline(
            id: id, name: definition.name, version: definition.version, failFast: definition.failFast, state: .running,
            createdAt: now, updatedAt: now, finishedAt: nil, stepCount: definition.steps.count, succeededSteps: 0,
            failedSteps: 0, cancelledSteps: 0)
        try await write(Statements.insert(pipeline))
        try await add(jobs)
        let steps = definition.steps.enumerated().map { index, step in
            PipelineStepRecord(
                index: index, name: step.name, jobID: jobs[index].id, dependents: plan.dependents[index].sorted(),
                remainingDependencies: plan.dependencies[index].count)
        }
        try await write(Statements.insert(steps, of: id))
        return pipeline
    }

    /// Advances the pipelines of the steps in the worklist until none is left (the changes it
    /// makes go through ``update(_:_:)`` and only add to the list, which the outermost call drains).
    private func advancePipelines() async throws {
        do {
            while let (from, job) = pipelineWork.pop() { try await stepMoved(job, from: from) }
        } catch {
            pipelineWork.abandon()
            throw error
        }
    }

    /// One step's job moved between unfinished, succeeded, failed and cancelled: reads what
    /// ``PipelineAdvance`` needs and applies its plan, as the embedded store does.
    private func stepMoved(_ job: Job, from old: JobState) async throws {
        guard let reference = job.pipeline else { return }
        let record = try await step(reference.pipeline, Int(reference.step))
        let pipeline = try await existingPipeline(reference.pipeline)
        var dependents: [(step: PipelineStepRecord, job: Job?)] = []
        for index in record.dependents {
            let dependent = try await step(reference.pipeline, index)
            dependents.append((dependent, PipelineAdvance.needsJob(of: dependent, moved: job) ? try await self.job(dependent.jobID) : nil))
        }
        let everyStep =
            PipelineAdvance.needsEveryStep(moved: job, from: old, in: pipeline)
            ? try await rows(Statements.stepJobs(reference.pipeline), JobRow.decode) : nil
        let plan = try PipelineAdvance(
            moved: job, from: old, step: record, pipeline: pipeline, dependents: dependents, everyStep: everyStep, at: now)
        for step in plan.steps {
            try await write(Statements.setRemaining(reference.pipeline, step.index, step.remainingDependencies))
        }
        for (other, change) in plan.jobs { try await update(other) { change.apply(to: &$0, at: now) } }
        try await write(Statements.update(plan.pipeline))
    }

    /// Puts a failed or cancelled job back (see ``JobCore/Job/retry(at:blocked:)``).
    func retry(_ id: JobID) async throws -> Job {
        let job = try await existing(id)
        var blocked = false
        if let reference = job.pipeline {
            blocked = try await step(reference.pipeline, Int(reference.step)).remainingDependencies > 0
        }
        return try await update(job) { try $0.retry(at: now, blocked: blocked) }
    }

    /// Puts a job back in line (see ``JobStore/JobTransaction/requeue(_:)``): running or pending
    /// → pending now; failed or cancelled → retried.
    func requeue(_ id: JobID) async throws -> Job {
        let job = try await existing(id)
        if job.requeueRetries { return try await retry(id) }
        return try await update(job, recording: .requeued) { try $0.putBack(at: now) }
    }

    /// Deletes a job; false if there was none.
    ///
    /// - Throws: `.invalidArgument` for a pipeline step's job (it goes with its pipeline).
    func delete(_ id: JobID) async throws -> Bool {
        guard let job = try await job(id) else { return false }
        if let reference = job.pipeline {
            throw JobStoreError(
                .invalidArgument, "job \(id) is step \(reference.step) of pipeline \(reference.pipeline); it is deleted with its pipeline",
                jobID: id)
        }
        record(.deleted, job)
        try await write(Statements.delete(id))
        return true
    }

    /// Re-runs a pipeline's failed and cancelled steps (see ``JobStore/JobTransaction/retryPipeline(_:)``).
    func retryPipeline(_ id: PipelineID) async throws -> Pipeline {
        let pipeline = try await existingPipeline(id)
        try pipeline.requireRetryable()
        for index in 0..<pipeline.stepCount {
            let record = try await step(id, index)
            // Re-read: retrying an earlier step may already have put this one back to waiting.
            if let job = try await self.job(record.jobID), job.state == .failed || job.state == .cancelled {
                _ = try await retry(job.id)
            }
        }
        return try await existingPipeline(id)
    }

    /// Deletes a pipeline with its steps and their jobs, in any state; false if there was none.
    func deletePipeline(_ id: PipelineID) async throws -> Bool {
        guard try await pipeline(id) != nil else { return false }
        for job in try await rows(Statements.stepJobs(id), JobRow.decode) { record(.deleted, job) }
        try await write(Statements.deletePipeline(id))
        return true
    }

    /// Pauses `queue` since `time` (a paused one keeps its first pause time), recording the
    /// event; whether it was running.
    private func pause(_ queue: String, since time: Timestamp) async throws -> Bool {
        guard try await rows(Statements.pause(queue, at: time), { try $0.decode(Bool.self) }).first == true else { return false }
        recordQueueEvent(.queuePaused, queue)
        return true
    }

    /// Puts an export's item back (see ``JobStore/JobTransaction/restore(_:)``): a job with its
    /// past timeline before its `inserted` event, a pipeline rebuilt around its steps' jobs
    /// (``JobCore/PipelineExport/rebuilt(around:at:)``), a queue's controls, a schedule.
    func restore(_ item: RestoreItem) async throws {
        switch item {
        case .job(let job, let timeline):
            try job.validate()
            if !job.state.isTerminal, let key = job.uniqueKey, let holder = try await uniqueHolder(key) {
                throw JobStoreError.uniqueKeyHeld(job, key, by: holder)
            }
            for event in timeline?.events ?? [] { record(event, of: job.id) }
            try await add([job], restoring: true)
        case .pipeline(let export):
            guard try await pipeline(export.id) == nil else {
                throw JobStoreError.pipelineExists(export.id)
            }
            let found = Dictionary(
                try await rows(Statements.lockJobs(export.steps.map(\.job)), JobRow.decode).map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
            let (pipeline, steps) = try export.rebuilt(around: export.steps.map { found[$0.job] }, at: now)
            try await write(Statements.insert(pipeline))
            try await write(Statements.insert(steps, of: pipeline.id))
        case .queue(let queue):
            try JobStoreError.requireQueueName(queue.name)
            if let pausedAt = queue.pausedAt { _ = try await pause(queue.name, since: pausedAt) }
            if let starts = queue.rateStarts, let period = queue.ratePeriod { _ = try await apply(.limit(starts: starts, per: period), to: queue.name) }
        case .schedule(let schedule):
            _ = try await register(schedule)
        }
    }

    /// The schedule `name`, its row locked, or `nil` (as `JobStore`'s `JobTransaction.schedule(_:)`).
    func schedule(_ name: String) async throws -> ScheduleRecord? {
        try await rows(Statements.schedule(name), ScheduleRow.decode).first
    }

    /// Registers (or updates) a schedule, keeping the last tick already stored. The stored record.
    func register(_ schedule: ScheduleRecord) async throws -> ScheduleRecord {
        try schedule.validate()
        var record = schedule
        record.lastTick = try await self.schedule(schedule.name)?.lastTick ?? schedule.lastTick
        record.updatedAt = now
        try await run(try Statements.upsert(record))
        return record
    }

    /// Applies a change to a queue's control row, recording its event; whether it changed
    /// anything. Resuming and changing a limit wake the schedulers.
    func apply(_ change: QueueChange, to queue: String) async throws -> Bool {
        switch change {
        case .pause:
            return try await pause(queue, since: now)
        case .resume:
            let resumed = try await rows(Statements.resume(queue), { _ in () }).count > 0
            if resumed { recordQueueEvent(.queueResumed, queue) }
            try await write(Statements.wake())
            return resumed
        case .limit(let starts, let period):
            try await run(Statements.setRateLimit(queue, try RateLimit(starts: starts, per: period, at: now)))
            recordQueueEvent(.queueLimited, JobEvent.limited(queue, starts: starts, per: period))
            try await write(Statements.wake())
            return true
        case .unlimit:
            let removed = try await rows(Statements.removeRateLimit(queue), { _ in () }).count > 0
            if removed { recordQueueEvent(.queueUnlimited, queue) }
            try await write(Statements.wake())
            return removed
        }
    }

    /// Applies an operator's change (see ``JobStore/JobTransaction/apply(_:to:)``, whose dispatch this is).
    func apply(_ change: OperatorChange, to id: JobID) async throws -> OperatorOutcome {
        let pipelineID = PipelineID(high: id.high, low: id.low)
        if change != .requeue, try await job(id) == nil {
            guard try await pipeline(pipelineID) != nil else { throw JobStoreError.notFound(jobOrPipeline: id) }
            switch change {
            case .cancel: return OperatorOutcome(isPipeline: true, state: try await cancelPipeline(pipelineID).state.description)
            case .retry: return OperatorOutcome(isPipeline: true, state: try await retryPipeline(pipelineID).state.description)
            case .delete, .requeue:
                _ = try await deletePipeline(pipelineID)
                return OperatorOutcome(isPipeline: true, state: "deleted")
            }
        }
        return try await apply(change, toJob: id)
    }

    /// Applies an operator's change to a job, never a pipeline (see ``JobStore/JobTransaction/apply(_:toJob:)``).
    func apply(_ change: OperatorChange, toJob id: JobID) async throws -> OperatorOutcome {
        switch change {
        case .cancel: return OperatorOutcome(isPipeline: false, state: try await update(try await existing(id)) { try $0.cancel() }.state.description)
        case .retry: return OperatorOutcome(isPipeline: false, state: try await retry(id).state.description)
        case .requeue: return OperatorOutcome(isPipeline: false, state: try await requeue(id).state.description)
        case .delete:
            guard try await delete(id) else { throw JobStoreError.notFound(id) }
            return OperatorOutcome(isPipeline: false, state: "deleted")
        }
    }

    /// Puts up to `limit` running jobs whose lease expired back in line, recording `rescued`.
    func rescueExpiredLeases(limit: Int, sparing: Set<JobID>, expiredBefore: Timestamp? = nil) async throws -> [Job] {
        var rescued: [Job] = []
        let cutoff = min(now, expiredBefore ?? now)
        for job in try await rows(Statements.expiredLeases(before: cutoff, limit: limit, sparing: sparing), JobRow.decode) {
            guard let lease = job.lease else { continue }
            rescued.append(try await update(job, recording: .rescued) { $0.rescue(at: now, leaseExpiredAt: lease.expiresAt) })
        }
        return rescued
    }

    /// Cancels every unfinished step of a pipeline (see ``JobStore/JobTransaction/cancelPipeline(_:)``).
    func cancelPipeline(_ id: PipelineID) async throws -> Pipeline {
        let pipeline = try await existingPipeline(id)
        guard !pipeline.state.isTerminal else {
            throw JobStoreError(
                .illegalTransition, "pipeline \(id) has already finished (\(pipeline.state)); there is nothing to cancel",
                hint: "Retry it first to run it again")
        }
        for job in try await rows(Statements.stepJobs(id), JobRow.decode) where !job.state.isTerminal {
            // A step cancelled by an earlier one's cascade is terminal by now: re-read.
            if let current = try await self.job(job.id), !current.state.isTerminal {
                try await update(current) { $0.cancelForPipeline(at: now, reason: "cancelled with its pipeline") }
            }
        }
        return try await existingPipeline(id)
    }
}

extension PostgresConnection {
    /// Sends `query` and returns its rows, or throws once the connection closes: a query sent on a
    /// connection the server is terminating (a restart) is otherwise never answered nor failed
    /// (postgres-nio 1.33), and its transaction would wait forever. The abandoned query's task
    /// ends when postgres-nio fails it, if ever.
    ///
    /// The answer travels through `Lock`-guarded state that the waiting task reads after it is
    /// resumed, so ThreadSanitizer sees the hand-over (a value passed through the continuation
    /// alone crosses the concurrency runtime, which it does not see into).
    func answer(_ query: PostgresQuery, logger: Logger) async throws -> PostgresRowSequence {
        let connection = self
        let state = Lock<(answer: Result<PostgresRowSequence, any Error>?, waiter: CheckedContinuation<Void, Never>?)>((nil, nil))
        @Sendable func finish(_ answer: Result<PostgresRowSequence, any Error>) {
            state.withLock { state -> CheckedContinuation<Void, Never>? in
                guard state.answer == nil else { return nil }  // the first answer counts
                state.answer = answer
                defer { state.waiter = nil }
                return state.waiter
            }?.resume()
        }
        let watch = ConnectionWatch.of(self)
        guard let ticket = watch.add({ finish(.failure(ConnectionClosed())) }) else { throw ConnectionClosed() }
        defer { watch.remove(ticket) }
        Task {
            do {
                finish(.success(try await connection.query(query, logger: logger)))
            } catch {
                finish(.failure(error))
            }
        }
        await withCheckedContinuation { waiter in
            let answered = state.withLock { state in
                if state.answer != nil { return true }
                state.waiter = waiter
                return false
            }
            if answered { waiter.resume() }
        }
        guard let answer = state.withLock({ $0.answer }) else { throw ConnectionClosed() }
        return try answer.get()
    }
}

/// Whether a connection closed, and what waits on its answers: one callback on its
/// `closeFuture` per connection (a callback per query would pile up on a pooled connection's
/// future, which completes only when the connection closes — a leak).
final class ConnectionWatch: Sendable {
    private let state = Lock<(closed: Bool, waiters: [Int: @Sendable () -> Void], next: Int)>((false, [:], 0))

    /// The watches of the open connections.
    private static let open = Lock<[ObjectIdentifier: ConnectionWatch]>([:])

    /// The watch of `connection`, made (and hooked to its close) on its first query.
    static func of(_ connection: PostgresConnection) -> ConnectionWatch {
        let key = ObjectIdentifier(connection)
        let (watch, isNew) = open.withLock { open -> (ConnectionWatch, Bool) in
            if let watch = open[key] { return (watch, false) }
            let watch = ConnectionWatch()
            open[key] = watch
            return (watch, true)
        }
        // Outside the lock: a future that already completed runs the callback at once.
        if isNew {
            connection.closeFuture.whenComplete { _ in
                open.withLock { open in if open[key] === watch { open[key] = nil } }
                watch.close()
            }
        }
        return watch
    }

    /// Registers `closed` to run when the connection closes; `nil` if it has.
    func add(_ closed: @escaping @Sendable () -> Void) -> Int? {
        state.withLock { state in
            guard !state.closed else { return nil }
            state.next += 1
            state.waiters[state.next] = closed
            return state.next
        }
    }

    func remove(_ ticket: Int) { state.withLock { _ = $0.waiters.removeValue(forKey: ticket) } }

    private func close() {
        let waiters = state.withLock { state in
            state.closed = true
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter() }
    }
}

/// What ``PostgresConnection/answer(_:logger:)`` throws when the connection closed first.
struct ConnectionClosed: Error, CustomStringConvertible {
    var description: String { "the connection closed before the server answered" }
}
