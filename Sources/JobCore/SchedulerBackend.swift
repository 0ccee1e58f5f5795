
/// What the scheduler needs from a store, and nothing more: no LMDB type crosses it, so another
/// store (a PostgreSQL backend) can implement it and run the same scheduler and tests.
/// `JobRepository` (module `JobStore`) implements it.
public protocol SchedulerBackend: Sendable {
    /// In **one** transaction: applies `outcomes` (each checked against its owner token: a job
    /// whose lease was lost is reported, not an error), then claims up to each request's limit
    /// of ready jobs of its queue under a lease of `lease` held by `owner`. Finishing a job and
    /// claiming the next thus cost one commit.
    func finish(_ outcomes: [JobOutcome], claiming requests: [ClaimRequest], lease: Duration, owner: OwnerToken) async throws -> FinishResponse
    /// Extends the leases of these running jobs to `until`, never shortening one (a later expiry
    /// already written stays); returns the ids of those whose lease was lost (rescued,
    /// cancelled, deleted or reclaimed), whose handlers must stop.
    func extendLeases(_ leases: [HeldLease], until: Timestamp) async throws -> [JobID]
    /// Moves up to `limit` running jobs whose lease expired back to pending (or failed when out
    /// of attempts), each with an error saying so; the jobs in `sparing` (the calling
    /// scheduler's own) are passed over. `expiredBefore`: the time `sparing` was read — a lease
    /// that expired after it is left too, since its job may have been claimed by the caller
    /// after the read (a transaction that starts late, on a stalled machine, must not take
    /// them); `nil`: now.
    func rescueExpiredLeases(limit: Int, sparing: Set<JobID>, expiredBefore: Timestamp?) async throws -> [Job]
    /// A pipeline with its steps and their jobs, from one snapshot, or `nil`: what a step's
    /// handler reads its dependencies' results from (`JobScheduler`'s
    /// `JobContext.dependencyResults()`).
    func pipelineDetails(_ id: PipelineID) async throws -> PipelineDetails?
    /// Deletes the jobs in the finished `state` that finished before `cutoff`, and the pipelines
    /// in that state that did (with their steps' jobs), in bounded transactions; returns how
    /// many of each.
    func pruneFinished(_ state: JobState, before cutoff: Timestamp) async throws -> (jobs: Int, pipelines: Int)
    /// Deletes the events of the store's history recorded before `cutoff`, in bounded
    /// transactions; returns how many.
    func pruneHistory(before cutoff: Timestamp) async throws -> Int
    /// Registers (or updates) a periodic job, keeping the last tick already recorded; returns the
    /// stored registration.
    func register(_ schedule: ScheduleRecord) async throws -> ScheduleRecord
    /// In one transaction: enqueues `job` for `tick` of schedule `name` unless a job was already
    /// enqueued for this tick or a later one (by any process), and records the tick and `next`.
    /// Returns the job, or `nil` when the tick was taken.
    func enqueue(tick: Timestamp, of name: String, next: Timestamp?, job: NewJob) async throws -> Job?
    /// Inserts jobs.
    func enqueue(_ jobs: [NewJob]) async throws -> [Job]
    /// Stores the progress handlers reported (the scheduler's coalesced reports, a batch in one
    /// transaction), each over the job's last; a report of a job that no longer exists is
    /// dropped. Progress is kept apart from the job's record: no record is rewritten.
    func storeProgress(_ reports: [ProgressReport]) async throws
    /// Writes a scheduler's heartbeat (``WorkerRecord/bounded()``) over its last, and deletes
    /// the records of schedulers gone for ``WorkerRecord/forgottenAfter``, in one transaction.
    func recordWorker(_ worker: WorkerRecord) async throws
    /// Deletes a stopping scheduler's heartbeat record.
    func removeWorker(_ id: OwnerToken) async throws
    /// Cancels a waiting, pending or running job.
    func cancel(_ id: JobID) async throws -> Job
    /// Per queue, how many jobs are in each state (for the queue-depth gauges).
    func queueDepths() async throws -> [String: [JobState: Int]]
    /// Signals of new work (a job became pending, here or in another process) and of running
    /// jobs cancelled; the stream ends when the store closes.
    func workSignals() -> AsyncStream<WorkSignal>
}

/// How many jobs of a queue to claim.
public struct ClaimRequest: Sendable, Hashable {
    /// The queue.
    public var queue: String
    /// At most this many.
    public var limit: Int

    /// A request.
    public init(queue: String, limit: Int) {
        self.queue = queue
        self.limit = limit
    }
}

/// How a run of a job ended, to be written by ``SchedulerBackend/finish(_:claiming:lease:owner:)``.
public struct JobOutcome: Sendable {
    /// How it ended.
    public enum Kind: Sendable {
        /// Succeeded, with an optional result.
        case succeeded(result: [UInt8]?)
        /// Failed with `error`: pending again at `retryAt` while attempts remain, or failed for
        /// good when `retryAt` is `nil` or no attempt remains.
        case failed(error: String, retryAt: Timestamp?)
        /// Run again at `until`; the attempt does not count.
        case snoozed(until: Timestamp)
        /// Given back unfinished (the scheduler stops): pending now; the attempt does not count.
        case released
    }
    /// The job.
    public var id: JobID
    /// The token of the claim that ran it.
    public var owner: OwnerToken
    /// How it ended.
    public var kind: Kind

    /// An outcome.
    public init(id: JobID, owner: OwnerToken, kind: Kind) {
        self.id = id
        self.owner = owner
        self.kind = kind
    }
}

extension JobOutcome.Kind {
    /// What the outcome does to its running job (both backends apply it in their finishing
    /// transaction, then stamp, check and store the job as any change).
    package func apply(to job: inout Job, at now: Timestamp) {
        switch self {
        case .succeeded(let result): job.succeed(result: result)
        case .failed(let error, let retryAt): job.fail(error, at: now, retryAt: retryAt)
        case .snoozed(let until): job.giveBack(until: until)
        case .released: job.giveBack(until: now)
        }
    }

    /// The event the history records for it, when the move alone does not tell (a snoozed and
    /// a released job both go from running to pending); `nil`: the one the move implies.
    package var event: JobEvent.Kind? {
        switch self {
        case .snoozed: .snoozed
        case .released: .released
        case .succeeded, .failed: nil
        }
    }
}

/// A running job's lease as its runner holds it.
public struct HeldLease: Sendable, Hashable {
    /// The job.
    public var id: JobID
    /// The claim's token.
    public var owner: OwnerToken

    /// A held lease.
    public init(id: JobID, owner: OwnerToken) {
        self.id = id
        self.owner = owner
    }
}

/// What ``SchedulerBackend/finish(_:claiming:lease:owner:)`` did.
public struct FinishResponse: Sendable {
    /// Per outcome, in order: the job as stored after it, or `nil` when its lease was lost
    /// (rescued, cancelled, deleted or claimed again meanwhile; the outcome was dropped).
    public var finished: [Job?]
    /// The claimed jobs, now running.
    public var claimed: [Job]
    /// The queues whose claim returned as many jobs as asked (they may hold more ready ones).
    public var filledQueues: Set<String>
    /// The earliest runAt, among the requested queues that were not filled, of a pending job
    /// whose time has not come: when to claim again if nothing else happens.
    public var nextRunAt: Timestamp?

    /// A response.
    public init(finished: [Job?], claimed: [Job], filledQueues: Set<String>, nextRunAt: Timestamp?) {
        self.finished = finished
        self.claimed = claimed
        self.filledQueues = filledQueues
        self.nextRunAt = nextRunAt
    }
}

extension FinishResponse {
    /// The response of a finishing transaction whose claims, in order, gave `claims`: which
    /// queues filled their request, and the earliest next runAt of those that did not.
    package init(finished: [Job?], claims: [(request: ClaimRequest, batch: ClaimBatch)]) {
        var filled = Set<String>()
        var nextRunAt: Timestamp?
        for (request, batch) in claims {
            if batch.jobs.count == request.limit { filled.insert(request.queue) }
            if let next = batch.nextRunAt { nextRunAt = min(nextRunAt ?? next, next) }
        }
        self.init(finished: finished, claimed: claims.flatMap(\.batch.jobs), filledQueues: filled, nextRunAt: nextRunAt)
    }
}

/// A signal from the store to the scheduler.
public enum WorkSignal: Sendable, Hashable {
    /// A job may have become claimable (inserted, released, retried; or another process wrote).
    case workAvailable
    /// A running job was cancelled or deleted: its handler should stop.
    case cancelled(JobID)
}

extension SchedulerBackend {
    /// ``rescueExpiredLeases(limit:sparing:expiredBefore:)`` of the leases expired by now.
    public func rescueExpiredLeases(limit: Int, sparing: Set<JobID>) async throws -> [Job] {
        try await rescueExpiredLeases(limit: limit, sparing: sparing, expiredBefore: nil)
    }
}
