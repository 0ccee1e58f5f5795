import JobCore
import Logging
import Locking
import Synchronization

/// A job handler: runs one job. Return to succeed; throw to fail the attempt (it is retried
/// with backoff while attempts remain, and its error kept); or ask the context to retry at a
/// time, snooze, or discard the job. Task cancellation means the job was cancelled, its lease
/// lost, or the scheduler is stopping: stop soon (its outcome is then decided by why).
public typealias JobHandler = @Sendable (JobContext) async throws -> Void

/// What a handler gets: the job, its attempt, a logger, and ways to decide the outcome.
public final class JobContext: Sendable {
    /// The job, as claimed (running, under this run's lease).
    public let job: Job
    /// A logger with the job's id, name, queue and attempt as metadata.
    public let logger: Logger

    /// Which attempt this is: 1 for the first run.
    public var attempt: Int { Int(job.attempts) }

    enum Request: Sendable {
        case retry(at: Timestamp, reason: String)
        case snooze(until: Timestamp)
        case discard(reason: String)
    }
    private let state = Lock<(request: Request?, result: [UInt8]?)>((nil, nil))

    init(job: Job, logger: Logger) {
        self.job = job
        var logger = logger
        logger[metadataKey: "job"] = "\(job.id)"
        logger[metadataKey: "job_name"] = "\(job.name)"
        logger[metadataKey: "queue"] = "\(job.queue)"
        logger[metadataKey: "attempt"] = "\(job.attempts)"
        self.logger = logger
    }

    /// Ends this attempt as failed and runs the job again at `time` (if attempts remain),
    /// recording `reason` as the attempt's error. Return after calling it.
    public func retry(at time: Timestamp, reason: String = "retry requested by the handler") {
        state.withLock { $0.request = .retry(at: time, reason: reason) }
    }

    /// Runs the job again after `delay` without counting this attempt (e.g. a rate limit was
    /// hit). Return after calling it.
    public func snooze(for delay: Duration) {
        state.withLock { $0.request = .snooze(until: Timestamp.now.adding(delay)) }
    }

    /// Fails the job for good, whatever attempts remain, with `reason` as its error. Return
    /// after calling it.
    public func discard(reason: String) {
        state.withLock { $0.request = .discard(reason: reason) }
    }

    /// Stores `result` with the job when it succeeds (at most ``JobCore/JobLimits/maxResultBytes``).
    public func setResult(_ result: [UInt8]) {
        state.withLock { $0.result = result }
    }

    var requested: (request: Request?, result: [UInt8]?) { state.withLock { $0 } }
}

/// Backoff of failed attempts: `base · 2^(attempt − 1)`, at most `maximum`, each delay moved by
/// up to ± `jitter` (a fraction) at random, so jobs that failed together do not retry together.
public struct RetryPolicy: Sendable, Hashable {
    /// The delay after the first failed attempt.
    public var base: Duration
    /// The longest delay.
    public var maximum: Duration
    /// The random spread of each delay, 0…1 (0.2: ± 20 %).
    public var jitter: Double

    /// A policy; the default waits 1 s, 2 s, 4 s, … up to an hour, ± 20 %.
    public init(base: Duration = .seconds(1), maximum: Duration = .seconds(3600), jitter: Double = 0.2) {
        self.base = base
        self.maximum = maximum
        self.jitter = min(1, max(0, jitter))
    }

    /// The delay before the attempt after failed attempt `attempt` (1 for the first).
    public func delay(afterAttempt attempt: Int) -> Duration {
        let exponent = Double(max(0, min(attempt - 1, 62)))
        let seconds = min(Self.seconds(maximum), Self.seconds(base) * pow2(exponent))
        let spread = jitter > 0 ? Double.random(in: (1 - jitter)...(1 + jitter)) : 1
        return .microseconds(Int64(max(0, seconds * spread) * 1_000_000))
    }

    private func pow2(_ exponent: Double) -> Double { Double(sign: .plus, exponent: Int(exponent), significand: 1) }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}
