/// What to do with the ticks a periodic job missed while no scheduler ran.
public enum MissedTickPolicy: UInt8, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// Forget them: the next run is the next tick to come.
    case skip = 0
    /// Run the last missed tick once, at once; then the next ticks as usual.
    case runOnce = 1

    public var description: String { self == .skip ? "skip" : "run-once" }
}

/// A periodic job as registered in the store (so the admin tool shows it without the program):
/// its timing, the job it enqueues, and its last and next ticks.
public struct ScheduleRecord: Sendable, Hashable {
    /// The schedule's name, unique in the store: 1…200 bytes of UTF-8.
    public var name: String
    /// A cron expression, or `every <µs>µs` for a fixed interval.
    public var timing: String
    /// The time zone the cron expression is read in (an IANA name, e.g. `Europe/Paris`).
    public var timeZone: String
    /// The queue of the jobs it enqueues.
    public var queue: String
    /// The name of the jobs it enqueues.
    public var jobName: String
    /// What to do with ticks missed while no scheduler ran.
    public var missedTicks: MissedTickPolicy
    /// The last tick a job was enqueued for, by any process.
    public var lastTick: Timestamp?
    /// The next tick to come, as last computed.
    public var nextTick: Timestamp?
    /// When the record last changed.
    public var updatedAt: Timestamp
    /// The job each tick enqueues (a tick's job runs at the tick), as its scheduler registered
    /// it: what "run now" enqueues. `nil` in a record registered by a version of JobStore
    /// before it was kept; the next registration (a scheduler's start) adds it.
    public var job: NewJob?

    /// A record.
    public init(
        name: String, timing: String, timeZone: String, queue: String, jobName: String, missedTicks: MissedTickPolicy,
        lastTick: Timestamp? = nil, nextTick: Timestamp? = nil, updatedAt: Timestamp = .now, job: NewJob? = nil
    ) {
        self.name = name
        self.timing = timing
        self.timeZone = timeZone
        self.queue = queue
        self.jobName = jobName
        self.missedTicks = missedTicks
        self.lastTick = lastTick
        self.nextTick = nextTick
        self.updatedAt = updatedAt
        self.job = job
    }
}

extension ScheduleRecord {
    /// Checks the fields a registration needs: a name of 1…200 bytes, a timing, time zone and
    /// job name of 1…255 bytes, a valid queue name.
    ///
    /// - Throws: `.invalidArgument` naming the field.
    public func validate() throws {
        let bytes = name.utf8.count
        guard bytes > 0, bytes <= 200 else {
            throw JobStoreError(.invalidArgument, "a schedule name is 1…200 bytes of UTF-8, not \(bytes)")
        }
        for (text, field) in [(timing, "timing"), (timeZone, "time zone"), (jobName, "job name")] {
            guard !text.isEmpty, text.utf8.count <= 255 else {
                throw JobStoreError(.invalidArgument, "the \(field) of schedule '\(name)' must be 1…255 bytes")
            }
        }
        try JobStoreError.requireQueueName(queue)
        if let job, job.queue != queue || job.name != jobName {
            throw JobStoreError(
                .invalidArgument, "schedule '\(name)' enqueues jobs '\(jobName)' in queue '\(queue)', but its job is '\(job.name)' in '\(job.queue)'")
        }
    }

    /// The job "run now" enqueues: the schedule's job, to run at once (not at a tick), its
    /// id and creation time the store's.
    ///
    /// - Throws: `.invalidArgument` when the record keeps no job (registered by a version of
    ///   JobStore before it was kept): saying to start a scheduler that registers it.
    public func jobToRunNow() throws -> NewJob {
        guard var job else {
            throw JobStoreError(
                .invalidArgument, "schedule '\(name)' was registered without its job (by a version of JobStore before 'run now'), so there is nothing to run",
                hint: "Start a scheduler that registers it (Scheduler.schedule): its registration keeps the job")
        }
        job.runAt = nil
        job.id = nil
        job.createdAt = nil
        return job
    }
}
