import JobScheduler
import JobStore
import Locking

/// The embedded store behind a backend whose next write of outcomes, or next lease extension,
/// can be held up — as a slow connection, a lock wait or a stalled process would hold it up.
/// Everything else goes straight to the store.
final class SlowBackend: SchedulerBackend {
    let store: JobRepository
    /// Consumed by the next `finish` that carries outcomes: it waits this long first.
    let nextOutcomesDelay = Lock<Duration?>(nil)
    /// Consumed by the next `extendLeases`: it waits this long first.
    let nextExtensionDelay = Lock<Duration?>(nil)
    /// Consumed by the next `extendLeases`: it waits (at most 10 s) until a `finish` carrying
    /// outcomes has returned, so it writes the leases it was handed after that transaction.
    let nextExtensionAfterOutcomes = Lock(false)
    /// `finish` calls carrying outcomes that returned.
    let outcomeWrites = Lock(0)

    init(_ store: JobRepository) { self.store = store }

    func finish(_ outcomes: [JobOutcome], claiming requests: [ClaimRequest], lease: Duration, owner: OwnerToken) async throws -> FinishResponse {
        if !outcomes.isEmpty, let delay = nextOutcomesDelay.withLock({ $0.take() }) { try await Task.sleep(for: delay) }
        let response = try await store.finish(outcomes, claiming: requests, lease: lease, owner: owner)
        if !outcomes.isEmpty { outcomeWrites.withLock { $0 += 1 } }
        return response
    }

    func extendLeases(_ leases: [HeldLease], until: Timestamp) async throws -> [JobID] {
        if let delay = nextExtensionDelay.withLock({ $0.take() }) { try await Task.sleep(for: delay) }
        if nextExtensionAfterOutcomes.withLock({ waits in defer { waits = false }; return waits }) {
            let before = outcomeWrites.withLock { $0 }
            let until = ContinuousClock.now + .seconds(10)
            while outcomeWrites.withLock({ $0 }) == before, ContinuousClock.now < until { try await Task.sleep(for: .milliseconds(5)) }
        }
        return try await store.extendLeases(leases, until: until)
    }

    func rescueExpiredLeases(limit: Int, sparing: Set<JobID>, expiredBefore: Timestamp?) async throws -> [Job] {
        try await store.rescueExpiredLeases(limit: limit, sparing: sparing, expiredBefore: expiredBefore)
    }
    func pipelineDetails(_ id: PipelineID) async throws -> PipelineDetails? { try await store.pipelineDetails(id) }
    func pruneFinished(_ state: JobState, before cutoff: Timestamp) async throws -> (jobs: Int, pipelines: Int) {
        try await store.pruneFinished(state, before: cutoff)
    }
    func pruneHistory(before cutoff: Timestamp) async throws -> Int { try await store.pruneHistory(before: cutoff) }
    func register(_ schedule: ScheduleRecord) async throws -> ScheduleRecord { try await store.register(schedule) }
    func enqueue(tick: Timestamp, of name: String, next: Timestamp?, job: NewJob) async throws -> Job? {
        try await store.enqueue(tick: tick, of: name, next: next, job: job)
    }
    func enqueue(_ jobs: [NewJob]) async throws -> [Job] { try await store.enqueue(jobs) }
    func storeProgress(_ reports: [ProgressReport]) async throws { try await store.storeProgress(reports) }
    func recordWorker(_ worker: WorkerRecord) async throws { try await store.recordWorker(worker) }
    func removeWorker(_ id: OwnerToken) async throws { try await store.removeWorker(id) }
    func cancel(_ id: JobID) async throws -> Job { try await store.cancel(id) }
    func queueDepths() async throws -> [String: [JobState: Int]] { try await store.queueDepths() }
    func workSignals() -> AsyncStream<WorkSignal> { store.workSignals() }
}
