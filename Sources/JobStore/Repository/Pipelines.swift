internal import LMDB


// MARK: - Enqueueing, advancing, cancelling and retrying pipelines, inside a write transaction

extension JobTransaction {
    /// Validates `definition` (`PipelinePlan`) and enqueues it: the pipeline record, one job
    /// per step and the step records, in this transaction. Steps without dependencies start
    /// `pending`, the others `waiting`. O(steps + edges).
    ///
    /// - Throws: `.invalidPipeline` for a definition that is not a valid DAG (nothing is
    ///   written); `.invalidField` for a step's job field out of its limits, or a unique key
    ///   that a live job holds.
    @discardableResult
    public func enqueue(_ definition: PipelineDefinition) throws -> Pipeline {
        try enqueue(try PipelinePlan(validating: definition))
    }

    /// Enqueues a validated plan (see ``enqueue(_:)-(PipelineDefinition)``).
    @discardableResult
    public func enqueue(_ plan: PipelinePlan) throws -> Pipeline {
        let definition = plan.definition
        let tables = try db.pipelines()
        let id = PipelineID(ids.next(milliseconds: UInt64(max(0, now.microseconds / 1000))))
        var jobIDs: [JobID] = []
        jobIDs.reserveCapacity(definition.steps.count)
        for (index, step) in definition.steps.enumerated() {
            if let key = step.job.uniqueKey, let holder = try uniqueHolder(key) {
                throw JobStoreError(
                    .invalidField, "step '\(step.name)' of pipeline '\(definition.name)' has unique key '\(key)', which live job \(holder.id) holds",
                    jobID: holder.id)
            }
            let state: JobState = plan.dependencies[index].isEmpty ? .pending : .waiting
            let job = try add(job(from: step.job, state: state, pipeline: PipelineReference(pipeline: id, step: UInt16(index))))
            jobIDs.append(job.id)
        }
        for (index, step) in definition.steps.enumerated() {
            let record = PipelineStepRecord(
                index: index, name: step.name, jobID: jobIDs[index], dependents: plan.dependents[index].sorted(),
                remainingDependencies: plan.dependencies[index].count)
            try txn.put(tables.steps, Keys.step(id, index), PipelineFormat.encode(record))
        }
        let pipeline = Pipeline(
            id: id, name: definition.name, version: definition.version, failFast: definition.failFast, state: .running,
            createdAt: now, updatedAt: now, finishedAt: nil, stepCount: definition.steps.count, succeededSteps: 0,
            failedSteps: 0, cancelledSteps: 0)
        try store(pipeline, replacing: nil)
        return pipeline
    }

    /// The pipeline with `id` as this transaction sees it, or `nil`.
    public func pipeline(_ id: PipelineID) throws -> Pipeline? {
        let tables = try db.pipelines()
        return try txn.withValue(tables.records, Keys.id(id.bits)) { bytes in
            try bytes.map { try PipelineFormat.decode($0, id: id) }
        }
    }

    func existingPipeline(_ id: PipelineID) throws -> Pipeline {
        guard let pipeline = try pipeline(id) else { throw JobStoreError.notFound(id) }
        return pipeline
    }

    /// The record of a step.
    func step(_ reference: PipelineReference) throws -> PipelineStepRecord {
        try step(reference.pipeline, Int(reference.step))
    }

    func step(_ pipeline: PipelineID, _ index: Int) throws -> PipelineStepRecord {
        let tables = try db.pipelines()
        let record = try txn.withValue(tables.steps, Keys.step(pipeline, index)) { bytes in
            try bytes.map { try PipelineFormat.decodeStep($0, pipeline: pipeline, index: index) }
        }
        guard let record else {
            throw JobStoreError(
                .corruptRecord, "pipeline \(pipeline) has no step \(index), which a job refers to", hint: "Run `jobstore verify`")
        }
        return record
    }

    func putStep(_ pipeline: PipelineID, _ record: PipelineStepRecord) throws {
        try txn.put(try db.pipelines().steps, Keys.step(pipeline, record.index), PipelineFormat.encode(record))
    }

    /// The job of each step of a pipeline, in step order.
    private func stepJobs(_ pipeline: Pipeline) throws -> [Job] {
        try (0..<pipeline.stepCount).map { index in
            let record = try step(pipeline.id, index)
            guard let job = try job(record.jobID) else {
                throw JobStoreError(
                    .corruptRecord, "step \(index) of pipeline \(pipeline.id) runs job \(record.jobID), which does not exist",
                    hint: "Run `jobstore verify`")
            }
            return job
        }
    }

    // MARK: Advancing

    /// Advances the pipelines of the steps in ``pipelineWork``, until none is left. Runs inside
    /// ``replace(_:with:recording:)``; the changes it makes (dependents released, cancelled or
    /// put back to waiting) go through `replace` too and only add to the worklist, which the
    /// outermost call drains.
    func advancePipelines() throws {
        do {
            while let (from, job) = pipelineWork.pop() { try stepMoved(job, from: from) }
        } catch {
            pipelineWork.abandon()
            throw error
        }
    }

    /// One step's job moved between unfinished, succeeded, failed and cancelled: reads what
    /// ``PipelineAdvance`` needs and applies its plan. Cost: its out-degree (its dependents'
    /// records), plus the pipeline's small record.
    private func stepMoved(_ job: Job, from old: JobState) throws {
        guard let reference = job.pipeline else { return }
        let record = try step(reference)
        let pipeline = try existingPipeline(reference.pipeline)
        let dependents = try record.dependents.map { index in
            let dependent = try step(reference.pipeline, index)
            return (step: dependent, job: PipelineAdvance.needsJob(of: dependent, moved: job) ? try self.job(dependent.jobID) : nil)
        }
        let plan = try PipelineAdvance(
            moved: job, from: old, step: record, pipeline: pipeline, dependents: dependents,
            everyStep: PipelineAdvance.needsEveryStep(moved: job, from: old, in: pipeline) ? try stepJobs(pipeline) : nil, at: now)
        for step in plan.steps { try putStep(reference.pipeline, step) }
        for (other, change) in plan.jobs { try update(other) { change.apply(to: &$0, at: now) } }
        // Cascades above changed other steps, whose work items come later and re-read the
        // record: this step's count is written before they run.
        try store(plan.pipeline, replacing: pipeline)
    }

    /// Writes a pipeline's record (`nil`: removes it) and moves its index entries
    /// (``PipelineDatabases/entries(of:)``) and counter with it, as `replace` does for a job.
    func store(_ new: Pipeline?, replacing old: Pipeline?) throws {
        let tables = try db.pipelines()
        let before = old.map(tables.entries) ?? []
        let after = new.map(tables.entries) ?? []
        for (index, key) in before where !after.contains(where: { $0.database.name == index.name && $0.key == key }) {
            try txn.delete(index, key)
        }
        for (index, key) in after where !before.contains(where: { $0.database.name == index.name && $0.key == key }) {
            try txn.put(index, key, ())
        }
        if old?.state != new?.state {
            if let old { countPipeline(old.state, -1) }
            if let new { countPipeline(new.state, +1) }
        }
        if let new {
            try txn.put(tables.records, Keys.id(new.id.bits), PipelineFormat.encode(new))
        } else if let old {
            try txn.delete(tables.records, Keys.id(old.id.bits))
        }
    }
}

// MARK: - Whole pipelines

extension JobTransaction {
    /// Cancels every unfinished step of a pipeline: waiting and pending ones, and running ones
    /// (their lease is dropped, so their worker's outcome is refused with `.leaseLost`; the
    /// scheduler cancels their tasks). The pipeline ends `cancelled` (or `failed`, if a step
    /// had failed).
    ///
    /// - Throws: `.notFound`; `.illegalTransition` for a pipeline that has finished.
    @discardableResult
    public func cancelPipeline(_ id: PipelineID) throws -> Pipeline {
        let pipeline = try existingPipeline(id)
        guard !pipeline.state.isTerminal else {
            throw JobStoreError(
                .illegalTransition, "pipeline \(id) has already finished (\(pipeline.state)); there is nothing to cancel",
                hint: "Retry it first to run it again")
        }
        for job in try stepJobs(pipeline) where !job.state.isTerminal {
            // A step cancelled by an earlier one's cascade is terminal by now: re-read.
            if let current = try self.job(job.id), !current.state.isTerminal {
                try update(current) { $0.cancelForPipeline(at: now, reason: "cancelled with its pipeline") }
            }
        }
        return try existingPipeline(id)
    }

    /// Re-runs a pipeline's failed and cancelled steps and what depends on them, keeping what
    /// succeeded: each such step whose dependencies all succeeded becomes pending (one more
    /// attempt allowed), the others waiting.
    ///
    /// - Throws: `.notFound`; `.illegalTransition` for a pipeline without a failed or cancelled step.
    @discardableResult
    public func retryPipeline(_ id: PipelineID) throws -> Pipeline {
        let pipeline = try existingPipeline(id)
        try pipeline.requireRetryable()
        for index in 0..<pipeline.stepCount {
            let record = try step(id, index)
            // Re-read: retrying an earlier step may already have put this one back to waiting.
            if let job = try self.job(record.jobID), job.state == .failed || job.state == .cancelled {
                try retry(job.id)
            }
        }
        return try existingPipeline(id)
    }

    /// Deletes a pipeline with its step records and its steps' jobs, in any state (the workers
    /// of running steps get `.notFound` when they report). Returns false if there was none.
    @discardableResult
    public func deletePipeline(_ id: PipelineID) throws -> Bool {
        try deletePipeline(id, recording: .deleted)
    }

    /// Deletes a pipeline; its steps' jobs' deletions are recorded as `event` (deleted or pruned).
    private func deletePipeline(_ id: PipelineID, recording event: JobEvent.Kind) throws -> Bool {
        guard let pipeline = try pipeline(id) else { return false }
        let tables = try db.pipelines()
        for index in 0..<pipeline.stepCount {
            let record = try step(id, index)
            if let job = try job(record.jobID) { try remove(job, recording: event) }
            try txn.delete(tables.steps, Keys.step(id, index))
        }
        try store(nil, replacing: pipeline)
        return true
    }

    /// Deletes up to `limit` pipelines in the finished `state` created before `cutoff`, oldest
    /// first, each with its steps' jobs. Returns how many were deleted.
    public func prunePipelines(state: PipelineState, createdBefore cutoff: Timestamp, limit: Int) throws -> Int {
        try prunePipelines(state: state, limit: limit) { tables in
            (tables.stateCreated, Keys.pipelineStateCreated(state, before: cutoff))
        }
    }

    /// Deletes up to `limit` pipelines in the finished `state` that finished before `cutoff`,
    /// earliest first, each with its steps' jobs. Returns how many were deleted.
    public func prunePipelines(state: PipelineState, finishedBefore cutoff: Timestamp, limit: Int) throws -> Int {
        try prunePipelines(state: state, limit: limit) { tables in
            (tables.finished, Keys.pipelineStateCreated(state, before: cutoff))  // the same key layout
        }
    }

    private func prunePipelines(
        state: PipelineState, limit: Int,
        range: (PipelineDatabases) -> (index: Database<BytesCodec, EmptyCodec>, range: KeyRange<[UInt8]>)
    ) throws -> Int {
        try JobStoreError.requirePositive(limit, "the prune limit (batchSize)")
        guard state.isTerminal else {
            throw JobStoreError(.illegalTransition, "only finished pipelines can be pruned, not running ones")
        }
        let (index, keys) = range(try db.pipelines())
        var doomed: [PipelineID] = []
        try txn.forEach(index, in: keys) { key, _ in
            doomed.append(PipelineID(try Keys.trailingID(key, index: index.name)))
            return doomed.count < limit
        }
        for id in doomed { _ = try deletePipeline(id, recording: .pruned) }
        return doomed.count
    }
}

// MARK: - Restoring (imports)

extension JobTransaction {
    /// Rebuilds a pipeline around its steps' jobs, which must already be in the store (an export
    /// lists the jobs first): the definition is validated as at enqueue (names, limits, no
    /// cycle); the counts, the rolled-up state and each step's remaining dependencies are
    /// recounted from the jobs' states, so nothing in the export can make them disagree.
    ///
    /// - Throws: `.invalidPipeline` for a structure that is not a valid DAG; `.invalidField` for a
    ///   pipeline id that exists, or a step whose job is missing or is not that step.
    @discardableResult
    public func restorePipeline(_ export: PipelineExport) throws -> Pipeline {
        let tables = try db.pipelines()
        guard try pipeline(export.id) == nil else {
            throw JobStoreError.pipelineExists(export.id)
        }
        let (pipeline, steps) = try export.rebuilt(around: try export.steps.map { try job($0.job) }, at: now)
        for step in steps {
            try txn.put(tables.steps, Keys.step(export.id, step.index), PipelineFormat.encode(step))
        }
        try store(pipeline, replacing: nil)
        return pipeline
    }
}
