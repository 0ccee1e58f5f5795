import JobCore
import Tracing

/// How a scheduler runs.
public struct SchedulerOptions: Sendable {
    /// The most handlers running at once, over every queue.
    public var maxConcurrency: Int
    /// The most handlers running at once per queue; a queue not listed may use up to
    /// ``maxConcurrency``.
    public var queueConcurrency: [String: Int]
    /// How many jobs to claim beyond the free handlers (overall, and per queue), to start as
    /// handlers free up without waiting for a claim: jobs finish and are claimed in bigger
    /// batches per commit (what makes short jobs fast, above all with durable commits). They
    /// wait under lease in this process meanwhile; 0 claims only for free handlers.
    public var prefetch: Int
    /// How long a claim holds a job. While its handler runs, the lease is extended every third
    /// of it; a process that dies leaves its jobs to be rescued when their leases expire.
    public var lease: Duration
    /// How failed attempts are retried.
    public var retry: RetryPolicy
    /// How often expired leases are rescued (also once at start) and queue depths measured.
    public var rescueInterval: Duration
    /// Retention: per finished state, how long after finishing a job (and a pipeline in that
    /// state, with its steps' jobs) is kept before the periodic pass (every ``rescueInterval``)
    /// deletes it. The default keeps succeeded and cancelled ones a day and failed ones a week
    /// (River's defaults); `[:]` keeps everything.
    public var retention: [JobState: Duration]
    /// How long the store's history (every job's events in commit order, `jobstore jobs
    /// history`) keeps an event before the periodic pass deletes it; `nil` keeps it all. A job's
    /// own timeline lives as long as the job. Default: a week, the longest default retention.
    public var historyRetention: Duration?
    /// On a graceful shutdown, how long running handlers may finish before they are cancelled
    /// and their jobs given back (pending at once, the attempt not counted). After that, the
    /// scheduler waits as long again (at least 5 s) for the cancelled handlers and its last
    /// write; what has still not ended then — a handler that ignores cancellation, a store that
    /// does not answer — is left behind, and its jobs are rescued when their leases expire.
    public var shutdownTimeout: Duration
    /// How long after a handler's timeout (``Scheduler/register(_:queue:timeout:_:)``) its run
    /// may go on before it is reported as ignoring cancellation. Default: 10 s.
    public var timeoutGrace: Duration = .seconds(10)
    /// The tracer each handler run gets its span from (swift-distributed-tracing): a
    /// `consumer` span named after the job, with its id, queue and attempt, and its outcome.
    /// `nil` (the default): the process's bootstrapped one (`InstrumentationSystem.tracer`, a
    /// no-op tracer until a program bootstraps one).
    public var tracer: (any Tracer)?
    /// How often the progress handlers report (``JobContext/reportProgress(_:_:)``) is written
    /// to the store: each job's last report in the interval, all jobs' in one transaction.
    /// Default: 1 s.
    public var progressInterval: Duration = .seconds(1)
    /// How often the scheduler writes its heartbeat (`WorkerRecord`: host, pid, the
    /// jobs its handlers run) for the dashboard's workers page and `jobstore workers`; a reader
    /// calls it gone after three missed. `nil`: none written. Default: 5 s.
    public var heartbeatInterval: Duration? = .seconds(5)

    /// Options; the defaults suit most programs. `prefetch` defaults to 64.
    public init(
        maxConcurrency: Int = 8, queueConcurrency: [String: Int] = [:], prefetch: Int? = nil, lease: Duration = .seconds(30),
        retry: RetryPolicy = RetryPolicy(), rescueInterval: Duration = .seconds(30),
        retention: [JobState: Duration] = [.succeeded: .seconds(86_400), .cancelled: .seconds(86_400), .failed: .seconds(7 * 86_400)],
        historyRetention: Duration? = .seconds(7 * 86_400), shutdownTimeout: Duration = .seconds(30)
    ) {
        self.maxConcurrency = maxConcurrency
        self.queueConcurrency = queueConcurrency
        self.prefetch = prefetch ?? 64
        self.lease = lease
        self.retry = retry
        self.rescueInterval = rescueInterval
        self.retention = retention
        self.historyRetention = historyRetention
        self.shutdownTimeout = shutdownTimeout
    }

    func validate() throws {
        func positive(_ duration: Duration, _ name: String) throws {
            if duration <= .zero { throw SchedulerError("SchedulerOptions.\(name) must be positive, not \(duration)") }
        }
        if maxConcurrency < 1 { throw SchedulerError("SchedulerOptions.maxConcurrency must be at least 1, not \(maxConcurrency)") }
        for (queue, limit) in queueConcurrency where limit < 1 {
            throw SchedulerError("SchedulerOptions.queueConcurrency['\(queue)'] must be at least 1, not \(limit)")
        }
        if prefetch < 0 { throw SchedulerError("SchedulerOptions.prefetch must not be negative, not \(prefetch)") }
        try positive(lease, "lease")
        try positive(rescueInterval, "rescueInterval")
        for (state, age) in retention {
            if !state.isTerminal { throw SchedulerError("SchedulerOptions.retention can keep only finished states, not \(state)") }
            if age < .zero { throw SchedulerError("SchedulerOptions.retention[.\(state)] must not be negative") }
        }
        if let historyRetention, historyRetention < .zero { throw SchedulerError("SchedulerOptions.historyRetention must not be negative") }
        if shutdownTimeout < .zero { throw SchedulerError("SchedulerOptions.shutdownTimeout must not be negative") }
        try positive(timeoutGrace, "timeoutGrace")
        try positive(progressInterval, "progressInterval")
        if let heartbeatInterval { try positive(heartbeatInterval, "heartbeatInterval") }
    }
}

/// A scheduler set up wrongly (bad options, no handler at all).
public struct SchedulerError: Error, CustomStringConvertible {
    /// What is wrong and what to do.
    public let description: String
    init(_ description: String) { self.description = description }
}
