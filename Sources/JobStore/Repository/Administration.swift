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
}

extension JobTransaction {
    /// Applies an operator's `change` to the job with `id`, or to the pipeline with it when no
    /// job has it (see ``JobCore/AdministrableStore/apply(_:to:actor:dryRun:)``).
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
