import LMDB

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

    /// A record.
    public init(
        name: String, timing: String, timeZone: String, queue: String, jobName: String, missedTicks: MissedTickPolicy,
        lastTick: Timestamp? = nil, nextTick: Timestamp? = nil, updatedAt: Timestamp = .now
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
    }
}

extension JobTransaction {
    /// The registration of schedule `name`, or `nil`.
    public func schedule(_ name: String) throws -> ScheduleRecord? {
        try txn.withValue(db.meta, MetaKey.schedule(name)) { bytes in try bytes.map { try ScheduleFormat.decode($0, name: name) } }
    }

    /// Registers (or updates) a schedule: its timing, job, policy and next tick; the last tick
    /// already recorded in the store is kept. Returns the stored record.
    @discardableResult
    public func register(_ schedule: ScheduleRecord) throws -> ScheduleRecord {
        try schedule.validate()
        var record = schedule
        record.lastTick = try self.schedule(schedule.name)?.lastTick ?? schedule.lastTick
        record.updatedAt = now
        try txn.put(db.meta, MetaKey.schedule(schedule.name), ScheduleFormat.encode(record))
        return record
    }

    /// Enqueues `job` for `tick` of schedule `name` — unless a job was already enqueued for this
    /// tick or a later one (by this or another process: the check and the insert are one
    /// transaction, so each tick gets exactly one job) — and records `tick` as the last and
    /// `next` as the next. Returns the job, or `nil` when the tick was already taken.
    ///
    /// - Throws: `.notFound` for a schedule that is not registered.
    public func enqueue(tick: Timestamp, of name: String, next: Timestamp?, job: NewJob) throws -> Job? {
        guard var record = try schedule(name) else {
            throw JobStoreError(.notFound, "no schedule '\(name)' is registered", hint: "Register it first (Scheduler.schedule)")
        }
        if let last = record.lastTick, last >= tick { return nil }
        let inserted = try insert(job)
        record.lastTick = tick
        record.nextTick = next
        record.updatedAt = now
        try txn.put(db.meta, MetaKey.schedule(name), ScheduleFormat.encode(record))
        return inserted
    }
}

extension JobRepository {
    /// Every registered schedule, by name.
    public func schedules() throws -> [ScheduleRecord] {
        try reading { txn in
            try db.metaEntries(txn, prefix: MetaKey.schedulePrefix) { name, value in try ScheduleFormat.decode(value, name: name) }
                .values.sorted { $0.name < $1.name }
        }
    }
}
