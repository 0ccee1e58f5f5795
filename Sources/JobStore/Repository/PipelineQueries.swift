internal import LMDB

extension JobRepository {
    /// The pipeline with `id`, or `nil`.
    public func pipeline(_ id: PipelineID) throws -> Pipeline? {
        try reading { txn in try pipeline(id, in: txn) }
    }

    func pipeline(_ id: PipelineID, in txn: Transaction) throws -> Pipeline? {
        guard let tables = db.pipeline else { return nil }
        return try txn.withValue(tables.records, Keys.id(id.bits)) { bytes in try bytes.map { try PipelineFormat.decode($0, id: id) } }
    }

    /// A pipeline with its steps and their jobs, from one snapshot; `nil` if there is none.
    ///
    /// - Throws: `.corruptRecord` if a step record or a step's job is missing (`verify()` says more).
    public func pipelineDetails(_ id: PipelineID) throws -> PipelineDetails? {
        try reading { txn in
            guard let tables = db.pipeline, let pipeline = try pipeline(id, in: txn) else { return nil }
            var steps: [PipelineStepRecord] = []
            var jobs: [Job] = []
            steps.reserveCapacity(pipeline.stepCount)
            jobs.reserveCapacity(pipeline.stepCount)
            try txn.forEach(tables.steps, prefix: Keys.id(id.bits)) { key, value in
                let index = try Keys.stepIndex(key)
                guard index == steps.count else {
                    throw JobStoreError(.corruptRecord, "pipeline \(id) has no step \(steps.count)", hint: "Run `jobstore verify`")
                }
                let step = try PipelineFormat.decodeStep(value, pipeline: id, index: index)
                guard let job = try job(step.jobID, in: txn) else {
                    throw JobStoreError(
                        .corruptRecord, "step \(index) of pipeline \(id) runs job \(step.jobID), which does not exist", hint: "Run `jobstore verify`")
                }
                steps.append(step)
                jobs.append(job)
                return true
            }
            guard steps.count == pipeline.stepCount else {
                throw JobStoreError(
                    .corruptRecord, "pipeline \(id) has \(steps.count) step records of \(pipeline.stepCount)", hint: "Run `jobstore verify`")
            }
            return PipelineDetails(pipeline: pipeline, steps: steps, jobs: jobs)
        }
    }

    /// The pipelines in `state` (or in every state) ordered by creation time, a page at a time
    /// (`next` is set only when another pipeline follows the page):
    /// from `idx.pipeline_state_created` (or, without a state, the `pipelines` database, whose
    /// time-ordered ids are creation order). O(log n + limit).
    public func pipelines(
        in state: PipelineState? = nil, order: ListOrder = .oldestFirst, limit: Int = 100, after: PipelineCursor? = nil
    ) throws -> PipelinePage {
        guard let tables = db.pipeline, limit > 0 else { return PipelinePage(pipelines: [], next: nil) }
        return try reading { txn in
            var pipelines: [Pipeline] = []
            let reverse = order == .newestFirst
            if let state {
                var range = KeyRange<[UInt8]>.between([state.rawValue], [state.rawValue + 1])
                if let after {
                    let position = Keys.pipelineStateCreated(state, after.createdAt, after.id)
                    if reverse { range.upper = .exclusive(position) } else { range.lower = .exclusive(position) }
                }
                try txn.forEach(tables.stateCreated, in: range, reverse: reverse) { key, _ in
                    let id = PipelineID(try Keys.trailingID(key, index: tables.stateCreated.name))
                    guard let pipeline = try pipeline(id, in: txn) else {
                        throw JobStoreError(.corruptRecord, "\(tables.stateCreated.name) lists pipeline \(id), which has no record", hint: "Run `jobstore verify`")
                    }
                    pipelines.append(pipeline)
                    return pipelines.count <= limit  // one more than the page: is there a next page?
                }
            } else {
                var range = KeyRange<[UInt8]>.all
                if let after {
                    if reverse { range.upper = .exclusive(Keys.id(after.id.bits)) } else { range.lower = .exclusive(Keys.id(after.id.bits)) }
                }
                try txn.forEach(tables.records, in: range, reverse: reverse) { key, value in
                    pipelines.append(try PipelineFormat.decode(value, id: try Keys.pipelineID(key)))
                    return pipelines.count <= limit
                }
            }
            let more = pipelines.count > limit
            if more { pipelines.removeLast() }
            let next = more ? pipelines.last.map { PipelineCursor(createdAt: $0.createdAt, id: $0.id) } : nil
            return PipelinePage(pipelines: pipelines, next: next)
        }
    }

    /// How many pipelines in the finished `state` were created before `cutoff` (what
    /// `prunePipelines(state:createdBefore:)` would delete).
    public func countPipelines(_ state: PipelineState, createdBefore cutoff: Timestamp) throws -> Int {
        try countPipelines(in: \.stateCreated, state, before: cutoff)
    }

    /// How many pipelines in the finished `state` finished before `cutoff` (what
    /// `prunePipelines(state:finishedBefore:)` would delete).
    public func countPipelines(_ state: PipelineState, finishedBefore cutoff: Timestamp) throws -> Int {
        try countPipelines(in: \.finished, state, before: cutoff)
    }

    private func countPipelines(
        in index: KeyPath<PipelineDatabases, Database<BytesCodec, EmptyCodec>>, _ state: PipelineState, before cutoff: Timestamp
    ) throws -> Int {
        guard let tables = db.pipeline else { return 0 }
        return try reading { txn in
            var count = 0
            try txn.forEach(tables[keyPath: index], in: Keys.pipelineStateCreated(state, before: cutoff)) { _, _ in
                count += 1
                return true
            }
            return count
        }
    }

    /// How many pipelines are in each state (every state present, zeros included): counters, O(1).
    public func pipelineCounts() throws -> [PipelineState: Int] {
        try reading { txn in
            var counts = [PipelineState: Int](minimumCapacity: PipelineState.allCases.count)
            for state in PipelineState.allCases {
                counts[state] = Int(try Counters.read(txn, db.meta, MetaKey.pipelineCounter(state)))
            }
            return counts
        }
    }
}

extension JobRepository {
    /// The step a job runs, by its reference (`Job/pipeline`), with its pipeline; `nil` if either is gone.
    public func pipelineStep(_ reference: PipelineReference) throws -> (pipeline: Pipeline, step: PipelineStepRecord)? {
        try reading { txn in
            guard let tables = db.pipeline, let pipeline = try pipeline(reference.pipeline, in: txn) else { return nil }
            let index = Int(reference.step)
            let step = try txn.withValue(tables.steps, Keys.step(reference.pipeline, index)) { bytes in
                try bytes.map { try PipelineFormat.decodeStep($0, pipeline: reference.pipeline, index: index) }
            }
            return step.map { (pipeline, $0) }
        }
    }
}
