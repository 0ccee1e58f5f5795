import JobCore
import Metrics
import Locking
import Synchronization

/// The scheduler's swift-metrics instruments, made once per name and queue. With no metrics
/// backend bootstrapped they cost next to nothing.
final class SchedulerMetrics: Sendable {
    private let counters = Lock<[String: Counter]>([:])
    private let timers = Lock<[String: Metrics.Timer]>([:])
    private let gauges = Lock<[String: Gauge]>([:])

    /// `jobstore_scheduler_jobs_<event>_total{queue}`: claimed, succeeded, failed (for good),
    /// retried, snoozed, released, rescued, cancelled, lease_lost, pruned (queue "all").
    func count(_ event: String, queue: String, by amount: Int = 1) {
        let key = event + "\u{0}" + queue
        let counter = counters.withLock { counters in
            if let counter = counters[key] { return counter }
            let counter = Counter(label: "jobstore_scheduler_jobs_\(event)_total", dimensions: [("queue", queue)])
            counters[key] = counter
            return counter
        }
        counter.increment(by: amount)
    }

    /// `jobstore_scheduler_<name>{queue}` in nanoseconds: job_duration (a handler's run),
    /// job_wait (from when a job could run to when it started), commit_duration (a finish-and-claim
    /// transaction, queue "all").
    func record(_ name: String, queue: String, nanoseconds: Int64) {
        let key = name + "\u{0}" + queue
        let timer = timers.withLock { timers in
            if let timer = timers[key] { return timer }
            let timer = Metrics.Timer(label: "jobstore_scheduler_\(name)", dimensions: [("queue", queue)])
            timers[key] = timer
            return timer
        }
        timer.recordNanoseconds(max(0, nanoseconds))
    }

    /// `jobstore_queue_depth{queue,state}`: jobs of a queue in a state.
    func depth(queue: String, state: JobState, _ value: Int) {
        let key = queue + "\u{0}" + state.description
        let gauge = gauges.withLock { gauges in
            if let gauge = gauges[key] { return gauge }
            let gauge = Gauge(label: "jobstore_queue_depth", dimensions: [("queue", queue), ("state", state.description)])
            gauges[key] = gauge
            return gauge
        }
        gauge.record(value)
    }
}
