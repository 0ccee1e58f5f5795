// The operators' changes (the admin tool's, the dashboard's) as the core's protocol gives them:
// one transaction each, by the operator's actor, rehearsed and rolled back for a dry run. The
// bodies are @Sendable so that `try await write(body)` is the writer thread's async write, not
// the synchronous one blocking a task's thread.

extension JobRepository: AdministrableStore {
    /// See `JobCore/AdministrableStore/apply(_:to:actor:dryRun:)`.
    public func apply(_ change: OperatorChange, to id: JobID, actor: String, dryRun: Bool) async throws -> OperatorOutcome {
        @Sendable func body(_ txn: JobTransaction) throws -> OperatorOutcome {
            txn.actor = actor
            return try txn.apply(change, to: id)
        }
        return dryRun ? try rehearse(body) : try await write(body)
    }

    /// See `JobCore/AdministrableStore/apply(_:to:actor:dryRun:)-(QueueChange,_,_,_)`.
    public func apply(_ change: QueueChange, to queue: String, actor: String, dryRun: Bool) async throws -> Bool {
        @Sendable func body(_ txn: JobTransaction) throws -> Bool {
            txn.actor = actor
            return try txn.apply(change, to: queue)
        }
        return dryRun ? try rehearse(body) : try await write(body)
    }

    /// See `JobCore/AdministrableStore/apply(_:toJobs:actor:dryRun:)`.
    public func apply(_ change: OperatorChange, toJobs ids: [JobID], actor: String, dryRun: Bool) async throws -> [Result<OperatorOutcome, JobStoreError>] {
        @Sendable func body(_ txn: JobTransaction) throws -> [Result<OperatorOutcome, JobStoreError>] {
            txn.actor = actor
            return try ids.map { id in
                do {
                    return .success(try txn.apply(change, toJob: id))
                } catch let error as JobStoreError where error.isRefusal {
                    return .failure(error)  // refused before anything of it was written
                }
            }
        }
        return dryRun ? try rehearse(body) : try await write(body)
    }

    /// See `JobCore/AdministrableStore/runNow(schedule:actor:dryRun:)`.
    public func runNow(schedule name: String, actor: String, dryRun: Bool) async throws -> Job {
        @Sendable func body(_ txn: JobTransaction) throws -> Job {
            txn.actor = actor
            return try txn.runNow(schedule: name)
        }
        return dryRun ? try rehearse(body) : try await write(body)
    }

    /// See `JobCore/AdministrableStore/restore(_:actor:dryRun:)`.
    public func restore(_ items: [RestoreItem], actor: String, dryRun: Bool) async throws {
        @Sendable func body(_ txn: JobTransaction) throws {
            txn.actor = actor
            for item in items { try txn.restore(item) }
        }
        dryRun ? try rehearse(body) : try await write(body)
    }

    /// See `JobCore/AdministrableStore/requeueExpiredLeases(batchSize:actor:dryRun:)`.
    public func requeueExpiredLeases(batchSize: Int, actor: String, dryRun: Bool) async throws -> [Job] {
        try JobStoreError.requirePositive(batchSize, "the batch size")
        @Sendable func batch(_ txn: JobTransaction) throws -> [Job] {
            txn.actor = actor
            return try txn.rescueExpiredLeases(limit: batchSize)
        }
        var all: [Job] = []
        if dryRun {
            // Each pass finds the next batch, as the real run's next transaction would.
            return try rehearse { txn in
                while true {
                    let rescued = try batch(txn)
                    all += rescued
                    if rescued.count < batchSize { return all }
                }
            }
        }
        while true {
            let rescued = try await write(batch)
            all += rescued
            if rescued.count < batchSize { return all }
        }
    }

    /// See `JobCore/AdministrableStore/prune(_:_:batchSize:dryRun:)`.
    public func prune(_ state: JobState, _ selection: PruneSelection, batchSize: Int, dryRun: Bool) async throws -> (jobs: Int, pipelines: Int) {
        try JobStoreError.requirePositive(batchSize, "the batch size")
        let pipelineState = PipelineState(name: state.description).flatMap { $0.isTerminal ? $0 : nil }
        let pipelineBatch = max(1, batchSize / 10)
        switch (selection, dryRun) {
        case (.createdBefore(let cutoff), true):
            return (try count(state, createdBefore: cutoff), try pipelineState.map { try countPipelines($0, createdBefore: cutoff) } ?? 0)
        case (.finishedBefore(let cutoff), true):
            return (try count(state, finishedBefore: cutoff), try pipelineState.map { try countPipelines($0, finishedBefore: cutoff) } ?? 0)
        case (.createdBefore(let cutoff), false):
            let jobs = try await prune(state: state, createdBefore: cutoff, batchSize: batchSize)
            guard let pipelineState else { return (jobs, 0) }
            return (jobs, try await prunePipelines(state: pipelineState, createdBefore: cutoff, batchSize: pipelineBatch))
        case (.finishedBefore(let cutoff), false):
            let jobs = try await prune(state: state, finishedBefore: cutoff, batchSize: batchSize)
            guard let pipelineState else { return (jobs, 0) }
            return (jobs, try await prunePipelines(state: pipelineState, finishedBefore: cutoff, batchSize: pipelineBatch))
        }
    }
}

extension JobTransaction {
    /// Puts an export's item back (see `JobCore/AdministrableStore/restore(_:actor:dryRun:)`).
    public func restore(_ item: RestoreItem) throws {
        switch item {
        case .job(let job, let timeline): _ = try restore(job, timeline: timeline)
        case .pipeline(let export): _ = try restorePipeline(export)
        case .queue(let queue):
            if let pausedAt = queue.pausedAt { try pause(queue: queue.name, since: pausedAt) }
            if let starts = queue.rateStarts, let period = queue.ratePeriod { try setRateLimit(queue: queue.name, starts: starts, per: period) }
        case .schedule(let schedule): _ = try register(schedule)
        }
    }

    /// Applies an operator's `change` to `queue`; whether it changed anything.
    public func apply(_ change: QueueChange, to queue: String) throws -> Bool {
        switch change {
        case .pause:
            let paused = (try? isPaused(queue)) ?? false  // a bad name: pause says so
            try pause(queue: queue)
            return !paused
        case .resume:
            let paused = try isPaused(queue)
            try resume(queue: queue)
            return paused
        case .limit(let starts, let period):
            try setRateLimit(queue: queue, starts: starts, per: period)
            return true
        case .unlimit:
            let limited = try rateLimit(queue) != nil
            try removeRateLimit(queue: queue)
            return limited
        }
    }

    /// Applies an operator's `change` to the job with `id`, or to the pipeline with it when no
    /// job has it (see `JobCore/AdministrableStore/apply(_:to:actor:dryRun:)`).
    public func apply(_ change: OperatorChange, to id: JobID) throws -> OperatorOutcome {
        let pipelineID = PipelineID(high: id.high, low: id.low)
        if change != .requeue, try job(id) == nil {
            guard try pipeline(pipelineID) != nil else { throw JobStoreError.notFound(jobOrPipeline: id) }
            switch change {
            case .cancel: return OperatorOutcome(isPipeline: true, state: try cancelPipeline(pipelineID).state.description)
            case .retry: return OperatorOutcome(isPipeline: true, state: try retryPipeline(pipelineID).state.description)
            case .delete, .requeue:
                _ = try deletePipeline(pipelineID)
                return OperatorOutcome(isPipeline: true, state: "deleted")
            }
        }
        return try apply(change, toJob: id)
    }

    /// Applies an operator's `change` to the job with `id` (never a pipeline).
    ///
    /// - Throws: `.notFound` when no job has the id; what the change refuses.
    public func apply(_ change: OperatorChange, toJob id: JobID) throws -> OperatorOutcome {
        switch change {
        case .cancel: return OperatorOutcome(isPipeline: false, state: try cancel(id).state.description)
        case .retry: return OperatorOutcome(isPipeline: false, state: try retry(id).state.description)
        case .requeue: return OperatorOutcome(isPipeline: false, state: try requeue(id).state.description)
        case .delete:
            guard try delete(id) else { throw JobStoreError.notFound(id) }
            return OperatorOutcome(isPipeline: false, state: "deleted")
        }
    }
}
