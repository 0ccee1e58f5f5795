import Foundation
import JobCore

/// A job enqueued on a schedule: a cron expression in a time zone, or a fixed interval.
public struct PeriodicJob: Sendable {
    /// When it fires.
    public enum Timing: Sendable, Hashable {
        /// When the cron expression matches, read in the time zone.
        case cron(CronExpression, TimeZone)
        /// Every interval, at multiples of it since the Unix epoch (every hour: on the hour, UTC).
        case every(Duration)
    }
    /// The schedule's name, unique in the store.
    public let name: String
    /// When it fires.
    public let timing: Timing
    /// What to do with ticks missed while no scheduler ran.
    public let missedTicks: MissedTickPolicy
    /// The job it enqueues at each tick.
    public let job: NewJob

    /// A periodic job. (Schedulers make them with `schedule(…)`, which checks the timing.)
    public init(name: String, timing: Timing, missedTicks: MissedTickPolicy, job: NewJob) {
        self.name = name
        self.timing = timing
        self.missedTicks = missedTicks
        self.job = job
    }

    /// The first tick after `time`.
    public func next(after time: Timestamp) -> Timestamp? {
        switch timing {
        case .cron(let expression, let timeZone):
            return expression.next(after: time, in: timeZone)
        case .every(let interval):
            let step = max(1, interval.microseconds)
            let floor = time.microseconds >= 0 ? time.microseconds / step : (time.microseconds - step + 1) / step
            return Timestamp(microseconds: (floor + 1) * step)
        }
    }

    /// The latest tick after `last` and not after `now`: the one a `runOnce` policy runs after
    /// downtime. `nil` when no tick was missed.
    public func latestTick(after last: Timestamp, notAfter now: Timestamp) -> Timestamp? {
        if case .every(let interval) = timing {
            // The tick at or before now, if it comes after `last`.
            guard let first = next(after: last), first <= now else { return nil }
            let step = max(1, interval.microseconds)
            return Timestamp(microseconds: first.microseconds + (now.microseconds - first.microseconds) / step * step)
        }
        var latest: Timestamp?
        var cursor = last
        for _ in 0..<100_000 {
            guard let tick = next(after: cursor), tick <= now else { break }
            latest = tick
            cursor = tick
        }
        return latest
    }

    /// The job for `tick`: runnable from the tick on (its `runAt` says which tick it is for),
    /// unless the registered job has its own `runAt`.
    func job(for tick: Timestamp) -> NewJob {
        var job = self.job
        job.runAt = job.runAt ?? tick
        return job
    }

    /// How the timing is written in the store (`jobstore schedules`).
    var timingText: String {
        switch timing {
        case .cron(let expression, _): expression.description
        case .every(let interval): "every \(interval.microseconds)µs"
        }
    }

    var timeZoneText: String {
        guard case .cron(_, let timeZone) = timing else { return "UTC" }
        // Foundation on Linux names UTC "GMT"; keep the name people write.
        return timeZone.identifier == "GMT" ? "UTC" : timeZone.identifier
    }
}

extension Scheduler {
    /// Enqueues `job` whenever the cron expression matches in `timeZone` (an IANA name): exactly
    /// one job per tick, however many processes run a scheduler with this schedule on the store.
    ///
    /// - Throws: ``SchedulerError`` for a bad expression (naming the field), an unknown time
    ///   zone, an expression that never fires, or a name already registered.
    public mutating func schedule(
        _ name: String, cron: String, timeZone: String = "UTC", missedTicks: MissedTickPolicy = .skip, job: NewJob
    ) throws {
        let expression = try CronExpression(parsing: cron)
        guard let zone = TimeZone(identifier: timeZone) else {
            throw SchedulerError("schedule '\(name)': '\(timeZone)' is not a time zone; use an IANA name such as Europe/Paris or UTC")
        }
        guard expression.next(after: .now, in: zone) != nil else {
            throw SchedulerError("schedule '\(name)': cron '\(cron)' never fires")
        }
        try add(PeriodicJob(name: name, timing: .cron(expression, zone), missedTicks: missedTicks, job: job))
    }

    /// Enqueues `job` every `interval` (at multiples of it since the Unix epoch): exactly one
    /// job per tick, however many processes run a scheduler with this schedule on the store.
    ///
    /// - Throws: ``SchedulerError`` for an interval under a millisecond or a name already registered.
    public mutating func schedule(_ name: String, every interval: Duration, missedTicks: MissedTickPolicy = .skip, job: NewJob) throws {
        guard interval >= .milliseconds(1) else {
            throw SchedulerError("schedule '\(name)': the interval must be at least 1 ms, not \(interval)")
        }
        try add(PeriodicJob(name: name, timing: .every(interval), missedTicks: missedTicks, job: job))
    }
}

extension Duration {
    /// Whole microseconds.
    var microseconds: Int64 { components.seconds * 1_000_000 + components.attoseconds / 1_000_000_000_000 }
}
