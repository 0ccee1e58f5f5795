/// A queue as an operator sees it: its jobs per state, whether it is paused, and how long its
/// longest-waiting ready job has waited.
public struct QueueSummary: Sendable, Hashable {
    /// The queue's name.
    public var name: String
    /// Its jobs per state (states with none left out).
    public var counts: [JobState: Int]
    /// When it was paused; `nil` while it runs.
    public var pausedAt: Timestamp?
    /// The earliest runAt among its pending jobs whose time has come: the job that has waited
    /// longest to start. `nil` when none is ready.
    public var oldestReadyAt: Timestamp?
    /// Its rate limit, if it has one.
    public var rateLimit: RateLimit?

    /// The QueueSummary of these fields.
    package init(name: String, counts: [JobState: Int], pausedAt: Timestamp? = nil, oldestReadyAt: Timestamp? = nil, rateLimit: RateLimit? = nil) {
        self.name = name
        self.counts = counts
        self.pausedAt = pausedAt
        self.oldestReadyAt = oldestReadyAt
        self.rateLimit = rateLimit
    }
}

/// At most `starts` job starts (claims) of a queue per `period`, across every process on the
/// store: a token bucket of `starts` tokens, refilled continuously at `starts` per `period`, kept
/// in the store and updated in each claim's transaction. A full bucket allows a burst of
/// `starts`; over any stretch of time T, at most `starts · (1 + T / period)` jobs start.
///
/// Stored in `meta` under `queue/rate/<queue>` (32 bytes): version (1), reserved (3 bytes),
/// starts (UInt32 LE), period (Int64 LE, µs), tokens (Float64 LE), refilled at (Int64 LE, µs).
public struct RateLimit: Sendable, Hashable {
    /// Job starts allowed per period (the bucket's size).
    public var starts: Int
    /// The period.
    public var period: Duration
    /// Tokens left at `refilledAt`.
    public var tokens: Double
    /// When the tokens were last counted.
    public var refilledAt: Timestamp

    /// A bucket with these fields, as stored.
    public init(starts: Int, period: Duration, tokens: Double, refilledAt: Timestamp) {
        self.starts = starts
        self.period = period
        self.tokens = tokens
        self.refilledAt = refilledAt
    }

    /// A new limit of `starts` job starts per `period`, its bucket full at `now`.
    ///
    /// - Throws: `.invalidArgument` unless 1 or more starts per 1 ms or more.
    public init(starts: Int, per period: Duration, at now: Timestamp) throws {
        guard starts > 0, starts <= Int(UInt32.max), period >= .milliseconds(1) else {
            throw JobStoreError(.invalidArgument, "a rate limit is 1 or more starts per 1 ms or more, not \(starts) per \(period)")
        }
        self.init(starts: starts, period: period, tokens: Double(starts), refilledAt: now)
    }

    /// A period as an operator writes it: "1m", "30s", "2h", "7d" (a whole number of the
    /// largest unit that divides it); "90s"; "1500ms" for a period with a fraction of a second.
    public static func text(of period: Duration) -> String {
        let (seconds, attoseconds) = period.components
        guard attoseconds == 0, seconds > 0 else { return "\(attoseconds / 1_000_000_000_000_000 + seconds * 1000)ms" }
        for (unit, size) in [("d", Int64(86_400)), ("h", 3600), ("m", 60)] where seconds % size == 0 {
            return "\(seconds / size)\(unit)"
        }
        return "\(seconds)s"
    }

    /// The period in microseconds.
    public var periodMicroseconds: Int64 { period.components.seconds * 1_000_000 + period.components.attoseconds / 1_000_000_000_000 }

    /// The bucket at `now`: refilled for the time since `refilledAt`, never above `starts`.
    public func refilled(at now: Timestamp) -> RateLimit {
        var bucket = self
        let elapsed = Double(max(0, now.microseconds - refilledAt.microseconds))
        bucket.tokens = min(Double(starts), tokens + elapsed * Double(starts) / Double(max(1, periodMicroseconds)))
        bucket.refilledAt = now
        return bucket
    }

    /// When the bucket holds a whole token again.
    public var nextTokenAt: Timestamp {
        let missing = max(0, 1 - tokens)
        return Timestamp(microseconds: refilledAt.microseconds + Int64((missing * Double(periodMicroseconds) / Double(max(1, starts))).rounded(.up)))
    }
}

extension JobStoreError {
    /// Checks a queue name: 1…``JobLimits/maxQueueBytes`` bytes of UTF-8 without NUL.
    ///
    /// - Throws: `.invalidArgument` saying so.
    public static func requireQueueName(_ queue: String) throws {
        let bytes = queue.utf8.count
        guard bytes > 0, bytes <= JobLimits.maxQueueBytes, !queue.utf8.contains(0) else {
            throw JobStoreError(.invalidArgument, "'\(queue)' is not a queue name: 1…\(JobLimits.maxQueueBytes) bytes of UTF-8 without NUL")
        }
    }
}

extension InspectableStore {
    /// Checks that `queue` is one the store knows (it has jobs, is paused or is rate-limited),
    /// what an operator's change of a queue checks first so that a typo is not taken for success.
    ///
    /// - Throws: `.notFound` naming the store's queues.
    public func requireQueue(_ queue: String) async throws {
        let known = try await queues().map(\.name)
        guard !known.contains(queue) else { return }
        let list = known.isEmpty ? "the store has no queues yet" : "its queues: \(known.prefix(20).joined(separator: ", "))\(known.count > 20 ? ", …" : "")"
        throw JobStoreError(
            .notFound, "\(locationDescription) has no queue '\(queue)' (\(list))",
            hint: "A queue exists while it has jobs, is paused or is rate-limited")
    }
}
