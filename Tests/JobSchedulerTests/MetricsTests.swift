import JobScheduler
import JobStore
import Metrics
import MetricsTestKit
import Testing
import TestSupport

/// One metrics backend for the whole test process (swift-metrics bootstraps once).
let testMetrics: TestMetrics = {
    let metrics = TestMetrics()
    MetricsSystem.bootstrap(metrics)
    return metrics
}()

@Suite("Scheduler metrics")
struct SchedulerMetricsTests {
    @Test("counters per queue for claimed, succeeded, retried and failed jobs; run-duration and wait timers; queue depths")
    func countersAndTimers() async throws {
        let metrics = testMetrics
        try await withStore { store, _ in
            _ = try await store.insert((0..<20).map { n in
                NewJob(name: n < 15 ? "fine" : n < 18 ? "flaky" : "hopeless", queue: "metered", maxAttempts: 3)
            })
            let recorder = Recorder()
            var scheduler = Scheduler(backend: store, options: testOptions())
            scheduler.handle(queue: "metered") { context in
                recorder.record("ran", context.job)
                switch context.job.name {
                case "flaky" where context.attempt == 1: throw TestFailure("first try fails")
                case "hopeless": context.discard(reason: "cannot be done")
                default: break
                }
            }
            try await running(scheduler) {
                try await recorder.wait(for: 23, "ran")
                try await waitUntil(store, "every job finished") { try store.count(.succeeded) == 18 && store.count(.failed) == 2 }
            }
            func count(_ event: String) throws -> Int64 {
                try metrics.expectCounter("jobstore_scheduler_jobs_\(event)_total", [("queue", "metered")]).totalValue
            }
            // Every figure in the message, so that a miscount (seen once, under AddressSanitizer in
            // CI, 2026-12-07: claimed and job_wait not 23) says what it was.
            let runs = recorder.events("ran")
            let figures = try ["claimed", "succeeded", "retried", "failed", "rescued", "released", "lease_lost", "snoozed"].map { event in
                "\(event) \((try? count(event)).map(String.init) ?? "-")"
            }.joined(separator: ", ")
                + ", runs \(runs.count) (\(Dictionary(grouping: runs, by: \.job.name).mapValues(\.count).sorted { $0.key < $1.key }))"
                + ", waits \(try metrics.expectTimer("jobstore_scheduler_job_wait", [("queue", "metered")]).values.count)"
            #expect(try count("claimed") == 23, "\(figures)")
            #expect(try count("succeeded") == 18, "\(figures)")
            #expect(try count("retried") == 3, "\(figures)")
            #expect(try count("failed") == 2, "\(figures)")
            #expect(try metrics.expectTimer("jobstore_scheduler_job_duration", [("queue", "metered")]).values.count == 23, "\(figures)")
            #expect(try metrics.expectTimer("jobstore_scheduler_job_wait", [("queue", "metered")]).values.count == 23, "\(figures)")
            #expect(try !metrics.expectTimer("jobstore_scheduler_commit_duration", [("queue", "all")]).values.isEmpty)
            // The queue-depth gauges are written at start by the rescue pass (racing the first claims), one per state.
            let pending = try metrics.expectGauge("jobstore_queue_depth", [("queue", "metered"), ("state", "pending")]).values
            #expect(pending.first.map { (0...20).contains($0) } == true)
            for state in JobState.allCases {
                #expect(throws: Never.self) { try metrics.expectGauge("jobstore_queue_depth", [("queue", "metered"), ("state", "\(state)")]) }
            }
        }
    }
}
