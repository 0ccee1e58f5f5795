internal import LMDB

// One-line faces over `JobTransaction`: each operation in its own transaction, synchronous
// (calling thread) or async (writer thread, group commit).

extension JobRepository {
    /// Inserts a job (see ``JobTransaction/insert(_:)-(NewJob)``).
    @discardableResult public func insert(_ job: NewJob) throws -> Job { try write { try $0.insert(job) } }
    /// Inserts a job (see ``JobTransaction/insert(_:)-(NewJob)``).
    @discardableResult public func insert(_ job: NewJob) async throws -> Job { try await write { try $0.insert(job) } }
    /// Inserts jobs in one transaction.
    @discardableResult public func insert(_ jobs: [NewJob]) throws -> [Job] { try write { try $0.insert(jobs) } }
    /// Inserts jobs in one transaction.
    @discardableResult public func insert(_ jobs: [NewJob]) async throws -> [Job] { try await write { try $0.insert(jobs) } }

    /// Changes a job through `body` (see ``JobTransaction/update(_:_:)``).
    @discardableResult public func update(_ id: JobID, _ body: (inout Job) throws -> Void) throws -> Job {
        try write { try $0.update(id, body) }
    }
    /// Changes a job through `body` (see ``JobTransaction/update(_:_:)``).
    @discardableResult public func update(_ id: JobID, _ body: @escaping @Sendable (inout Job) throws -> Void) async throws -> Job {
        try await write { try $0.update(id, body) }
    }

    /// Moves a job to `state` (see ``JobTransaction/transition(_:to:lease:)``).
    @discardableResult public func transition(_ id: JobID, to state: JobState) throws -> Job {
        try write { try $0.transition(id, to: state) }
    }
    /// Moves a job to `state` (see ``JobTransaction/transition(_:to:lease:)``).
    @discardableResult public func transition(_ id: JobID, to state: JobState) async throws -> Job {
        try await write { try $0.transition(id, to: state) }
    }

    /// Deletes a job; false if there was none.
    @discardableResult public func delete(_ id: JobID) throws -> Bool { try write { try $0.delete(id) } }
    /// Deletes a job; false if there was none.
    @discardableResult public func delete(_ id: JobID) async throws -> Bool { try await write { try $0.delete(id) } }
    /// ``JobTransaction/deleteDamaged(_:)`` in its own transaction.
    @discardableResult public func deleteDamaged(_ id: JobID) throws -> Int { try write { try $0.deleteDamaged(id) } }

    /// Claims up to `limit` ready jobs (see ``JobTransaction/claim(queue:limit:lease:owner:)``).
    public func claim(queue: String? = nil, limit: Int = 1, lease: Duration, owner: OwnerToken) throws -> [Job] {
        try write { try $0.claim(queue: queue, limit: limit, lease: lease, owner: owner) }
    }
    /// Claims up to `limit` ready jobs (see ``JobTransaction/claim(queue:limit:lease:owner:)``).
    public func claim(queue: String? = nil, limit: Int = 1, lease: Duration, owner: OwnerToken) async throws -> [Job] {
        try await write { try $0.claim(queue: queue, limit: limit, lease: lease, owner: owner) }
    }

    /// Marks a running job succeeded if `owner` holds its lease.
    @discardableResult public func complete(_ id: JobID, owner: OwnerToken, result: [UInt8]? = nil) throws -> Job {
        try write { try $0.complete(id, owner: owner, result: result) }
    }
    /// Marks a running job succeeded if `owner` holds its lease.
    @discardableResult public func complete(_ id: JobID, owner: OwnerToken, result: [UInt8]? = nil) async throws -> Job {
        try await write { try $0.complete(id, owner: owner, result: result) }
    }

    /// Records a failed attempt (see ``JobTransaction/fail(_:owner:error:retryAt:)``).
    @discardableResult public func fail(_ id: JobID, owner: OwnerToken, error: String, retryAt: Timestamp?) throws -> Job {
        try write { try $0.fail(id, owner: owner, error: error, retryAt: retryAt) }
    }
    /// Records a failed attempt (see ``JobTransaction/fail(_:owner:error:retryAt:)``).
    @discardableResult public func fail(_ id: JobID, owner: OwnerToken, error: String, retryAt: Timestamp?) async throws -> Job {
        try await write { try $0.fail(id, owner: owner, error: error, retryAt: retryAt) }
    }

    /// Cancels a waiting, pending or running job.
    @discardableResult public func cancel(_ id: JobID) throws -> Job { try write { try $0.cancel(id) } }
    /// Cancels a waiting, pending or running job.
    @discardableResult public func cancel(_ id: JobID) async throws -> Job { try await write { try $0.cancel(id) } }

    /// Puts a failed or cancelled job back to pending.
    @discardableResult public func retry(_ id: JobID) throws -> Job { try write { try $0.retry(id) } }
    /// Puts a failed or cancelled job back to pending.
    @discardableResult public func retry(_ id: JobID) async throws -> Job { try await write { try $0.retry(id) } }

    /// Puts a job back in line, runnable now (see ``JobTransaction/requeue(_:)``).
    @discardableResult public func requeue(_ id: JobID) throws -> Job { try write { try $0.requeue(id) } }
    /// Puts a job back in line, runnable now (see ``JobTransaction/requeue(_:)``).
    @discardableResult public func requeue(_ id: JobID) async throws -> Job { try await write { try $0.requeue(id) } }

    /// Rescues running jobs whose lease expired (see ``JobTransaction/rescueExpiredLeases(limit:sparing:expiredBefore:)``).
    public func rescueExpiredLeases(limit: Int = 1000, sparing: Set<JobID> = []) throws -> [Job] {
        try write { try $0.rescueExpiredLeases(limit: limit, sparing: sparing) }
    }
    /// Rescues running jobs whose lease expired (see ``JobTransaction/rescueExpiredLeases(limit:sparing:expiredBefore:)``).
    public func rescueExpiredLeases(limit: Int = 1000, sparing: Set<JobID> = [], expiredBefore: Timestamp? = nil) async throws -> [Job] {
        try await write { try $0.rescueExpiredLeases(limit: limit, sparing: sparing, expiredBefore: expiredBefore) }
    }

    /// Deletes every job in the terminal `state` created before `cutoff`, in transactions of at
    /// most `batchSize` deletions (so no write holds the lock long). Returns how many were
    /// deleted. Pipeline steps' jobs are left to their pipeline (`prunePipelines(state:createdBefore:batchSize:)`).
    public func prune(state: JobState, createdBefore cutoff: Timestamp, batchSize: Int = 1000) throws -> Int {
        try prune(state: state, by: .created, before: cutoff, batchSize: batchSize)
    }
    /// Deletes every job in the terminal `state` created before `cutoff`, in bounded batches.
    public func prune(state: JobState, createdBefore cutoff: Timestamp, batchSize: Int = 1000) async throws -> Int {
        try await prune(state: state, by: .created, before: cutoff, batchSize: batchSize)
    }

    /// Deletes every job in the terminal `state` that finished (last changed) before `cutoff`, in
    /// bounded batches, from `idx.finished` — retention by age since finishing. Returns how many
    /// were deleted. Pipeline steps' jobs are left to their pipeline (`prunePipelines(state:finishedBefore:batchSize:)`).
    public func prune(state: JobState, finishedBefore cutoff: Timestamp, batchSize: Int = 1000) throws -> Int {
        try prune(state: state, by: .finished, before: cutoff, batchSize: batchSize)
    }
    /// Deletes every job in the terminal `state` that finished before `cutoff`, in bounded batches.
    public func prune(state: JobState, finishedBefore cutoff: Timestamp, batchSize: Int = 1000) async throws -> Int {
        try await prune(state: state, by: .finished, before: cutoff, batchSize: batchSize)
    }

    private func prune(state: JobState, by time: JobTransaction.PruneTime, before cutoff: Timestamp, batchSize: Int) throws -> Int {
        try inBatches(batchSize) { txn, after in try txn.prune(state: state, by: time, before: cutoff, limit: batchSize, after: after) }
    }

    private func prune(state: JobState, by time: JobTransaction.PruneTime, before cutoff: Timestamp, batchSize: Int) async throws -> Int {
        try await inBatches(batchSize) { txn, after in try txn.prune(state: state, by: time, before: cutoff, limit: batchSize, after: after) }
    }

    /// Runs `batch` in one transaction after another until one deletes fewer than `batchSize`,
    /// each resuming after the last index key the one before looked at (`nil`: from the start);
    /// the total deleted. A batch that deletes what it found may return no key: the next one
    /// starts over, where nothing it deleted is left.
    func inBatches(_ batchSize: Int, _ batch: (JobTransaction, [UInt8]?) throws -> (deleted: Int, last: [UInt8]?)) throws -> Int {
        var total = 0
        var after: [UInt8]?
        while true {
            let start = after
            let done = try write { try batch($0, start) }
            total += done.deleted
            if done.deleted < batchSize { return total }
            after = done.last
        }
    }

    /// ``inBatches(_:_:)-(_,(JobTransaction,[UInt8]?)->_)`` on the writer thread.
    func inBatches(
        _ batchSize: Int, _ batch: @escaping @Sendable (JobTransaction, [UInt8]?) throws -> (deleted: Int, last: [UInt8]?)
    ) async throws -> Int {
        var total = 0
        var after: [UInt8]?
        while true {
            let start = after
            let done = try await write { try batch($0, start) }
            total += done.deleted
            if done.deleted < batchSize { return total }
            after = done.last
        }
    }
}

// Pipelines: each operation in its own transaction.

extension JobRepository {
    /// Validates and enqueues a pipeline (see ``JobTransaction/enqueue(_:)-(PipelineDefinition)``).
    @discardableResult public func enqueue(_ definition: PipelineDefinition) throws -> Pipeline {
        let plan = try PipelinePlan(validating: definition)  // before the write lock is taken
        return try write { try $0.enqueue(plan) }
    }
    /// Validates and enqueues a pipeline (see ``JobTransaction/enqueue(_:)-(PipelineDefinition)``).
    @discardableResult public func enqueue(_ definition: PipelineDefinition) async throws -> Pipeline {
        let plan = try PipelinePlan(validating: definition)
        return try await write { try $0.enqueue(plan) }
    }

    /// Cancels a pipeline's unfinished steps (see ``JobTransaction/cancelPipeline(_:)``).
    @discardableResult public func cancelPipeline(_ id: PipelineID) throws -> Pipeline { try write { try $0.cancelPipeline(id) } }
    /// Cancels a pipeline's unfinished steps (see ``JobTransaction/cancelPipeline(_:)``).
    @discardableResult public func cancelPipeline(_ id: PipelineID) async throws -> Pipeline {
        try await write { try $0.cancelPipeline(id) }
    }

    /// Re-runs a pipeline's failed and cancelled steps (see ``JobTransaction/retryPipeline(_:)``).
    @discardableResult public func retryPipeline(_ id: PipelineID) throws -> Pipeline { try write { try $0.retryPipeline(id) } }
    /// Re-runs a pipeline's failed and cancelled steps (see ``JobTransaction/retryPipeline(_:)``).
    @discardableResult public func retryPipeline(_ id: PipelineID) async throws -> Pipeline {
        try await write { try $0.retryPipeline(id) }
    }

    /// Deletes a pipeline with its steps' jobs; false if there was none.
    @discardableResult public func deletePipeline(_ id: PipelineID) throws -> Bool { try write { try $0.deletePipeline(id) } }
    /// Deletes a pipeline with its steps' jobs; false if there was none.
    @discardableResult public func deletePipeline(_ id: PipelineID) async throws -> Bool {
        try await write { try $0.deletePipeline(id) }
    }

    /// Deletes every pipeline in the finished `state` created before `cutoff`, with its steps'
    /// jobs, at most `batchSize` pipelines per transaction. Returns how many were deleted.
    public func prunePipelines(state: PipelineState, createdBefore cutoff: Timestamp, batchSize: Int = 100) throws -> Int {
        try inBatches(batchSize) { txn, _ in (try txn.prunePipelines(state: state, createdBefore: cutoff, limit: batchSize), nil) }
    }

    /// Deletes every pipeline in the finished `state` created before `cutoff`, in bounded
    /// batches on the writer thread.
    public func prunePipelines(state: PipelineState, createdBefore cutoff: Timestamp, batchSize: Int = 100) async throws -> Int {
        try await inBatches(batchSize) { txn, _ in (try txn.prunePipelines(state: state, createdBefore: cutoff, limit: batchSize), nil) }
    }

    /// Deletes every pipeline in the finished `state` that finished before `cutoff`, with its
    /// steps' jobs, at most `batchSize` pipelines per transaction. Returns how many were deleted.
    public func prunePipelines(state: PipelineState, finishedBefore cutoff: Timestamp, batchSize: Int = 100) throws -> Int {
        try inBatches(batchSize) { txn, _ in (try txn.prunePipelines(state: state, finishedBefore: cutoff, limit: batchSize), nil) }
    }

    /// Deletes every pipeline in the finished `state` that finished before `cutoff`, in bounded
    /// batches on the writer thread.
    public func prunePipelines(state: PipelineState, finishedBefore cutoff: Timestamp, batchSize: Int = 100) async throws -> Int {
        try await inBatches(batchSize) { txn, _ in (try txn.prunePipelines(state: state, finishedBefore: cutoff, limit: batchSize), nil) }
    }
}
