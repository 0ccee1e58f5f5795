internal import JobStoreText
internal import LMDB

/// The store's side of the scheduler: each requirement is documented on ``SchedulerBackend``.
extension JobRepository: SchedulerBackend {
    /// See `SchedulerBackend/finish(_:claiming:lease:owner:)`: one write transaction.
    public func finish(_ outcomes: [JobOutcome], claiming requests: [ClaimRequest], lease: Duration, owner: OwnerToken) async throws -> FinishResponse {
        try await write { txn in
            let finished = try outcomes.map { outcome -> Job? in
                do {
                    return try txn.finish(outcome)
                } catch let error as JobStoreError where error.code == .leaseLost || error.code == .notFound {
                    return nil  // checked before anything of this outcome was written: the others still commit
                }
            }
            let claims = try requests.filter { $0.limit > 0 }.map { request in
                (request, try txn.claimBatch(queue: request.queue, limit: request.limit, lease: lease, owner: owner))
            }
            return FinishResponse(finished: finished, claims: claims)
        }
    }

    /// See `SchedulerBackend/extendLeases(_:until:)`: one write transaction.
    public func extendLeases(_ leases: [HeldLease], until: Timestamp) async throws -> [JobID] {
        try await write { txn in
            var lost: [JobID] = []
            for lease in leases {
                do {
                    try txn.extendLease(lease.id, owner: lease.owner, until: until)
                } catch let error as JobStoreError where error.code == .leaseLost || error.code == .notFound {
                    lost.append(lease.id)
                }
            }
            return lost
        }
    }

    /// See `SchedulerBackend/pruneFinished(_:before:)`: jobs, then pipelines, in batches of
    /// 1,000 jobs (100 pipelines).
    public func pruneFinished(_ state: JobState, before cutoff: Timestamp) async throws -> (jobs: Int, pipelines: Int) {
        try await prune(state, .finishedBefore(cutoff), batchSize: 1000, dryRun: false)
    }

    /// See `SchedulerBackend/pruneHistory(before:)`.
    public func pruneHistory(before cutoff: Timestamp) async throws -> Int {
        try await pruneHistory(before: cutoff, batchSize: 10_000)
    }

    /// See `SchedulerBackend/enqueue(_:)`.
    public func enqueue(_ jobs: [NewJob]) async throws -> [Job] { try await insert(jobs) }

    /// See `SchedulerBackend/register(_:)`.
    public func register(_ schedule: ScheduleRecord) async throws -> ScheduleRecord {
        try await write { try $0.register(schedule) }
    }

    /// See `SchedulerBackend/enqueue(tick:of:next:job:)`: one write transaction.
    public func enqueue(tick: Timestamp, of name: String, next: Timestamp?, job: NewJob) async throws -> Job? {
        try await write { try $0.enqueue(tick: tick, of: name, next: next, job: job) }
    }

    /// See `SchedulerBackend/queueDepths()`: the queue counters.
    public func queueDepths() async throws -> [String: [JobState: Int]] { try queueCounts() }

    /// See `SchedulerBackend/workSignals()`: this process's change feed (a job became pending,
    /// a running job was cancelled or deleted) and ``JobRepository/commitSignals()`` for other processes.
    public func workSignals() -> AsyncStream<WorkSignal> {
        let (stream, continuation) = AsyncStream<WorkSignal>.makeStream(bufferingPolicy: .bufferingNewest(10_000))
        let feed = changes()
        let commits = commitSignals()
        let fromFeed = Task {
            for await event in feed {
                switch event {
                case .overflow:
                    continuation.yield(.workAvailable)
                case .change(let change):
                    if change.job?.state == .pending {
                        continuation.yield(.workAvailable)
                    } else if change.previousState == .running && change.job?.state != .running
                        && (change.kind == .deleted || change.job?.state == .cancelled)
                    {
                        continuation.yield(.cancelled(change.id))
                    }
                case .progress:
                    break
                }
            }
            continuation.finish()  // the store closed
        }
        let fromOtherProcesses = Task {
            for await _ in commits { continuation.yield(.workAvailable) }
        }
        continuation.onTermination = { _ in
            fromFeed.cancel()
            fromOtherProcesses.cancel()
        }
        return stream
    }
}

extension JobRepository: JobStoreBackend {}

extension JobRepository: InspectableStore {
    /// The store's directory.
    public var locationDescription: String { path }

    /// See `JobCore/InspectableStore/storageFacts()`: the environment's figures.
    public func storageFacts() async throws -> [StorageFact] {
        let info = try environmentInfo()
        return [
            StorageFact("directory", path),
            StorageFact(
                "used", "\(Readable.bytes(info.usedBytes)) of a \(Readable.bytes(info.mapSize)) map",
                metric: StorageMetric("jobstore_store_map_bytes", "The store's map size.", value: info.mapSize)),
            StorageFact(
                "readers", "\(info.readersInUse) of \(info.maxReaders)",
                metric: StorageMetric("jobstore_store_readers", "Reader slots in use.", value: info.readersInUse)),
            StorageFact(
                "last transaction", "\(info.lastTransactionID)",
                metric: StorageMetric("jobstore_store_last_transaction", "LMDB's last committed transaction id.", isCounter: true, value: info.lastTransactionID),
                isChangeMark: true),
            StorageFact("format", "\(try formatVersion())"),
        ]
    }

    /// See `JobCore/InspectableStore/changeMark()`: LMDB's last transaction id.
    public func changeMark() async throws -> String { "\(try environmentInfo().lastTransactionID)" }

    /// See `JobCore/InspectableStore/changePollInterval`: a read of shared memory, 250 ms.
    public var changePollInterval: Duration { .milliseconds(250) }
}
