// The operators' changes (the admin tool's, the dashboard's) as the core's protocol gives them:
// one transaction each, by the operator's actor, rehearsed and rolled back for a dry run.

extension JobRepository: AdministrableStore {
    /// See ``JobCore/AdministrableStore/apply(_:to:actor:dryRun:)``.
    public func apply(_ change: OperatorChange, to id: JobID, actor: String, dryRun: Bool) async throws -> OperatorOutcome {
        func body(_ txn: JobTransaction) throws -> OperatorOutcome {
            txn.actor = actor
            return try txn.apply(change, to: id)
        }
        return dryRun ? try rehearse(body) : try await write(body)
    }

    /// See ``JobCore/AdministrableStore/apply(_:to:actor:dryRun:)-(QueueChange,_,_,_)``.
    public func apply(_ change: QueueChange, to queue: String, actor: String, dryRun: Bool) async throws -> Bool {
        func body(_ txn: JobTransaction) throws -> Bool {
            txn.actor = actor
            return try txn.apply(change, to: queue)
        }
        return dryRun ? try rehearse(body) : try await write(body)
    }
}

extension JobTransaction {
    /// Applies an operator's `change` to the job with `id`, or to the pipeline with it when no
    /// job has it (see ``JobCore/AdministrableStore/apply(_:to:actor:dryRun:)``).
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

    public func apply(_ change: OperatorChange, to id: JobID) throws -> OperatorOutcome {
        let pipelineID = PipelineID(high: id.high, low: id.low)
        if change != .requeue, try job(id) == nil {
            guard try pipeline(pipelineID) != nil else { throw OperatorOutcome.notFound(id, pipelines: true) }
            switch change {
            case .cancel: return OperatorOutcome(isPipeline: true, state: try cancelPipeline(pipelineID).state.description)
            case .retry: return OperatorOutcome(isPipeline: true, state: try retryPipeline(pipelineID).state.description)
            case .delete, .requeue:
                _ = try deletePipeline(pipelineID)
                return OperatorOutcome(isPipeline: true, state: "deleted")
            }
        }
        switch change {
        case .cancel: return OperatorOutcome(isPipeline: false, state: try cancel(id).state.description)
        case .retry: return OperatorOutcome(isPipeline: false, state: try retry(id).state.description)
        case .requeue: return OperatorOutcome(isPipeline: false, state: try requeue(id).state.description)
        case .delete:
            _ = try delete(id)
            return OperatorOutcome(isPipeline: false, state: "deleted")
        }
    }
}
