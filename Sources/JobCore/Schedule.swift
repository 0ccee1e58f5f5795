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
