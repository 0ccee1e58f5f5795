import Foundation
import JobStore

/// A queue's controls as `export` writes them and `import` restores them (`"kind": "queue"`):
/// whether it is paused (since when) and its rate limit. A queue with neither has no line.
package struct QueueJSON: Codable {
    package struct RateLimitJSON: Codable {
        package var starts: Int
        package var periodMicroseconds: Int64

        enum CodingKeys: String, CodingKey {
            case starts
            case periodMicroseconds = "period_us"
        }
    }

    package var kind = "queue"
    package var name: String
    package var pausedAt: Int64?
    package var pausedAtISO: String?
    package var rateLimit: RateLimitJSON?

    enum CodingKeys: String, CodingKey {
        case kind, name
        case pausedAt = "paused_at", pausedAtISO = "paused_at_iso", rateLimit = "rate_limit"
    }

    /// The controls of `queue`, or `nil` when it has none to carry.
    package init?(_ queue: QueueSummary) {
        guard queue.pausedAt != nil || queue.rateLimit != nil else { return nil }
        name = queue.name
        pausedAt = queue.pausedAt?.microseconds
        pausedAtISO = queue.pausedAt?.iso
        rateLimit = queue.rateLimit.map { RateLimitJSON(starts: $0.starts, periodMicroseconds: $0.periodMicroseconds) }
    }

    /// The controls, checked: a queue name, a rate limit of at least 1 start per at least 1 ms.
    package func export() throws -> QueueControls {
        guard !name.isEmpty else { throw LineError("field 'name' is empty") }
        if let rateLimit {
            guard rateLimit.starts >= 1 else { throw LineError("field 'rate_limit.starts' is \(rateLimit.starts); it must be at least 1") }
            guard rateLimit.periodMicroseconds >= 1000 else {
                throw LineError("field 'rate_limit.period_us' is \(rateLimit.periodMicroseconds); it must be at least 1000 (1 ms)")
            }
        }
        return QueueControls(
            name: name, pausedAt: pausedAt.map(Timestamp.init(microseconds:)),
            rateStarts: rateLimit?.starts, ratePeriod: rateLimit.map { Duration.microseconds($0.periodMicroseconds) })
    }
}

/// A registered periodic job as `export` writes it and `import` restores it (`"kind": "schedule"`),
/// with its last tick, so a restored store does not run a tick again.
package struct ScheduleJSON: Codable {
    package var kind = "schedule"
    package var name: String
    package var timing: String
    package var timeZone: String
    package var queue: String
    package var jobName: String
    package var missedTicks: String
    package var lastTick: Int64?
    package var nextTick: Int64?
    /// The job it enqueues (`ScheduleRecord/job`); absent in an export of a store that did not
    /// keep it.
    package var job: Template?

    /// A schedule's job: its name and queue are the schedule's; the payload is base64.
    package struct Template: Codable {
        var priority: UInt8
        var maxAttempts: UInt16
        var tenant: String?
        var uniqueKey: String?
        var payload: String
        var timeoutMicroseconds: Int64?
        var headers: [String: String]?

        enum CodingKeys: String, CodingKey {
            case priority, tenant, payload, headers
            case maxAttempts = "max_attempts", uniqueKey = "unique_key", timeoutMicroseconds = "timeout_us"
        }
    }

    enum CodingKeys: String, CodingKey {
        case kind, name, timing, queue, job
        case timeZone = "time_zone", jobName = "job_name", missedTicks = "missed_ticks", lastTick = "last_tick", nextTick = "next_tick"
    }

    package init(_ schedule: ScheduleRecord) {
        name = schedule.name
        timing = schedule.timing
        timeZone = schedule.timeZone
        queue = schedule.queue
        jobName = schedule.jobName
        missedTicks = schedule.missedTicks.description
        lastTick = schedule.lastTick?.microseconds
        nextTick = schedule.nextTick?.microseconds
        job = schedule.job.map { job in
            Template(
                priority: job.priority, maxAttempts: job.maxAttempts, tenant: job.tenant, uniqueKey: job.uniqueKey,
                payload: Data(job.payload).base64EncodedString(), timeoutMicroseconds: job.timeout?.wholeMicroseconds,
                headers: job.headers.isEmpty ? nil : job.headers)
        }
    }

    /// The record, checked as a registration is.
    package func record() throws -> ScheduleRecord {
        guard let policy = MissedTickPolicy.allCases.first(where: { $0.description == missedTicks }) else {
            throw LineError("field 'missed_ticks' is '\(missedTicks)'; it is skip or run-once")
        }
        let record = ScheduleRecord(
            name: name, timing: timing, timeZone: timeZone, queue: queue, jobName: jobName, missedTicks: policy,
            lastTick: lastTick.map(Timestamp.init(microseconds:)), nextTick: nextTick.map(Timestamp.init(microseconds:)),
            job: try job.map { job in
                guard let payload = Data(base64Encoded: job.payload) else { throw LineError("the payload of schedule '\(name)''s job is not base64") }
                return NewJob(
                    name: jobName, queue: queue, payload: Array(payload), priority: job.priority, maxAttempts: job.maxAttempts,
                    tenant: job.tenant, uniqueKey: job.uniqueKey, timeout: job.timeoutMicroseconds.map { .microseconds($0) },
                    headers: job.headers ?? [:])
            })
        try record.validate()
        return record
    }
}
