#if canImport(Glibc)
import Glibc
#endif
import JobCore
import Logging
import ServiceLifecycle
import Locking
import Synchronization
import Tracing

/// The in-process scheduler: claims a store's ready jobs — pipeline steps included — and runs
/// them with the program's handlers, under leases, with retries, cancellation and a graceful
/// shutdown. A swift-service-lifecycle `Service`.
///
/// ```swift
/// var scheduler = Scheduler(backend: store, options: SchedulerOptions(maxConcurrency: 16))
/// scheduler.handle(queue: "mail") { context in
///     try await sendEmail(context.job.payload)
/// }
/// scheduler.handle(job: "resize", queue: "media") { context in
///     if await rateLimited() { context.snooze(for: .seconds(10)); return }
///     try await resize(context.job.payload)
/// }
/// try await scheduler.run()  // until cancelled or a graceful shutdown (ServiceGroup)
/// ```
///
/// How it works: one loop owns the running jobs. It sleeps until something happens — a handler
/// finished, the store signalled new work (a commit of this or another process), the earliest
/// delayed job's runAt came, a lease was lost, a shutdown — then, in **one** transaction,
/// writes every outcome gathered meanwhile and claims as many ready jobs as handlers are free
/// (per queue and overall). It never polls: with nothing to do it uses no CPU.
public struct Scheduler<Backend: SchedulerBackend>: Service {
    /// The store.
    public let backend: Backend
    /// How it runs.
    public let options: SchedulerOptions
    /// Where it logs (silent by default); handlers get it with the job's metadata.
    public let logger: Logger
    private var queueHandlers: [String: Registration] = [:]
    private var jobHandlers: [String: [String: Registration]] = [:]
    private var periodic: [PeriodicJob] = []
    private var middleware: [any JobMiddleware] = []

    /// A scheduler of `backend`'s jobs; register handlers, then ``run()``.
    public init(backend: Backend, options: SchedulerOptions = SchedulerOptions(), logger: Logger? = nil) {
        self.backend = backend
        self.options = options
        self.logger = logger ?? Logger(label: "jobstore.scheduler", factory: { _ in SwiftLogNoOpLogHandler() })
    }

    /// Runs every job of `queue` (that has no handler of its own name, see ``handle(job:queue:timeout:retry:_:)``)
    /// with `handler`; past `timeout` a run is cancelled and its attempt fails (see
    /// ``register(_:queue:timeout:_:)``); a failed run's job runs again by `retry` (`nil`: the
    /// scheduler's ``SchedulerOptions/retry``).
    public mutating func handle(queue: String, timeout: Duration? = nil, retry: RetryPolicy? = nil, _ handler: @escaping JobHandler) {
        queueHandlers[queue] = Registration(run: handler, timeout: timeout, retry: retry)
    }

    /// Runs the jobs named `name` in `queue` with `handler`, each run at most `timeout`, a failed
    /// run's job again by `retry` (`nil`: the scheduler's).
    public mutating func handle(
        job name: String, queue: String = "default", timeout: Duration? = nil, retry: RetryPolicy? = nil, _ handler: @escaping JobHandler
    ) {
        jobHandlers[queue, default: [:]][name] = Registration(run: handler, timeout: timeout, retry: retry)
    }

    /// Runs `middleware` around every handler: the first added is the outermost. Each sees the
    /// job (its context) before the handler and what the handler did after it (returned, or
    /// the error it threw, which it may pass on or replace).
    ///
    /// ```swift
    /// scheduler.use(ClosureMiddleware { context, next in
    ///     let start = ContinuousClock.now
    ///     defer { context.logger.info("ran in \(ContinuousClock.now - start)") }
    ///     try await next(context)
    /// })
    /// ```
    public mutating func use(_ middleware: any JobMiddleware) {
        self.middleware.append(middleware)
    }

    /// Runs the jobs of `type`'s kind (`JobCore/JobDefinition/name`) in `queue` (the
    /// definition's own by default) with `handler`, given the job's parameters decoded. A job
    /// whose payload does not decode as `type` fails for good at its first attempt, its error
    /// naming the type and the field ("cannot decode SendEmail from job …: key 'to' not found"):
    /// retrying cannot mend a payload.
    ///
    /// ```swift
    /// scheduler.register(SendEmail.self) { email, context in
    ///     try await mailer.send(to: email.to, subject: email.subject)
    /// }
    /// ```
    ///
    /// A run that takes longer than `timeout` (by default the definition's
    /// `JobCore/JobOptions/timeout`; none when both are `nil`) has its task cancelled, and its attempt fails with "timed out after …",
    /// retried by the retry policy while attempts remain. The attempt's outcome is written
    /// only when the handler has ended, so a handler that ignores cancellation keeps its job
    /// (its lease still extended) and it is never run twice at once; such a handler is reported
    /// (an error logged and the `jobstore_scheduler_jobs{event="timeout_ignored"}` counter)
    /// once it is still running ``SchedulerOptions/timeoutGrace`` after the timeout.
    public mutating func register<J: JobDefinition>(
        _ type: J.Type, queue: String? = nil, timeout: Duration? = nil, _ handler: @escaping @Sendable (J, JobContext) async throws -> Void
    ) {
        handle(job: J.name, queue: queue ?? J.options.queue, timeout: timeout ?? J.options.timeout, retry: J.options.retry) { context in
            let parameters: J
            do {
                parameters = try context.job.parameters(as: J.self)
            } catch {
                context.discard(reason: "\(error)")
                return
            }
            try await handler(parameters, context)
        }
    }

    /// Registers a periodic job (see ``schedule(_:cron:timeZone:missedTicks:job:)``).
    mutating func add(_ job: PeriodicJob) throws {
        guard !periodic.contains(where: { $0.name == job.name }) else {
            throw SchedulerError("schedule '\(job.name)' is registered twice")
        }
        periodic.append(job)
    }

    /// Runs until the task is cancelled or a graceful shutdown is triggered: then it stops
    /// claiming, lets running handlers finish for up to ``SchedulerOptions/shutdownTimeout``,
    /// cancels the rest and gives their jobs back (pending at once, the attempt not counted).
    ///
    /// - Throws: ``SchedulerError`` for bad options or no handler; a store error that makes going
    ///   on impossible (the store closed).
    public func run() async throws {
        try options.validate()
        let queues = Set(queueHandlers.keys).union(jobHandlers.keys).sorted()
        guard !queues.isEmpty || !periodic.isEmpty else {
            throw SchedulerError("no handler or schedule is registered: call handle(queue:_:), handle(job:queue:_:) or schedule(…) before run()")
        }
        let (queueHandlers, jobHandlers) = (self.queueHandlers.mapValues(wrapped), self.jobHandlers.mapValues { $0.mapValues(wrapped) })
        let engine = SchedulerEngine(
            backend: backend, options: options, logger: logger, queues: queues, periodic: periodic,
            handler: { job in jobHandlers[job.queue]?[job.name] ?? queueHandlers[job.queue] })
        try await withGracefulShutdownHandler {
            try await withTaskCancellationHandler {
                try await engine.run()
            } onCancel: {
                engine.post(.stop(graceful: false))
            }
        } onGracefulShutdown: {
            engine.post(.stop(graceful: true))
        }
    }
}

extension Scheduler {
    /// A registered handler, how long one run of it may take, and when a failed run's job runs
    /// again (`nil`: ``SchedulerOptions/retry``).
    struct Registration: Sendable {
        let run: JobHandler
        let timeout: Duration?
        let retry: RetryPolicy?
    }

    /// `registration` with the middleware around it, the first added outermost.
    private func wrapped(_ registration: Registration) -> Registration {
        let run = middleware.reversed().reduce(registration.run) { next, middleware in
            { context in try await middleware.intercept(context, next: next) }
        }
        return Registration(run: run, timeout: registration.timeout, retry: registration.retry)
    }
}

/// Code that runs around every handler of a scheduler (``Scheduler/use(_:)``): logging,
/// metrics, tracing, a guard. Call `next` to run the rest (the inner middleware, then the
/// handler); what it throws is the attempt's failure, which a middleware may pass on, replace
/// or (by returning) swallow. Not calling `next` skips the handler.
public protocol JobMiddleware: Sendable {
    /// Runs around one handler run of `context`'s job.
    func intercept(_ context: JobContext, next: @escaping JobHandler) async throws
}

/// A middleware written as a closure.
public struct ClosureMiddleware: JobMiddleware {
    private let body: @Sendable (JobContext, @escaping JobHandler) async throws -> Void

    /// The middleware that runs `body` around each handler run.
    public init(_ body: @escaping @Sendable (JobContext, _ next: @escaping JobHandler) async throws -> Void) {
        self.body = body
    }

    public func intercept(_ context: JobContext, next: @escaping JobHandler) async throws {
        try await body(context, next)
    }
}

/// The scheduler's loop and what feeds it.
final class SchedulerEngine<Backend: SchedulerBackend>: Sendable {
    enum HandlerEnd: Sendable {
        case returned
        case threw(String, cancelled: Bool)
    }

    enum Event: Sendable {
        case finished(JobID, HandlerEnd)
        case wake
        case timer(Timestamp)
        case cancelled(JobID)
        /// The store no longer has the job under this owner (the claim whose lease an extension
        /// failed to renew); a later claim of the job, under another owner, is not affected.
        case leaseLost(JobID, OwnerToken)
        /// A handler ran past its timeout.
        case timedOut(JobID, Duration)
        /// A handler timed out this long ago (``SchedulerOptions/timeoutGrace``) and may still run.
        case overdue(JobID, Duration)
        case stop(graceful: Bool)
        case deadline
        /// A shutdown timeout after the deadline: stop waiting for what has not ended.
        case abandon
        case committed(Commit)
        case retry
    }

    /// An outcome to write, with its job's queue (for the metrics).
    struct PendingOutcome: Sendable {
        var outcome: JobOutcome
        var queue: String
    }

    /// A finish-and-claim transaction that ended, with what it carried.
    struct Commit: Sendable {
        var outcomes: [PendingOutcome]
        var requests: [ClaimRequest]
        /// The loop's wake-up count when the transaction was started.
        var wakes: Int
        var owner: OwnerToken
        var started: ContinuousClock.Instant
        var result: Result<FinishResponse, any Error>
    }

    /// Why the scheduler cancelled a handler's task.
    enum CancelReason: Equatable {
        case jobCancelled, leaseLost, shutdown
        case timedOut(Duration)
    }

    struct Running {
        let job: Job
        let owner: OwnerToken
        let context: JobContext
        let task: Task<Void, Never>
        /// Posts ``Event/timedOut(_:_:)`` when the run's timeout passes; cancelled when it ends.
        let timer: Task<Void, Never>?
        /// The retry policy of its handler (`nil`: the scheduler's).
        let retry: RetryPolicy?
        let started: ContinuousClock.Instant
        var cancelReason: CancelReason?
    }

    let backend: Backend
    let options: SchedulerOptions
    let logger: Logger
    let queues: [String]
    let periodic: [PeriodicJob]
    let handler: @Sendable (Job) -> Scheduler<Backend>.Registration?
    /// The tracer of the handler runs' spans, or `nil` for the no-op one (no span at all):
    /// decided once, not per run.
    let tracer: (any Tracer)?
    /// How a step's context reads its pipeline (``JobContext/dependencyResults()``): one
    /// closure for every run.
    let readPipeline: @Sendable (PipelineID) async throws -> PipelineDetails?
    let metrics = SchedulerMetrics()
    private let inbox = Lock<[Event]>([])
    private let doorbell = Doorbell()
    /// The leases this scheduler holds, for the lease-extending task: from the claim until the
    /// job's outcome is written (waiting to start, running, or finished and not yet written).
    let held = Lock<[JobID: OwnerToken]>([:])
    /// The jobs whose handlers run, for the heartbeat: from the handler's start to its end.
    let busy = Lock<[JobID: WorkerRecord.RunningJob]>([:])
    /// The progress reported since the last write, each job's last (``JobContext/reportProgress(_:_:)``).
    let pendingProgress = Lock<[JobID: ProgressReport]>([:])
    /// How a context hands in a report: one closure for every run.
    let reportProgress: @Sendable (ProgressReport) -> Void

    init(
        backend: Backend, options: SchedulerOptions, logger: Logger, queues: [String], periodic: [PeriodicJob],
        handler: @escaping @Sendable (Job) -> Scheduler<Backend>.Registration?
    ) {
        self.backend = backend
        self.options = options
        self.logger = logger
        self.queues = queues
        self.periodic = periodic
        self.handler = handler
        let tracer = options.tracer ?? InstrumentationSystem.tracer
        self.tracer = tracer is NoOpTracer ? nil : tracer
        self.readPipeline = { [backend] id in try await backend.pipelineDetails(id) }
        self.reportProgress = { [pendingProgress] report in pendingProgress.withLock { $0[report.id] = report } }
    }

    /// Hands an event to the loop and wakes it.
    func post(_ event: Event) {
        inbox.withLock { $0.append(event) }
        doorbell.ring()
    }

    // MARK: The loop

    func run() async throws {
        logger.info("scheduler started", metadata: [
            "queues": "\(queues.joined(separator: ","))", "max_concurrency": "\(options.maxConcurrency)",
        ])
        let helpers = [
            Task { [self] in
                for await signal in backend.workSignals() {
                    switch signal {
                    case .workAvailable: post(.wake)
                    case .cancelled(let id): post(.cancelled(id))
                    }
                }
            },
            Task { [self] in await extendLeases() },
            Task { [self] in await rescuePeriodically() },
            Task { [self] in await enqueuePeriodicJobs() },
            Task { [self] in await writeProgress() },
            Task { [self] in await beat() },
        ]
        do {
            try await loop()
        } catch {
            await stop(helpers)
            throw error
        }
        await stop(helpers)
        logger.info("scheduler stopped")
    }

    /// How long a stopping scheduler waits, after the shutdown deadline, for cancelled handlers
    /// and the last write, and then for each helper task: the shutdown timeout, at least 5 s.
    /// Past it, what did not end is left behind (its jobs are rescued when their leases expire):
    /// a handler that ignores cancellation, or a store that never answers, must not keep the
    /// program from ending.
    var giveUpAfter: Duration { max(options.shutdownTimeout, .seconds(5)) }

    /// Cancels the helper tasks and waits for them, so no write of theirs lands after `run()`
    /// returned — each at most ``giveUpAfter``.
    private func stop(_ helpers: [Task<Void, Never>]) async {
        for helper in helpers { helper.cancel() }
        for helper in helpers where await !finished(helper, within: giveUpAfter) {
            logger.error("a scheduler helper task did not stop within the shutdown timeout; going on without it")
        }
    }

    /// Takes the inbox's events to the loop's state (``Loop``) one by one, then starts what was
    /// claimed while handlers are free and the next finish-and-claim transaction; sleeps on the
    /// doorbell when nothing is left to do. Returns when a stopping scheduler has nothing left.
    private func loop() async throws {
        var loop = Loop(engine: self)
        defer { loop.cancelTimers() }
        while true {
            for event in inbox.withLock({ events in defer { events = [] }; return events }) {
                switch event {
                case .finished(let id, let end): loop.finished(id, end)
                case .wake: loop.woke()
                case .timer(let at): loop.woke(timer: at)
                case .cancelled(let id): loop.cancel(id, .jobCancelled)
                case .leaseLost(let id, let owner): loop.leaseLost(id, owner: owner)
                case .timedOut(let id, let timeout): loop.timedOut(id, after: timeout)
                case .overdue(let id, let timeout): loop.overdue(id, after: timeout)
                case .stop(let graceful): loop.stop(graceful: graceful)
                case .deadline: loop.deadlinePassed()
                case .abandon:
                    loop.abandoned()
                    return
                case .retry: loop.paused = false
                case .committed(let commit): try loop.committed(commit)
                }
            }
            loop.giveBackBuffered()
            loop.startBuffered()
            if loop.writeNext() { continue }
            if loop.isDone { break }
            await doorbell.wait()
        }
    }

    /// What to write for a finished handler run; `nil` when nothing should be (its job was
    /// cancelled or its lease lost, so the store would refuse it anyway).
    func outcome(of run: Running, _ end: HandlerEnd) -> JobOutcome.Kind? {
        let (request, result) = run.context.requested
        switch (end, run.cancelReason) {
        case (.threw, .shutdown?):
            return .released
        case (.threw, .jobCancelled?), (.threw, .leaseLost?):
            metrics.count(run.cancelReason == .leaseLost ? "lease_lost" : "cancelled", queue: run.job.queue)
            return nil
        case (_, .timedOut(let timeout)?):
            // However the handler ended after its cancellation (thrown, or returned early), the
            // attempt did not finish in time.
            metrics.count("timed_out", queue: run.job.queue)
            return .failed(error: "timed out after \(timeout)", retryAt: retryTime(after: run))
        case (.threw(let message, _), nil):
            let retryAt = retryTime(after: run)
            run.context.logger.debug("handler failed", metadata: ["error": "\(message)", "retry_at": "\(retryAt)"])
            return .failed(error: message, retryAt: retryAt)
        case (.returned, _):
            switch request {
            case .retry(let at, let reason)?: return .failed(error: reason, retryAt: at)
            case .snooze(let until)?: return .snoozed(until: until)
            case .discard(let reason)?: return .failed(error: reason, retryAt: nil)
            case nil: return .succeeded(result: result)
            }
        }
    }

    /// When the job of a failed run runs again, by its handler's retry policy or the scheduler's.
    func retryTime(after run: Running) -> Timestamp {
        Timestamp.now.adding((run.retry ?? options.retry).delay(afterAttempt: Int(run.job.attempts)))
    }

    /// Counts what the store did with each outcome.
    func record(_ outcomes: [PendingOutcome], _ finished: [Job?]) {
        for (pending, job) in zip(outcomes, finished) {
            let (outcome, queue) = (pending.outcome, pending.queue)
            guard let job else {
                metrics.count("lease_lost", queue: queue)
                continue
            }
            switch (outcome.kind, job.state) {
            case (.succeeded, _): metrics.count("succeeded", queue: queue)
            case (.failed, .failed): metrics.count("failed", queue: queue)
            case (.failed, _): metrics.count("retried", queue: queue)
            case (.snoozed, _): metrics.count("snoozed", queue: queue)
            case (.released, _): metrics.count("released", queue: queue)
            }
        }
    }

    /// The most handlers of `queue` running at once.
    func limit(_ queue: String) -> Int { options.queueConcurrency[queue] ?? options.maxConcurrency }

    /// For each queue that may hold ready jobs, as many as it has free handlers plus the
    /// prefetch, less what it has buffered; the free room overall shared evenly among them. The
    /// queue that goes first rotates, so none starves the others.
    func claimRequests(
        _ candidates: Set<String>, running: Int, perQueue: [String: Int], buffered: [String: [(job: Job, owner: OwnerToken)]],
        bufferedCount: Int, rotation: inout Int
    ) -> [ClaimRequest] {
        func room(_ queue: String) -> Int {
            limit(queue) + options.prefetch - perQueue[queue, default: 0] - (buffered[queue]?.count ?? 0)
        }
        var free = options.maxConcurrency + options.prefetch - running - bufferedCount
        guard free > 0, !candidates.isEmpty, !queues.isEmpty else { return [] }
        let order = queues.indices.map { queues[(rotation + $0) % queues.count] }.filter { candidates.contains($0) && room($0) > 0 }
        rotation &+= 1
        var requests: [ClaimRequest] = []
        for (position, queue) in order.enumerated() where free > 0 {
            let share = max(1, free / (order.count - position))
            let limit = min(share, room(queue))
            requests.append(ClaimRequest(queue: queue, limit: limit))
            free -= limit
        }
        return requests
    }

    func start(_ job: Job, owner: OwnerToken, handler: Scheduler<Backend>.Registration) -> Running {
        let context = JobContext(job: job, logger: logger, pipeline: readPipeline, report: reportProgress)
        busy.withLock { $0[job.id] = WorkerRecord.RunningJob(id: job.id, queue: job.queue, name: job.name, since: .now) }
        let task = Task { [self] in
            let end: HandlerEnd
            do {
                if let tracer {
                    try await Self.traced(job, context, tracer) { try await handler.run(context) }
                } else {
                    try await handler.run(context)  // the no-op tracer: no span (19 % of the burn-down)
                }
                end = .returned
            } catch {
                end = .threw("\(error)", cancelled: error is CancellationError || Task.isCancelled)
            }
            post(.finished(job.id, end))
        }
        let timer = (job.timeout ?? handler.timeout).map { timeout in
            Task { [self] in
                guard (try? await Task.sleep(for: timeout)) != nil else { return }
                post(.timedOut(job.id, timeout))
            }
        }
        return Running(job: job, owner: owner, context: context, task: task, timer: timer, retry: handler.retry, started: .now, cancelReason: nil)
    }

    /// Runs `body` (one handler run, with the middleware) in a span of `tracer`: a `consumer`
    /// span named after the job, with its id, queue and attempt; what the handler asked for
    /// (retry, snooze, discard) or the error it threw as the outcome (an error also as the
    /// span's status). The handler's own spans are its children.
    /// Not called for the no-op tracer (``tracer`` is `nil` then): no span, no task-local
    /// context, nothing built — the burn-down measured 19 % slower with a no-op span per run.
    static func traced(_ job: Job, _ context: JobContext, _ tracer: any Tracer, _ body: () async throws -> Void) async throws {
        // The enqueuing code's trace context, which the store wrote into the job's headers
        // (``JobCore/JobTraceContext``): the run's span is its child, in the same trace.
        var parent = ServiceContext.current ?? .topLevel
        if !job.headers.isEmpty { JobTraceContext.extract(from: job.headers, into: &parent, using: tracer) }
        try await tracer.withSpan(job.name, context: parent, ofKind: .consumer) { span in
            guard span.isRecording else { return try await body() }
            span.attributes["messaging.system"] = "jobstore"
            span.attributes["messaging.destination.name"] = job.queue
            span.attributes["messaging.message.id"] = job.id.description
            span.attributes["jobstore.job.name"] = job.name
            span.attributes["jobstore.job.attempt"] = Int(job.attempts)
            do {
                try await body()
            } catch {
                span.attributes["jobstore.job.outcome"] = error is CancellationError || Task.isCancelled ? "cancelled" : "failed"
                span.setStatus(SpanStatus(code: .error, message: "\(error)"))
                throw error
            }
            span.attributes["jobstore.job.outcome"] = switch context.requested.request {
            case .retry?: "retry"
            case .snooze?: "snoozed"
            case .discard?: "discarded"
            case nil: "succeeded"
            }
        }
    }

    // MARK: Helpers running beside the loop

    /// Every progress interval, writes the progress reported since the last write (each job's
    /// last report, all in one transaction); a last write when the scheduler stops. A failed
    /// write is logged and its reports dropped (progress is advisory; the next report replaces
    /// it).
    private func writeProgress() async {
        var stopping = false
        while !stopping {
            stopping = (try? await Task.sleep(for: options.progressInterval)) == nil
            let reports = pendingProgress.withLock { pending in defer { pending = [:] }; return Array(pending.values) }
            guard !reports.isEmpty else { continue }
            do {
                if stopping {
                    try await Task { [backend] in try await backend.storeProgress(reports) }.value  // see beat()
                } else {
                    try await backend.storeProgress(reports)
                }
            } catch {
                logger.warning("writing progress reports failed", metadata: ["error": "\(error)", "jobs": "\(reports.count)"])
            }
        }
    }

    /// Every heartbeat interval, writes this scheduler's heartbeat (who it is, the jobs its
    /// handlers run); at stop, deletes it. A failed write is logged and tried at the next beat.
    private func beat() async {
        guard let interval = options.heartbeatInterval else { return }
        let id = OwnerToken.random()
        let started = Timestamp.now
        let host = hostName()
        var stopping = false
        while !stopping {
            let running = busy.withLock { Array($0.values) }
            let record = WorkerRecord(
                id: id, host: host, pid: getpid(), startedAt: started, beatAt: .now, interval: interval,
                concurrency: options.maxConcurrency, queues: queues, running: running)
            do {
                try await backend.recordWorker(record)
            } catch {
                logger.warning("writing the scheduler's heartbeat failed", metadata: ["error": "\(error)"])
            }
            stopping = (try? await Task.sleep(for: interval)) == nil
        }
        do {
            // In a task of its own: this one is cancelled (the scheduler stops), and a store may
            // refuse to start a query for a cancelled task.
            try await Task { [backend] in try await backend.removeWorker(id) }.value
        } catch {
            logger.warning("removing the scheduler's heartbeat failed; readers will call it gone", metadata: ["error": "\(error)"])
        }
    }

    /// Every third of a lease, extends the leases this scheduler holds — of the jobs claimed and
    /// waiting, running, or finished with the outcome not yet written; a lost one stops its handler.
    private func extendLeases() async {
        let period = options.lease / 3
        while !Task.isCancelled {
            guard (try? await Task.sleep(for: period)) != nil else { return }
            let leases = held.withLock { $0.map { HeldLease(id: $0.key, owner: $0.value) } }
            guard !leases.isEmpty else { continue }
            do {
                let owners = Dictionary(leases.map { ($0.id, $0.owner) }, uniquingKeysWith: { first, _ in first })
                for id in try await backend.extendLeases(leases, until: Timestamp.now.adding(options.lease)) {
                    // Lost under the owner read before the write: the job may have been finished
                    // and claimed again (another owner) meanwhile — that claim is not lost.
                    guard let owner = owners[id], held.withLock({ $0[id] == owner }) else { continue }
                    logger.notice("a held job's lease was lost; stopping its handler", metadata: ["job": "\(id)"])
                    post(.leaseLost(id, owner))
                }
            } catch {
                logger.error("extending leases failed", metadata: ["error": "\(error)"])
            }
        }
    }

    /// At start and every rescue interval: rescues jobs whose lease expired (their process died),
    /// prunes what the retention lets go, records the queue depths, and wakes the loop to look
    /// for work (a safety net for a missed signal).
    private func rescuePeriodically() async {
        while !Task.isCancelled {
            do {
                var rescued: [Job] = []
                repeat {
                    // Not the jobs this scheduler holds: their leases expired only if it stalled
                    // (a paused process, a starved thread pool, a slow write), and it runs them still.
                    // As of when they were read: a job claimed after it has a lease expiring
                    // after it, left alone however late the rescue's transaction starts.
                    let asOf = Timestamp.now
                    let own = held.withLock { Set($0.keys) }
                    rescued = try await backend.rescueExpiredLeases(limit: 1000, sparing: own, expiredBefore: asOf)
                    for job in rescued { metrics.count("rescued", queue: job.queue) }
                    if !rescued.isEmpty {
                        logger.notice("rescued jobs whose lease expired", metadata: ["count": "\(rescued.count)"])
                        post(.wake)
                    }
                } while rescued.count == 1000
                for (state, age) in options.retention.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
                    let (jobs, pipelines) = try await backend.pruneFinished(state, before: Timestamp.now.adding(.zero - age))
                    if jobs + pipelines > 0 {
                        metrics.count("pruned", queue: "all", by: jobs)
                        logger.info("pruned finished jobs", metadata: ["state": "\(state)", "jobs": "\(jobs)", "pipelines": "\(pipelines)"])
                    }
                }
                if let age = options.historyRetention {
                    let events = try await backend.pruneHistory(before: Timestamp.now.adding(.zero - age))
                    if events > 0 { logger.info("pruned the history", metadata: ["events": "\(events)"]) }
                }
                for (queue, states) in try await backend.queueDepths() where queues.contains(queue) {
                    for state in JobState.allCases { metrics.depth(queue: queue, state: state, states[state] ?? 0) }
                }
            } catch {
                logger.error("rescuing expired leases failed", metadata: ["error": "\(error)"])
            }
            // A safety net: look for work once per interval even if no signal came (a store
            // whose commit signal was missed, or no inotify).
            post(.wake)
            guard (try? await Task.sleep(for: options.rescueInterval)) != nil else { return }
        }
    }
}

extension SchedulerEngine {
    /// Registers the periodic jobs in the store (running a missed tick once where asked), then
    /// sleeps until the earliest next tick and enqueues it — exactly once per tick across
    /// processes, since the store checks the schedule's last tick in the enqueuing transaction.
    func enqueuePeriodicJobs() async {
        guard !periodic.isEmpty else { return }
        var next: [String: Timestamp] = [:]
        for job in periodic {
            let now = Timestamp.now
            do {
                let stored = try await backend.register(ScheduleRecord(
                    name: job.name, timing: job.timingText, timeZone: job.timeZoneText, queue: job.job.queue, jobName: job.job.name,
                    missedTicks: job.missedTicks, nextTick: job.next(after: now), job: job.job))
                if job.missedTicks == .runOnce, let last = stored.lastTick, let missed = job.latestTick(after: last, notAfter: now),
                    try await backend.enqueue(tick: missed, of: job.name, next: job.next(after: now), job: job.job(for: missed)) != nil
                {
                    logger.notice("ran a missed tick once", metadata: ["schedule": "\(job.name)", "tick": "\(missed)"])
                }
                next[job.name] = job.next(after: now)
            } catch {
                logger.error("registering a periodic job failed", metadata: ["schedule": "\(job.name)", "error": "\(error)"])
            }
        }
        while !Task.isCancelled, let earliest = next.values.min() {
            guard (try? await Task.sleep(for: earliest.delayFromNow)) != nil else { return }
            let now = Timestamp.now
            for job in periodic {
                guard let tick = next[job.name], tick <= now else { continue }
                let following = job.next(after: max(tick, now))
                do {
                    if try await backend.enqueue(tick: tick, of: job.name, next: following, job: job.job(for: tick)) != nil {
                        logger.debug("enqueued a periodic job", metadata: ["schedule": "\(job.name)", "tick": "\(tick)"])
                    }
                    next[job.name] = following
                } catch {
                    logger.error("enqueuing a periodic job failed; retrying at the next pass", metadata: ["schedule": "\(job.name)", "error": "\(error)"])
                    try? await Task.sleep(for: .seconds(1))
                }
            }
        }
    }
}

/// This machine's host name (gethostname), or "unknown".
func hostName() -> String {
    var buffer = [CChar](repeating: 0, count: 256)
    guard gethostname(&buffer, buffer.count - 1) == 0 else { return "unknown" }
    return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

extension Timestamp {
    /// How long until this time (zero if it has come).
    var delayFromNow: Duration { .microseconds(max(0, microseconds - Timestamp.now.microseconds)) }
}

func nanoseconds(_ duration: Duration) -> Int64 {
    duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000
}

/// Wakes one waiting task; a ring while nobody waits is kept for the next wait. The wait does
/// not end on task cancellation (the loop must go on collecting its handlers' ends).
final class Doorbell: Sendable {
    private let state = Lock<(rung: Bool, waiter: CheckedContinuation<Void, Never>?)>((false, nil))

    func ring() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            state.rung = true
            return nil
        }
        waiter?.resume()
    }

    func wait() async {
        await withCheckedContinuation { continuation in
            let ready = state.withLock { state -> Bool in
                if state.rung {
                    state.rung = false
                    return true
                }
                state.waiter = continuation
                return false
            }
            if ready { continuation.resume() }
        }
    }
}
