import Foundation
import JobCore
import JobStoreText
import PostgresNIO

// The store's operations, each one transaction: what the scheduler needs (SchedulerBackend),
// then what a program uses beside it (JobStoreBackend). Each behaves as the embedded store's
// method of the same name documents.

extension PostgresJobStore {
    /// See `JobCore/SchedulerBackend/finish(_:claiming:lease:owner:)`: one transaction;
    /// the finished jobs are locked in id order first, so concurrent finishers do not deadlock.
    public func finish(_ outcomes: [JobOutcome], claiming requests: [ClaimRequest], lease: Duration, owner: OwnerToken) async throws -> FinishResponse {
        try await transaction("finish \(outcomes.count) jobs and claim more") { txn in
            var current = try await txn.held(outcomes.map { HeldLease(id: $0.id, owner: $0.owner) })
            var changes: [(old: Job, event: JobEvent.Kind?, body: (inout Job) throws -> Void)] = []
            for outcome in outcomes {
                // A job whose lease was lost is left out: the others still commit.
                guard let job = current.removeValue(forKey: outcome.id) else { continue }
                changes.append((job, outcome.kind.event, { outcome.kind.apply(to: &$0, at: txn.now) }))
            }
            let done = Dictionary(uniqueKeysWithValues: try await txn.updateAll(changes).map { ($0.id, $0) })
            let finished = outcomes.map { done[$0.id] }
            var claims: [(request: ClaimRequest, batch: ClaimBatch)] = []
            for request in requests where request.limit > 0 {
                claims.append((request, try await txn.claim(queue: request.queue, limit: request.limit, lease: lease, owner: owner)))
            }
            return FinishResponse(finished: finished, claims: claims)
        }
    }

    /// Claims up to `limit` ready jobs of `queue`, or of any queue when `nil` (see
    /// `JobStore/JobTransaction/claimBatch(queue:limit:lease:owner:)`; from every queue, a job
    /// another process takes at the same instant is skipped, so fewer may come back).
    public func claim(queue: String? = nil, limit: Int = 1, lease: Duration, owner: OwnerToken) async throws -> [Job] {
        try await transaction("claim jobs") { try await $0.claim(queue: queue, limit: limit, lease: lease, owner: owner).jobs }
    }

    /// Marks a running job succeeded if `owner` holds its lease.
    ///
    /// - Throws: `.leaseLost` if the job was rescued, cancelled or claimed again meanwhile.
    @discardableResult
    public func complete(_ id: JobID, owner: OwnerToken, result: [UInt8]? = nil) async throws -> Job {
        try await transaction("complete job \(id)") { txn in
            try await txn.update(try await txn.leased(id, by: owner)) { JobOutcome.Kind.succeeded(result: result).apply(to: &$0, at: txn.now) }
        }
    }

    /// Records a failed attempt (see `JobCore/Job/fail(_:at:retryAt:)`).
    @discardableResult
    public func fail(_ id: JobID, owner: OwnerToken, error: String, retryAt: Timestamp?) async throws -> Job {
        try await transaction("fail job \(id)") { txn in
            try await txn.update(try await txn.leased(id, by: owner)) { JobOutcome.Kind.failed(error: error, retryAt: retryAt).apply(to: &$0, at: txn.now) }
        }
    }

    /// See `JobCore/SchedulerBackend/extendLeases(_:until:)`: one statement for all.
    public func extendLeases(_ leases: [HeldLease], until: Timestamp) async throws -> [JobID] {
        try await transaction("extend \(leases.count) leases") { txn in
            let current = try await txn.held(leases)
            var lost: [JobID] = []
            var extended: [Job] = []
            for lease in leases {
                guard let job = current[lease.id] else {
                    lost.append(lease.id)
                    continue
                }
                let new = try txn.changed(job) { $0.extendLease(until: until) }
                txn.record(.leaseExtended, new)
                extended.append(new)
            }
            if !extended.isEmpty { try await txn.write(Statements.saveOutcomes(extended)) }
            return lost
        }
    }

    /// See `JobCore/SchedulerBackend/rescueExpiredLeases(limit:sparing:expiredBefore:)`.
    public func rescueExpiredLeases(limit: Int = 1000, sparing: Set<JobID> = [], expiredBefore: Timestamp? = nil) async throws -> [Job] {
        try await transaction("rescue expired leases") { txn in
            try await txn.rescueExpiredLeases(limit: limit, sparing: sparing, expiredBefore: expiredBefore)
        }
    }

    /// See `JobCore/SchedulerBackend/pruneFinished(_:before:)`: batches of 1,000 jobs
    /// (100 pipelines), each its own transaction, recording a `pruned` event for each job.
    public func pruneFinished(_ state: JobState, before cutoff: Timestamp) async throws -> (jobs: Int, pipelines: Int) {
        try await prune(state, .finishedBefore(cutoff), batchSize: 1000, dryRun: false)
    }

    /// See `JobCore/AdministrableStore/prune(_:_:batchSize:dryRun:)`.
    public func prune(_ state: JobState, _ selection: PruneSelection, batchSize: Int, dryRun: Bool) async throws -> (jobs: Int, pipelines: Int) {
        try JobStoreError.requirePositive(batchSize, "the batch size")
        guard state.isTerminal else {
            throw JobStoreError(.illegalTransition, "only succeeded, failed or cancelled jobs can be pruned, not \(state) ones")
        }
        let pipelineState = PipelineState(name: state.description).flatMap { $0.isTerminal ? $0 : nil }
        if dryRun {
            return try await statement("count the \(state) jobs and pipelines to prune") { txn in
                let row = try await txn.rows(Statements.countPrunable(state, pipelineState, selection)) { try $0.decode((Int64, Int64).self) }.first
                return (Int(row?.0 ?? 0), Int(row?.1 ?? 0))
            }
        }
        let jobs = try await pruneInBatches("prune \(state) jobs", of: batchSize, counting: { $0.count }) {
            Statements.pruneJobs(state, selection, limit: $0)
        }
        guard let pipelineState else { return (jobs, 0) }
        let pipelines = try await pruneInBatches("prune \(state) pipelines", of: max(1, batchSize / 10), counting: { jobs in
            // A closure, not the key path \.pipeline?.pipeline: the runtime's projection of that
            // optional-chained key path trips AddressSanitizer (memcpy-param-overlap, Swift 6.3.1).
            Set(jobs.compactMap { $0.pipeline?.pipeline }).count
        }) {
            Statements.prunePipelines(pipelineState, selection, limit: $0)
        }
        return (jobs, pipelines)
    }

    /// Runs `statement` (a delete of at most `size` jobs or pipelines that returns the jobs it
    /// deleted) in one transaction after another, each recording the jobs' `pruned` events,
    /// until one deletes fewer than `size` (as `counting` counts them); the total.
    private func pruneInBatches(
        _ what: String, of size: Int, counting: @escaping @Sendable ([Job]) -> Int, _ statement: @escaping @Sendable (Int) -> PostgresQuery
    ) async throws -> Int {
        var total = 0
        while true {
            let deleted = try await transaction(what) { txn in
                let jobs = try await txn.rows(statement(size), JobRow.decode)
                for job in jobs { txn.record(.pruned, job) }
                return counting(jobs)
            }
            total += deleted
            if deleted < size { return total }
        }
    }

    /// See `JobCore/SchedulerBackend/pruneHistory(before:)`: batches of 10,000 events,
    /// each its own transaction.
    public func pruneHistory(before cutoff: Timestamp) async throws -> Int {
        var total = 0
        while true {
            let deleted = try await statement("prune the history") { txn in
                Int(try await txn.rows(Statements.pruneHistory(before: cutoff, limit: 10_000)) { try $0.decode(Int64.self) }.first ?? 0)
            }
            total += deleted
            if deleted < 10_000 { return total }
        }
    }

    /// See `JobCore/SchedulerBackend/register(_:)`.
    public func register(_ schedule: ScheduleRecord) async throws -> ScheduleRecord {
        try schedule.validate()  // before a connection is taken
        return try await transaction("register schedule '\(schedule.name)'") { txn in try await txn.register(schedule) }
    }

    /// See `JobCore/AdministrableStore/runNow(schedule:actor:dryRun:)`.
    public func runNow(schedule name: String, actor: String, dryRun: Bool) async throws -> Job {
        try await transaction("run schedule '\(name)' now", rollingBack: dryRun) { txn in
            txn.actor = actor
            guard let record = try await txn.schedule(name) else { throw JobStoreError.notFound(schedule: name) }
            return try await txn.insert([try record.jobToRunNow()])[0]
        }
    }

    /// See `JobCore/SchedulerBackend/enqueue(tick:of:next:job:)`: the schedule's row is
    /// locked, so each tick gets exactly one job across processes.
    public func enqueue(tick: Timestamp, of name: String, next: Timestamp?, job: NewJob) async throws -> Job? {
        try await transaction("enqueue a tick of schedule '\(name)'") { txn in
            guard var record = try await txn.schedule(name) else { throw JobStoreError.notFound(schedule: name) }
            if let last = record.lastTick, last >= tick { return nil }
            let inserted = try await txn.insert([job])[0]
            record.lastTick = tick
            record.nextTick = next
            record.updatedAt = txn.now
            try await txn.run(try Statements.upsert(record))
            return inserted
        }
    }

    /// Inserts jobs in one transaction (one statement); see `JobStore/JobTransaction/insert(_:)-(NewJob)`.
    @discardableResult
    public func enqueue(_ jobs: [NewJob]) async throws -> [Job] { try await insert(jobs) }

    /// Inserts jobs in one transaction (one statement).
    @discardableResult
    public func insert(_ jobs: [NewJob]) async throws -> [Job] {
        // Without unique keys to look up first, the insert is one statement.
        if jobs.allSatisfy({ $0.uniqueKey == nil }) { return try await statement("insert \(jobs.count) jobs") { try await $0.insert(jobs) } }
        return try await transaction("insert \(jobs.count) jobs") { try await $0.insert(jobs) }
    }

    /// Inserts a job, pending (or returns the live job holding its unique key).
    @discardableResult
    public func insert(_ job: NewJob) async throws -> Job {
        try await insert([job])[0]
    }

    /// Stores complete jobs exactly as given, in any state, in one transaction (one statement)
    /// — for imports, restores and reproducible workloads (see `JobStore/JobTransaction/restore(_:)`).
    ///
    /// - Throws: `.invalidField` for a field out of its limits, a running job without a lease,
    ///   an id that exists or a unique key a live job holds; `.invalidArgument` for a pipeline
    ///   step (pipelines are enqueued whole). Nothing is stored then.
    public func restore(_ jobs: [Job]) async throws {
        // Without unique keys to check first, the restore is one statement.
        if jobs.allSatisfy({ $0.uniqueKey == nil }) { return try await statement("restore \(jobs.count) jobs") { try await $0.restore(jobs) } }
        try await transaction("restore \(jobs.count) jobs") { try await $0.restore(jobs) }
    }

    /// Moves a job to `state` by hand, with the side effects that state needs (see
    /// `JobCore/Job/transition(to:at:lease:)`).
    @discardableResult
    public func transition(_ id: JobID, to state: JobState, lease: Duration = .seconds(300)) async throws -> Job {
        try await transition([id], to: state, lease: lease)[0]
    }

    /// Moves jobs to `state` in one transaction (each as ``transition(_:to:lease:)``); all or none.
    @discardableResult
    public func transition(_ ids: [JobID], to state: JobState, lease: Duration = .seconds(300)) async throws -> [Job] {
        guard Set(ids).count == ids.count else {
            throw JobStoreError(.invalidArgument, "the ids to move name a job more than once", hint: "Give each id once")
        }
        return try await transaction("move \(ids.count) jobs to \(state)") { txn in
            try await txn.updateAll(try await txn.existing(ids).map { job in (job, nil, { try $0.transition(to: state, at: txn.now, lease: lease) }) })
        }
    }

    /// Cancels a waiting, pending or running job (a running one's scheduler is told by a
    /// notification, and stops its handler).
    @discardableResult
    public func cancel(_ id: JobID) async throws -> Job {
        try await transaction("cancel job \(id)") { txn in try await txn.update(try await txn.existing(id)) { try $0.cancel() } }
    }

    /// Puts a failed or cancelled job back to pending (see `JobCore/Job/retry(at:blocked:)`).
    @discardableResult
    public func retry(_ id: JobID) async throws -> Job {
        try await transaction("retry job \(id)") { try await $0.retry(id) }
    }

    /// Changes a job through `body` (see `JobStore/JobTransaction/update(_:_:)`).
    @discardableResult
    public func update(_ id: JobID, _ body: @escaping @Sendable (inout Job) throws -> Void) async throws -> Job {
        try await transaction("update job \(id)") { txn in try await txn.update(try await txn.existing(id), body) }
    }

    /// Deletes a job; false if there was none.
    ///
    /// - Throws: `.invalidArgument` for a pipeline step's job (it goes with its pipeline).
    @discardableResult
    public func delete(_ id: JobID) async throws -> Bool {
        try await transaction("delete job \(id)") { try await $0.delete(id) }
    }

    /// See `JobCore/SchedulerBackend/queueDepths()`: the counter rows, summed per queue.
    public func queueDepths() async throws -> [String: [JobState: Int]] {
        try await statement("read the queue counts") { txn in
            var depths: [String: [JobState: Int]] = [:]
            for (queue, state, count) in try await txn.rows(Statements.queueCounts(), { try $0.decode((String, Int16, Int64).self) }) {
                guard let state = JobState(rawValue: UInt8(clamping: state)) else { continue }
                depths[queue, default: [:]][state] = Int(count)
            }
            return depths
        }
    }

    // MARK: Queue control

    /// Pauses `queue`: its jobs are not claimed (by any process) until it is resumed; running
    /// ones finish.
    public func pause(queue: String) async throws {
        _ = try await apply(.pause, to: queue, actor: nil)
    }

    /// Resumes a paused queue, and wakes the schedulers.
    public func resume(queue: String) async throws {
        _ = try await apply(.resume, to: queue, actor: nil)
    }

    /// Limits `queue` to `starts` job starts per `period`, across processes (a token bucket,
    /// full at first).
    public func setRateLimit(queue: String, starts: Int, per period: Duration) async throws {
        _ = try await apply(.limit(starts: starts, per: period), to: queue, actor: nil)
    }

    /// Removes `queue`'s rate limit, and wakes the schedulers.
    public func removeRateLimit(queue: String) async throws {
        _ = try await apply(.unlimit, to: queue, actor: nil)
    }

    /// See `JobCore/AdministrableStore/apply(_:to:actor:dryRun:)-(QueueChange,_,_,_)`.
    public func apply(_ change: QueueChange, to queue: String, actor: String, dryRun: Bool) async throws -> Bool {
        try await apply(change, to: queue, actor: actor, rollingBack: dryRun)
    }

    private func apply(_ change: QueueChange, to queue: String, actor: String?, rollingBack: Bool = false) async throws -> Bool {
        try JobStoreError.requireQueueName(queue)
        return try await transaction("change queue '\(queue)'", rollingBack: rollingBack) { txn in
            txn.actor = actor
            return try await txn.apply(change, to: queue)
        }
    }

    /// See `JobCore/InspectableStore/verify(chunkSize:)`: the counters and the pipelines
    /// against a recount, in one snapshot (`chunkSize` is LMDB's; unused here).
    public func verify(chunkSize: Int = 10_000) async throws -> [VerificationProblem] {
        try await transaction("verify the store", rollingBack: true) { txn in
            try await txn.run("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            var problems: [VerificationProblem] = []
            for (queue, state, kept, counted) in try await txn.rows(Statements.wrongCounters(), { try $0.decode((String, Int16, Int64, Int64).self) }) {
                let name = JobState(rawValue: UInt8(clamping: state))?.description ?? "state \(state)"
                problems.append(VerificationProblem(
                    kind: .wrongCounter, message: "queue '\(queue)', \(name): the counters say \(kept), the jobs are \(counted)"))
            }
            for (state, kept, counted) in try await txn.rows(Statements.wrongPipelineCounters(), { try $0.decode((Int16, Int64, Int64).self) }) {
                let name = PipelineState(rawValue: UInt8(clamping: state))?.description ?? "state \(state)"
                problems.append(VerificationProblem(
                    kind: .wrongCounter, message: "pipelines \(name): the counters say \(kept), the pipelines are \(counted)"))
            }
            for row in try await txn.rows(Statements.wrongPipelines(), { try $0.decode((UUID, Int32, Int32, Int32, Int32, Int32, Int32, Int32, Int32).self) }) {
                let id = PipelineID(row.0)
                problems.append(VerificationProblem(
                    kind: .badPipeline, pipelineID: id,
                    message: "pipeline \(id): steps \(row.1) (rows \(row.2)), succeeded \(row.3) (jobs \(row.4)), failed \(row.5) (jobs \(row.6)), cancelled \(row.7) (jobs \(row.8))"))
            }
            for (pipeline, step, job) in try await txn.rows(Statements.stepsWithoutJobs(), { try $0.decode((UUID, Int32, UUID).self) }) {
                problems.append(VerificationProblem(
                    kind: .badPipeline, jobID: JobID(job), pipelineID: PipelineID(pipeline),
                    message: "pipeline \(PipelineID(pipeline)) step \(step): its job \(JobID(job)) is gone"))
            }
            return problems
        }
    }

    /// See `JobCore/SchedulerBackend/storeProgress(_:)`: one statement (the last report of a
    /// job given twice wins).
    public func storeProgress(_ reports: [ProgressReport]) async throws {
        var latest: [JobID: ProgressReport] = [:]
        for report in reports { latest[report.id] = report }
        guard !latest.isEmpty else { return }
        let batch = Array(latest.values)
        try await statement("store the progress of \(batch.count) jobs") { try await $0.write(Statements.storeProgress(batch)) }
    }

    /// See `JobCore/SchedulerBackend/recordWorker(_:)`: the forgotten ones deleted and the
    /// heartbeat upserted, in one transaction.
    public func recordWorker(_ worker: WorkerRecord) async throws {
        let record = worker.bounded()
        let (queues, running) = try WorkerRow.json(record)
        try await transaction("record the heartbeat of scheduler \(record.id)") { txn in
            try await txn.write(Statements.forgetWorkers(before: record.beatAt.adding(.zero - WorkerRecord.forgottenAfter)))
            try await txn.write(Statements.recordWorker(record, queues: queues, running: running))
        }
    }

    /// See `JobCore/SchedulerBackend/removeWorker(_:)`.
    public func removeWorker(_ id: OwnerToken) async throws {
        try await statement("remove the heartbeat of scheduler \(id)") { try await $0.write(Statements.removeWorker(id)) }
    }

    /// See `JobCore/InspectableStore/workers()`.
    public func workers() async throws -> [WorkerRecord] {
        try await statement("list the schedulers") { try await $0.rows(Statements.workers(), WorkerRow.decode) }
    }

    /// See `JobCore/JobStoreBackend/progress(of:)`.
    public func progress(of id: JobID) async throws -> JobProgress? {
        try await statement("read the progress of job \(id)") { txn in
            try await txn.rows(Statements.progress(id)) { row in
                let (attempt, fraction, at, message) = try row.decode((Int32, Double, Int64, String?).self)
                return JobProgress(fraction: fraction, message: message, attempt: UInt16(clamping: attempt), at: Timestamp(microseconds: at))
            }.first
        }
    }

    /// How many running jobs hold a lease that expired before now (their worker stopped; a
    /// scheduler's rescue puts them back).
    public func expiredLeaseCount() async throws -> Int {
        try await statement("count the expired leases") { txn in
            Int(try await txn.rows(Statements.expiredLeaseCount(now: txn.now)) { try $0.decode(Int64.self) }.first ?? 0)
        }
    }

    /// See `JobCore/AdministrableStore/apply(_:to:actor:dryRun:)`: a dry run's transaction is
    /// rolled back instead of committed.
    public func apply(_ change: OperatorChange, to id: JobID, actor: String, dryRun: Bool) async throws -> OperatorOutcome {
        try await transaction("\(change) \(id)", rollingBack: dryRun) { txn in
            txn.actor = actor
            return try await txn.apply(change, to: id)
        }
    }

    /// See `JobCore/AdministrableStore/apply(_:toJobs:actor:dryRun:)`.
    public func apply(_ change: OperatorChange, toJobs ids: [JobID], actor: String, dryRun: Bool) async throws -> [Result<OperatorOutcome, JobStoreError>] {
        try await transaction("\(change) \(ids.count) jobs", rollingBack: dryRun) { txn in
            txn.actor = actor
            var results: [Result<OperatorOutcome, JobStoreError>] = []
            results.reserveCapacity(ids.count)
            for id in ids {
                do {
                    results.append(.success(try await txn.apply(change, toJob: id)))
                } catch let error as JobStoreError where error.isRefusal {
                    results.append(.failure(error))  // refused before anything of it was written
                }
            }
            return results
        }
    }

    /// See `JobCore/AdministrableStore/restore(_:actor:dryRun:)`.
    public func restore(_ items: [RestoreItem], actor: String, dryRun: Bool) async throws {
        try await transaction("restore \(items.count) items", rollingBack: dryRun) { txn in
            txn.actor = actor
            for item in items { try await txn.restore(item) }
        }
    }

    /// See `JobCore/AdministrableStore/requeueExpiredLeases(batchSize:actor:dryRun:)`.
    public func requeueExpiredLeases(batchSize: Int, actor: String, dryRun: Bool) async throws -> [Job] {
        try JobStoreError.requirePositive(batchSize, "the batch size")
        func batches(_ txn: PostgresTransaction, untilShort: Bool) async throws -> [Job] {
            txn.actor = actor
            var all: [Job] = []
            while true {
                let rescued = try await txn.rescueExpiredLeases(limit: batchSize, sparing: [])
                all += rescued
                if rescued.count < batchSize || !untilShort { return all }
            }
        }
        // A dry run rehearses every batch in one transaction, each finding the next batch.
        if dryRun { return try await transaction("rehearse requeueing expired leases", rollingBack: true) { try await batches($0, untilShort: true) } }
        var all: [Job] = []
        while true {
            let rescued = try await transaction("requeue expired leases") { try await batches($0, untilShort: false) }
            all += rescued
            if rescued.count < batchSize { return all }
        }
    }

    /// See `JobCore/InspectableStore/storageFacts()`: where the store is, its size, its last event.
    public func storageFacts() async throws -> [StorageFact] {
        [
            StorageFact("store", locationDescription),
            StorageFact("size", "\(Readable.bytes(try await storageBytes())) (its tables with their indexes)"),
            StorageFact("last event", try await lastHistoryPosition()?.description ?? "-", isChangeMark: true),
        ]
    }

    /// See `JobCore/InspectableStore/changeMark()`: the end of the history and the counts (a
    /// change of a store that records no history still moves the counts).
    public func changeMark() async throws -> String {
        let counts = try await counts()
        let progress = try await statement("read the newest progress") { try await $0.rows(Statements.lastProgress()) { try $0.decode(Int64.self) }.first ?? 0 }
        return "\(try await lastHistoryPosition()?.description ?? "-") \(JobState.allCases.map { counts[$0] ?? 0 }) \(progress)"
    }

    /// See `JobCore/InspectableStore/changePollInterval`: two index reads, once a second.
    public var changePollInterval: Duration { .seconds(1) }

    /// "PostgreSQL at host:port/database" (``location``; never the password).
    public var locationDescription: String { "PostgreSQL at \(location)" }

    // MARK: History

    /// The job's timeline: its newest events (at most `JobCore/JobEvent/timelineLimit`), oldest
    /// first, and how many older ones are not shown. Empty for a job that does not exist. Read
    /// from the history: on this backend ``pruneHistory(before:)`` shortens timelines too.
    public func events(of id: JobID) async throws -> JobTimeline {
        try await statement("read the timeline of job \(id)") { txn in
            var total = 0
            let events = try await txn.rows(Statements.timeline(id, limit: JobEvent.timelineLimit)) { row in
                total = Int(try row.makeRandomAccess()[11].decode(Int64.self))
                return try EventRow.decode(row).event
            }
            return JobTimeline(events: events.reversed(), dropped: max(0, total - events.count))
        }
    }

    /// A page of the store's history in commit order: the events after `after` (a previous
    /// page's `next`), or from about time `since`, or from the oldest kept. Only events of
    /// transactions older than every running one are given (a reader following the history
    /// never passes over one that commits later), so a transaction left open holds the history
    /// back until it ends. A position is the writing transaction's id and the event's number
    /// in it (`JobCore/HistoryPosition`'s `time` and `sequence`).
    ///
    /// - Throws: `.invalidArgument` for a `limit` below 1.
    public func history(after: HistoryPosition? = nil, since: Timestamp? = nil, limit: Int = 1000) async throws -> HistoryPage {
        try JobStoreError.requirePositive(limit, "the history page size")
        return try await statement("read the history") { txn in
            var entries = try await txn.rows(Statements.history(after: after, since: after == nil ? since : nil, limit: limit), EventRow.decode)
            let more = entries.count > limit
            if more { entries.removeLast() }
            return HistoryPage(entries: entries, next: more ? entries.last?.position : nil)
        }
    }

    /// The position of the newest event in the history (of those ``history(after:since:limit:)``
    /// gives), or `nil` when it is empty.
    public func lastHistoryPosition() async throws -> HistoryPosition? {
        try await statement("read the end of the history") { txn in
            try await txn.rows(Statements.lastHistoryPosition()) { row in
                let (xid, number) = try row.decode((Int64, Int32).self)
                return HistoryPosition(time: Timestamp(microseconds: xid), sequence: UInt32(clamping: number))
            }.first
        }
    }

    /// How many of the history's events were recorded before `cutoff` (what
    /// ``pruneHistory(before:)`` would delete).
    public func countHistory(before cutoff: Timestamp) async throws -> Int {
        try await statement("count the history") { txn in
            Int(try await txn.rows(Statements.countHistory(before: cutoff)) { try $0.decode(Int64.self) }.first ?? 0)
        }
    }

    // MARK: Queries

    /// The job with `id`, or `nil`.
    public func job(_ id: JobID) async throws -> Job? {
        try await statement("read job \(id)") { try await $0.rows(Statements.job(id, locked: false), JobRow.decode).first }
    }

    /// How many jobs are in `state`: the sum of at most 16 counter rows per queue.
    public func count(_ state: JobState) async throws -> Int {
        try await statement("count \(state) jobs") { Int(try await $0.rows(Statements.count(state)) { try $0.decode(Int64.self) }.first ?? 0) }
    }

    /// How many jobs are in each state.
    public func counts() async throws -> [JobState: Int] {
        try await stateCounts("count jobs", Statements.counts())
    }

    /// The jobs in `state` by creation time, a page at a time (keyset paging on (createdAt, id)).
    public func jobs(in state: JobState, order: ListOrder = .oldestFirst, limit: Int = 100, after: PageCursor? = nil) async throws -> JobPage {
        try await jobs(matching: JobFilter(state: state), order: order, limit: limit, after: after)
    }

    /// The jobs matching `filter` by creation time, a page at a time (see `JobCore/InspectableStore`).
    public func jobs(matching filter: JobFilter, order: ListOrder = .oldestFirst, limit: Int = 100, after: PageCursor? = nil) async throws -> JobPage {
        try filter.validate()
        guard limit > 0 else { return JobPage(jobs: [], next: nil, examined: filter.examineAtMost.map { _ in 0 }) }
        let query = Statements.jobs(matching: filter, newestFirst: order == .newestFirst, limit: limit, after: after)
        return try await statement("list jobs") { txn in
            guard let budget = filter.examineAtMost else {
                var jobs = try await txn.rows(query, JobRow.decode)
                let more = jobs.count > limit
                if more { jobs.removeLast() }
                return JobPage(jobs: jobs, next: more ? jobs.last.map { PageCursor(createdAt: $0.createdAt, id: $0.id) } : nil)
            }
            // The matches, each with how far into the range it was; a page that did not fill
            // then asks how far the bound reached (an index-only count) to go on from there.
            var jobs: [Job] = []
            var reached = 0
            for row in try await txn.rows(query, { $0 }) {
                jobs.append(try JobRow.decode(row))
                reached = Int(try row.makeRandomAccess()[21].decode(Int64.self))
            }
            if jobs.count > limit {
                jobs.removeLast()
                return JobPage(jobs: jobs, next: jobs.last.map { PageCursor(createdAt: $0.createdAt, id: $0.id) }, examined: reached)
            }
            let range = Statements.examinedRange(filter, newestFirst: order == .newestFirst, after: after, budget: budget)
            guard let (examined, time, id) = try await txn.rows(range, { try $0.decode((Int64, Int64?, UUID?).self) }).first else {
                throw JobStoreError(.backend, "counting the range of a listing in PostgreSQL at \(location) gave no row")
            }
            let last = time.flatMap { time in id.map { PageCursor(createdAt: Timestamp(microseconds: time), id: JobID($0)) } }
            return JobPage(jobs: jobs, next: Int(examined) >= budget ? last : nil, examined: Int(examined))
        }
    }

    /// See `JobCore/InspectableStore/commonErrors(since:limit:examineAtMost:)`: the newest failed
    /// jobs by `updated_at` (their finish time), grouped as on LMDB.
    public func commonErrors(since: Timestamp, limit: Int = 10, examineAtMost: Int = 10_000) async throws -> ErrorSummary {
        guard examineAtMost > 0 else { return ErrorSummary(groups: [], examined: 0, complete: false) }
        return try await statement("group the recent errors") { txn in
            var failures = try await txn.rows(Statements.recentFailures(since: since, budget: examineAtMost)) { row in
                let (id, at, message) = try row.decode((UUID, Int64, String?).self)
                return (message: message ?? "(no error message)", at: Timestamp(microseconds: at), id: JobID(id))
            }
            let complete = failures.count <= examineAtMost
            if !complete { failures.removeLast() }
            return ErrorSummary.grouping(failures, limit: limit, complete: complete)
        }
    }

    /// The pipelines in `state` (or every state), a page at a time (see `JobCore/InspectableStore`).
    public func pipelines(
        in state: PipelineState? = nil, order: ListOrder = .oldestFirst, limit: Int = 100, after: PipelineCursor? = nil
    ) async throws -> PipelinePage {
        guard limit > 0 else { return PipelinePage(pipelines: [], next: nil) }
        return try await statement("list pipelines") { txn in
            var pipelines = try await txn.rows(
                Statements.pipelines(in: state, newestFirst: order == .newestFirst, limit: limit, after: after), PipelineRow.decode)
            let more = pipelines.count > limit
            if more { pipelines.removeLast() }
            return PipelinePage(pipelines: pipelines, next: more ? pipelines.last.map { PipelineCursor(createdAt: $0.createdAt, id: $0.id) } : nil)
        }
    }

    /// How many pipelines are in each state (every state, zeros included).
    public func pipelineCounts() async throws -> [PipelineState: Int] {
        try await statement("count pipelines") { txn in
            var counts = Dictionary(uniqueKeysWithValues: PipelineState.allCases.map { ($0, 0) })
            for (state, count) in try await txn.rows(Statements.pipelineCounts(), { try $0.decode((Int16, Int64).self) }) {
                if let state = PipelineState(rawValue: UInt8(clamping: state)) { counts[state] = Int(count) }
            }
            return counts
        }
    }

    /// Every queue that has jobs, is paused or is rate-limited (see `JobCore/InspectableStore`).
    public func queues() async throws -> [QueueSummary] {
        let depths = try await queueDepths()
        return try await statement("summarize the queues") { txn in
            var controls: [String: (pausedAt: Timestamp?, limit: RateLimit?)] = [:]
            for (queue, control) in try await txn.rows(Statements.queueControlsRead(), { row in
                (try row.makeRandomAccess()[0].decode(String.self), try QueueRow.decode(row, from: 1))
            }) { controls[queue] = control }
            let names = Set(depths.keys).union(controls.keys).sorted()
            let now = txn.now
            var oldest: [String: Timestamp] = [:]
            for (queue, runAt) in try await txn.rows(Statements.oldestReady(names, now: now), { try $0.decode((String, Int64?).self) }) {
                if let runAt { oldest[queue] = Timestamp(microseconds: runAt) }
            }
            return names.map { name in
                QueueSummary(
                    name: name, counts: (depths[name] ?? [:]).filter { $0.value != 0 }, pausedAt: controls[name]?.pausedAt,
                    oldestReadyAt: oldest[name], rateLimit: controls[name]?.limit?.refilled(at: now))
            }
        }
    }

    /// Every registered schedule, by name.
    public func schedules() async throws -> [ScheduleRecord] {
        try await statement("list the schedules") { try await $0.rows(Statements.schedules(), ScheduleRow.decode) }
    }

    /// The jobs created in `start..<end`, oldest first, at most `limit`.
    public func jobs(createdFrom start: Timestamp, until end: Timestamp, limit: Int = 1000) async throws -> [Job] {
        try await statement("list jobs by creation time") { try await $0.rows(Statements.jobs(createdFrom: start, until: end, limit: limit), JobRow.decode) }
    }

    /// The ids of the jobs created in `start..<end`, oldest first, at most `limit`.
    public func jobIDs(createdFrom start: Timestamp, until end: Timestamp, limit: Int = .max) async throws -> [JobID] {
        try await statement("list job ids by creation time") { txn in
            try await txn.rows(Statements.jobIDs(createdFrom: start, until: end, limit: limit)) { JobID(try $0.decode(UUID.self)) }
        }
    }

    /// How many jobs are in each state, counted row by row — a full scan, O(n): what
    /// ``counts()`` (the counters, O(1)) must always equal. For checks, not for hot paths.
    public func recount() async throws -> [JobState: Int] {
        try await stateCounts("recount jobs", Statements.recount())
    }

    /// Every state's count (zeros included) from `query`'s (state, count) rows.
    private func stateCounts(_ what: String, _ query: PostgresQuery) async throws -> [JobState: Int] {
        try await statement(what) { txn in
            var counts = Dictionary(uniqueKeysWithValues: JobState.allCases.map { ($0, 0) })
            for (state, count) in try await txn.rows(query, { try $0.decode((Int16, Int64).self) }) {
                if let state = JobState(rawValue: UInt8(clamping: state)) { counts[state] = Int(count) }
            }
            return counts
        }
    }

    /// The bytes the store's tables and their indexes take on the server's disk.
    public func storageBytes() async throws -> Int {
        try await statement("measure the tables") { Int(try await $0.rows(Statements.storageBytes()) { try $0.decode(Int64.self) }.first ?? 0) }
    }

    /// Validates and enqueues a pipeline (see `JobCore/PipelinePlan`): nothing is written
    /// for a definition that is not a valid DAG.
    @discardableResult
    public func enqueue(_ definition: PipelineDefinition) async throws -> Pipeline {
        let plan = try PipelinePlan(validating: definition)
        return try await transaction("enqueue pipeline '\(definition.name)'") { try await $0.enqueue(plan) }
    }

    /// The pipeline with `id`, or `nil`.
    public func pipeline(_ id: PipelineID) async throws -> Pipeline? {
        try await statement("read pipeline \(id)") { try await $0.rows(Statements.pipeline(id, locked: false), PipelineRow.decode).first }
    }

    /// A pipeline with its steps and their jobs, from one transaction (REPEATABLE READ: one
    /// snapshot); `nil` if there is none.
    ///
    /// - Throws: `.corruptRecord` if a step or a step's job is missing.
    public func pipelineDetails(_ id: PipelineID) async throws -> PipelineDetails? {
        try await transaction("read pipeline \(id) with its steps") { txn in
            try await txn.run("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            guard let pipeline = try await txn.rows(Statements.pipeline(id, locked: false), PipelineRow.decode).first else { return nil }
            let steps = try await txn.rows(Statements.steps(id), StepRow.decode)
            let jobs = Dictionary(try await txn.rows(Statements.stepJobsForReading(id), JobRow.decode).map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
            guard steps.count == pipeline.stepCount, steps.enumerated().allSatisfy({ $0.offset == $0.element.index }) else {
                throw JobStoreError(.corruptRecord, "pipeline \(id) has \(steps.count) step rows of \(pipeline.stepCount)")
            }
            return PipelineDetails(pipeline: pipeline, steps: steps, jobs: try steps.map { step in
                guard let job = jobs[step.jobID] else {
                    throw JobStoreError(.corruptRecord, "step \(step.index) of pipeline \(id) runs job \(step.jobID), which does not exist")
                }
                return job
            })
        }
    }

    /// Cancels a pipeline's unfinished steps.
    @discardableResult
    public func cancelPipeline(_ id: PipelineID) async throws -> Pipeline {
        try await transaction("cancel pipeline \(id)") { try await $0.cancelPipeline(id) }
    }
}
