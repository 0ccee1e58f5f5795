/// A running scheduler as it last said it was: its heartbeat, written to the store every
/// `SchedulerOptions.heartbeatInterval` by the scheduler itself, and removed when it stops. What
/// the dashboard's "Workers" page and `jobstore workers` show: who runs what, on which host,
/// since when, with how many handlers busy — Sidekiq's "Busy" page.
///
/// A scheduler that dies leaves its record: readers call it gone once it is ``isGone(at:)``
/// (three heartbeats missed), and a live scheduler's heartbeat deletes records gone for
/// ``forgottenAfter``.
public struct WorkerRecord: Sendable, Hashable {
    /// One job a handler of the scheduler runs.
    public struct RunningJob: Sendable, Hashable {
        /// The job.
        public var id: JobID
        /// Its queue.
        public var queue: String
        /// Its name.
        public var name: String
        /// When its handler started.
        public var since: Timestamp

        /// A running job.
        public init(id: JobID, queue: String, name: String, since: Timestamp) {
            self.id = id
            self.queue = queue
            self.name = name
            self.since = since
        }
    }

    /// The scheduler's id: random, new at each start.
    public var id: OwnerToken
    /// The host it runs on (at most ``maxTextBytes`` bytes).
    public var host: String
    /// Its process id.
    public var pid: Int32
    /// When it started.
    public var startedAt: Timestamp
    /// Its last heartbeat.
    public var beatAt: Timestamp
    /// How often it beats (`SchedulerOptions.heartbeatInterval`): a reader judges its age by it.
    public var interval: Duration
    /// How many handlers it runs at most at once.
    public var concurrency: Int
    /// The queues it serves (at most ``maxQueues``).
    public var queues: [String]
    /// The jobs its handlers run, the longest-running first (at most ``maxRunning``).
    public var running: [RunningJob]

    /// A record.
    public init(
        id: OwnerToken, host: String, pid: Int32, startedAt: Timestamp, beatAt: Timestamp, interval: Duration, concurrency: Int,
        queues: [String], running: [RunningJob]
    ) {
        self.id = id
        self.host = host
        self.pid = pid
        self.startedAt = startedAt
        self.beatAt = beatAt
        self.interval = interval
        self.concurrency = concurrency
        self.queues = queues
        self.running = running
    }

    /// The longest host name kept (longer ones are cut at a character boundary).
    public static let maxTextBytes = 255
    /// The most queues a record names (a scheduler serving more names the first ones).
    public static let maxQueues = 255
    /// The most running jobs a record lists.
    public static let maxRunning = 65_535
    /// How long a gone scheduler's record is kept before a live scheduler's heartbeat deletes it.
    public static let forgottenAfter = Duration.seconds(3600)

    /// Whether the scheduler missed three heartbeats by `now`: it died or stalls.
    public func isGone(at now: Timestamp) -> Bool {
        now.microseconds - beatAt.microseconds > 3 * interval.wholeMicroseconds
    }

    /// The record as stores keep it: the host cut to ``maxTextBytes``, at most ``maxQueues``
    /// queues and ``maxRunning`` jobs (longest-running first), the interval at least 1 ms.
    public func bounded() -> WorkerRecord {
        var record = self
        var bytes = 0
        record.host = String(host.prefix { character in
            bytes += character.utf8.count
            return bytes <= WorkerRecord.maxTextBytes
        })
        record.queues = Array(queues.prefix(WorkerRecord.maxQueues))
        record.running = Array(running.sorted { ($0.since, $0.id.high, $0.id.low) < ($1.since, $1.id.high, $1.id.low) }.prefix(WorkerRecord.maxRunning))
        record.interval = max(interval, .milliseconds(1))
        record.concurrency = min(max(concurrency, 0), Int(UInt16.max))
        return record
    }
}
