
/// A store the scheduler runs on, with the queries and operations a program uses beside it:
/// the embedded `JobRepository` (module `JobStore`) (LMDB) and `PostgresJobStore` (module
/// `JobStorePostgres`) both implement it, so code written against it — and the conformance
/// tests — run on either, and moving from one process to a fleet is a change of one line.
///
/// Each requirement behaves as the embedded store's method of the same name documents.
public protocol JobStoreBackend: SchedulerBackend {
    /// Inserts a job, pending (or returns the live job holding its unique key).
    func insert(_ job: NewJob) async throws -> Job
    /// The job with `id`, or `nil`.
    func job(_ id: JobID) async throws -> Job?
    /// The progress the job's handler last reported (``JobProgress``), or `nil` when it never did
    /// or the job does not exist. Reports arrive coalesced: what a handler reports is stored
    /// within the scheduler's `progressInterval`.
    func progress(of id: JobID) async throws -> JobProgress?
    /// How many jobs are in `state`: O(1).
    func count(_ state: JobState) async throws -> Int
    /// How many jobs are in each state: O(1) each.
    func counts() async throws -> [JobState: Int]
    /// The jobs in `state` by creation time, a page at a time (keyset paging: `after` is the
    /// previous page's `next`).
    func jobs(in state: JobState, order: ListOrder, limit: Int, after: PageCursor?) async throws -> JobPage
    /// The jobs created in `start..<end`, oldest first, at most `limit`.
    func jobs(createdFrom start: Timestamp, until end: Timestamp, limit: Int) async throws -> [Job]
    /// Validates and enqueues a pipeline: its steps without dependencies pending, the others waiting.
    func enqueue(_ definition: PipelineDefinition) async throws -> Pipeline
    /// The pipeline with `id`, or `nil`.
    func pipeline(_ id: PipelineID) async throws -> Pipeline?
    /// Puts a failed or cancelled job back to pending (a pipeline step with an unfinished
    /// dependency to waiting), one more attempt allowed.
    func retry(_ id: JobID) async throws -> Job
    /// Deletes a job; false if there was none. A pipeline step's job goes with its pipeline
    /// (`.invalidArgument`).
    func delete(_ id: JobID) async throws -> Bool
    /// Cancels a pipeline's unfinished steps.
    func cancelPipeline(_ id: PipelineID) async throws -> Pipeline
    /// Pauses a queue: no process claims its jobs until it is resumed.
    func pause(queue: String) async throws
    /// Resumes a paused queue.
    func resume(queue: String) async throws
    /// Limits a queue to `starts` job starts per `period`, across processes.
    func setRateLimit(queue: String, starts: Int, per period: Duration) async throws
    /// Removes a queue's rate limit.
    func removeRateLimit(queue: String) async throws
}

/// What an operator reads of a store, beside what a program uses (``JobStoreBackend``): the
/// listings the admin tool and the dashboard show, the same on every backend. The embedded
/// `JobRepository` and `PostgresJobStore` implement it; the conformance suite holds them to the
/// same answers. Its changes are ``AdministrableStore``'s.
public protocol InspectableStore: JobStoreBackend {
    /// Where the store is, for people (a page's header, a message): an LMDB store's directory,
    /// "PostgreSQL at host:port/database" (never a password).
    var locationDescription: String { get }
    /// The jobs matching `filter` by creation time, a page at a time (keyset paging: `after`
    /// is the previous page's `next`): a state's range of its creation-time index, or the
    /// creation-time index; a queue or tenant filter skips the range's other jobs.
    func jobs(matching filter: JobFilter, order: ListOrder, limit: Int, after: PageCursor?) async throws -> JobPage
    /// The pipelines in `state` (every state when `nil`), a page at a time: by creation time
    /// within a state, by id (creation order) across states.
    func pipelines(in state: PipelineState?, order: ListOrder, limit: Int, after: PipelineCursor?) async throws -> PipelinePage
    /// How many pipelines are in each state (every state, zeros included).
    func pipelineCounts() async throws -> [PipelineState: Int]
    /// Every queue that has jobs, is paused or is rate-limited, by name: its counts per state,
    /// its pause, its limit (refilled to now) and its longest-waiting ready job.
    func queues() async throws -> [QueueSummary]
    /// Every registered periodic job, by name.
    func schedules() async throws -> [ScheduleRecord]
    /// The bytes the store takes: on LMDB the pages in use, on PostgreSQL its tables with their
    /// indexes and TOAST.
    func storageBytes() async throws -> Int
    /// Every inconsistency found by checking what the store keeps against a recount: on LMDB
    /// every record, index entry, counter, pipeline and event (`chunkSize` entries per read
    /// transaction); on PostgreSQL (where the database keeps rows and indexes consistent) the
    /// counters per queue and state against a count of the rows, and each pipeline's step
    /// counts against its steps' jobs. Empty when all is well. O(n): for an operator, not a
    /// hot path.
    func verify(chunkSize: Int) async throws -> [VerificationProblem]
    /// How many running jobs hold a lease that expired before now: their worker stopped, and a
    /// scheduler's rescue will put them back.
    func expiredLeaseCount() async throws -> Int
    /// The most common last error messages of the jobs that failed for good since `since`
    /// (their finish time), the `limit` commonest first: the newest `examineAtMost` failed jobs
    /// looked at, from the index of finished jobs (pipeline steps' jobs included).
    func commonErrors(since: Timestamp, limit: Int, examineAtMost: Int) async throws -> ErrorSummary
    /// The schedulers' heartbeat records, the longest-running scheduler first: live ones and
    /// those gone (``WorkerRecord/isGone(at:)``) not yet forgotten.
    func workers() async throws -> [WorkerRecord]
    /// The job's timeline: its newest events (at most ``JobEvent/timelineLimit``), oldest first,
    /// and how many older ones are not shown; empty for a job that does not exist.
    func events(of id: JobID) async throws -> JobTimeline
    /// A page of the store's history in commit order: the events after `after` (a previous
    /// page's `next`), or from time `since`, or from the oldest kept.
    func history(after: HistoryPosition?, since: Timestamp?, limit: Int) async throws -> HistoryPage
    /// The position of the newest event in the history, or `nil` when it is empty: where a
    /// reader that wants only what happens from now on starts.
    func lastHistoryPosition() async throws -> HistoryPosition?
    /// How many of the history's events were recorded before `cutoff`: what
    /// ``SchedulerBackend/pruneHistory(before:)`` would delete.
    func countHistory(before cutoff: Timestamp) async throws -> Int
    /// The storage's own facts for an operator (the dashboard's store table and `/metrics`):
    /// on LMDB its directory, the space used in its map, readers, last transaction and format;
    /// on PostgreSQL where it is, its size and its last event.
    func storageFacts() async throws -> [StorageFact]
    /// A value that changes whenever a change of the store commits, cheap to read: what live
    /// views poll (LMDB's last transaction id, from the lock file's shared memory; PostgreSQL's
    /// end of the history with the counts, two index reads).
    func changeMark() async throws -> String
    /// How often polling ``changeMark()`` is worth it: 250 ms on LMDB, 1 s on PostgreSQL.
    var changePollInterval: Duration { get }
}

/// One fact about a store's storage, as ``InspectableStore/storageFacts()`` gives it.
public struct StorageFact: Sendable, Hashable {
    /// What it is, for people: "used", "readers", "last transaction".
    public var label: String
    /// Its value, for people: "1.2 MiB of a 1.0 GiB map".
    public var text: String
    /// Its value as a Prometheus metric, if it is one.
    public var metric: StorageMetric?
    /// Whether it is the store's ``InspectableStore/changeMark()`` (a live view updates it).
    public var isChangeMark: Bool

    /// A fact.
    public init(_ label: String, _ text: String, metric: StorageMetric? = nil, isChangeMark: Bool = false) {
        self.label = label
        self.text = text
        self.metric = metric
        self.isChangeMark = isChangeMark
    }
}

/// A storage fact as a Prometheus metric.
public struct StorageMetric: Sendable, Hashable {
    /// Its name, e.g. `jobstore_store_readers`.
    public var name: String
    /// Its `# HELP` text.
    public var help: String
    /// A counter (only grows) rather than a gauge.
    public var isCounter: Bool
    /// Its value.
    public var value: Int

    /// A metric.
    public init(_ name: String, _ help: String, isCounter: Bool = false, value: Int) {
        self.name = name
        self.help = help
        self.isCounter = isCounter
        self.value = value
    }
}

/// A change an operator makes to one job, or to the pipeline of that id when no job has it (the
/// admin tool's `cancel`, `retry`, `requeue`, `delete`; the dashboard's buttons), as data: each
/// backend applies it in one transaction of its own, recording who made it.
public enum OperatorChange: String, Sendable, Hashable, CaseIterable {
    /// A job: waiting, pending or running → cancelled. A pipeline: every unfinished step.
    case cancel
    /// A job: failed or cancelled → pending (or waiting, a step with an unfinished dependency).
    /// A pipeline: its failed and cancelled steps.
    case retry
    /// A job: running or pending → pending, runnable now; failed or cancelled → retried. Jobs only.
    case requeue
    /// A job (not a pipeline step), or a pipeline with its steps' jobs.
    case delete

    /// What the change did, for people: "cancelled", "retried", "requeued", "deleted".
    public var done: String {
        switch self {
        case .cancel: "cancelled"
        case .retry: "retried"
        case .requeue: "requeued"
        case .delete: "deleted"
        }
    }
}

/// What an ``OperatorChange`` did.
public struct OperatorOutcome: Sendable, Hashable {
    /// Whether the id was a pipeline's (no job had it).
    public var isPipeline: Bool
    /// The job's or pipeline's state after the change: a state's name, or "deleted".
    public var state: String

    /// An outcome.
    public init(isPipeline: Bool, state: String) {
        self.isPipeline = isPipeline
        self.state = state
    }
}

/// A change an operator makes to a queue (the admin tool's `queues pause|resume|limit|unlimit`),
/// as data, as ``OperatorChange`` for jobs.
public enum QueueChange: Sendable, Hashable {
    /// No process claims its jobs until it is resumed (a paused queue keeps its first pause time).
    case pause
    /// Its ready jobs are claimed again.
    case resume
    /// At most `starts` job starts per `period`, across processes (replacing a limit it had).
    case limit(starts: Int, per: Duration)
    /// No rate limit.
    case unlimit
}

/// A store an operator changes as well as reads: the admin tool's and the dashboard's actions,
/// the same on every backend.
public protocol AdministrableStore: InspectableStore {
    /// Applies `change` to the job with `id` — or, when no job has it, to the pipeline with it
    /// (but a requeue) — in one transaction whose events name `actor`. With `dryRun`, the
    /// change is made and rolled back: what it would do, nothing changed.
    ///
    /// - Throws: `.notFound` when neither a job nor a pipeline has the id; what the change
    ///   itself refuses (`.illegalTransition`, `.invalidArgument` for a step's job deleted alone).
    func apply(_ change: OperatorChange, to id: JobID, actor: String, dryRun: Bool) async throws -> OperatorOutcome
    /// Applies `change` to `queue` in one transaction whose event names `actor` (rolled back
    /// with `dryRun`); whether it changed anything (pausing a paused queue does not).
    ///
    /// - Throws: `.invalidArgument` for a bad queue name or limit.
    func apply(_ change: QueueChange, to queue: String, actor: String, dryRun: Bool) async throws -> Bool
    /// Applies `change` to each job of `ids` — jobs only: an id no job has is `.notFound`,
    /// never taken for a pipeline's — in one transaction whose events name `actor`, rolled back
    /// with `dryRun`. For each id, in order, what the change did or what refused it
    /// (``JobStoreError/isRefusal``: the job is left as it was). Each sees what the ones before
    /// it changed: a step cancelled with an earlier one's dependents is then refused.
    ///
    /// - Throws: any error but a refusal, and then nothing of the batch is kept.
    func apply(_ change: OperatorChange, toJobs ids: [JobID], actor: String, dryRun: Bool) async throws -> [Result<OperatorOutcome, JobStoreError>]
    /// Puts each running job whose lease expired (its worker stopped) back in line, as a
    /// scheduler's rescue does, at most `batchSize` per transaction, by `actor`; with `dryRun`
    /// every batch in one transaction that is rolled back. The jobs as they are after.
    func requeueExpiredLeases(batchSize: Int, actor: String, dryRun: Bool) async throws -> [Job]
    /// Deletes the jobs in the terminal `state` that `selection` picks (a pipeline step's job
    /// is left to its pipeline) and the pipelines in that state, with their steps' jobs, in
    /// transactions of at most `batchSize` jobs (a tenth of it pipelines), recording a `pruned`
    /// event for each job. With `dryRun`, only counts them. How many jobs and pipelines.
    ///
    /// - Throws: `.illegalTransition` for a state that is not terminal.
    func prune(_ state: JobState, _ selection: PruneSelection, batchSize: Int, dryRun: Bool) async throws -> (jobs: Int, pipelines: Int)
    /// Puts `items` (an export's, in its order) back in one transaction whose events name
    /// `actor`, rolled back with `dryRun`: each job exactly as it was (validated, indexed and
    /// counted like an insert, its timeline kept), each pipeline rebuilt around its steps'
    /// jobs (``RestoreItem/pipeline(_:)``), queue controls, schedules. All or none.
    ///
    /// - Throws: `.invalidField` for a job or pipeline whose id is in the store, a live job
    ///   whose unique key another holds, a bad field; `.invalidPipeline` for a pipeline that is
    ///   not a valid DAG; `.invalidArgument` for a bad queue name or limit.
    func restore(_ items: [RestoreItem], actor: String, dryRun: Bool) async throws
    /// Enqueues the job of the periodic schedule `name` to run at once ("run now"), in one
    /// transaction whose `inserted` event names `actor`, rolled back with `dryRun`. Its ticks
    /// go on as before: the job is one more, not a tick. The job.
    ///
    /// - Throws: `.notFound` for a schedule that is not registered; `.invalidArgument` for one
    ///   registered without its job (``ScheduleRecord/jobToRunNow()``); what an insert
    ///   refuses (a live job holding the job's unique key).
    func runNow(schedule name: String, actor: String, dryRun: Bool) async throws -> Job
}

/// Which finished jobs and pipelines a prune takes: by when they were created or when they
/// finished.
public enum PruneSelection: Sendable, Hashable {
    /// Created before this time.
    case createdBefore(Timestamp)
    /// Finished before this time.
    case finishedBefore(Timestamp)

    /// The time.
    public var cutoff: Timestamp {
        switch self {
        case .createdBefore(let time), .finishedBefore(let time): time
        }
    }
}
