internal import LMDB

extension JobRepository {
    /// The pipeline part of ``verify()``, in its snapshot: every pipeline record decodes and has
    /// its `idx.pipeline_state_created` entry, and every entry its record; each pipeline has
    /// step records 0 ..< stepCount, whose jobs exist and point back; the finished counts, the
    /// rolled-up state and finishedAt equal a recount of the steps' jobs; each step's
    /// remaining-dependency count equals a recount, and no step waits with none left or runs
    /// with some left. (That every job that says it is a step is one is checked with the
    /// records.) Adds the pipeline counters' recount to `counters`.
    func verifyPipelines(_ txn: Transaction, counters: inout [String: Int64]) throws -> [VerificationProblem] {
        var problems: [VerificationProblem] = []
        func problem(_ id: PipelineID?, _ message: String, job: JobID? = nil, kind: VerificationProblem.Kind = .badPipeline) {
            problems.append(VerificationProblem(kind: kind, jobID: job, pipelineID: id, message: message))
        }
        guard let tables = db.pipeline else { return problems }

        // Pipeline records, and their index entries.
        var pipelines: [PipelineID: Pipeline] = [:]
        try txn.forEach(tables.records) { key, value in
            guard let id = PipelineID(bytes: key) else {
                problem(nil, "a pipelines key of \(key.count) bytes is not an id", kind: .badRecord)
                return true
            }
            do {
                let pipeline = try PipelineFormat.decode(value, id: id)
                pipelines[id] = pipeline
                counters[MetaKey.pipelineCounter(pipeline.state), default: 0] += 1
                for (index, key) in tables.entries(of: pipeline) where try !txn.contains(index, key) {
                    problem(id, "pipeline \(id) (\(pipeline.state)) lacks its \(index.name) entry", kind: .missingIndexEntry)
                }
            } catch {
                problem(id, "\(error)", kind: .badRecord)
            }
            return true
        }
        for index in [tables.stateCreated, tables.finished] {
            try txn.forEach(index) { key, _ in
                let listed = try? PipelineID(Keys.trailingID(key, index: index.name))
                let calledFor = listed.flatMap { pipelines[$0] }.map { tables.entries(of: $0) } ?? []
                if !calledFor.contains(where: { $0.database.name == index.name && $0.key.elementsEqual(key) }) {
                    problem(listed, "\(index.name) has an entry for pipeline \(listed.map(String.init(describing:)) ?? "?") that no record calls for", kind: .strayIndexEntry)
                }
                return true
            }
        }

        // Step records, a pipeline at a time (keys are pipeline id · step index, so each
        // pipeline's steps are contiguous and in order).
        var current: (id: PipelineID, steps: [PipelineStepRecord])?
        func finish() {
            guard let (id, steps) = current else { return }
            current = nil
            guard let pipeline = pipelines.removeValue(forKey: id) else {
                problem(id, "\(steps.count) step records belong to pipeline \(id), which has no record")
                return
            }
            check(pipeline, steps)
        }
        func check(_ pipeline: Pipeline, _ steps: [PipelineStepRecord]) {
            let id = pipeline.id
            guard steps.count == pipeline.stepCount, steps.enumerated().allSatisfy({ $0.offset == $0.element.index }) else {
                problem(id, "pipeline \(id) has step records \(steps.map(\.index).prefix(20)), not 0..<\(pipeline.stepCount)")
                return
            }
            var states: [JobState] = []
            for step in steps {
                guard let job = try? job(step.jobID, in: txn) else {
                    problem(id, "step \(step.index) of pipeline \(id) runs job \(step.jobID), which does not exist or cannot be read", job: step.jobID)
                    return
                }
                if job.pipeline != PipelineReference(pipeline: id, step: UInt16(step.index)) {
                    let says = job.pipeline.map { "step \($0.step) of pipeline \($0.pipeline)" } ?? "no pipeline step"
                    problem(id, "step \(step.index) of pipeline \(id) runs job \(step.jobID), which says it is \(says)", job: step.jobID)
                }
                states.append(job.state)
            }
            var remaining = [Int](repeating: 0, count: steps.count)
            for step in steps {
                for dependent in step.dependents {
                    guard dependent < steps.count, dependent != step.index else {
                        problem(id, "step \(step.index) of pipeline \(id) lists step \(dependent) as a dependent")
                        return
                    }
                    if states[step.index] != .succeeded { remaining[dependent] += 1 }
                }
            }
            for step in steps {
                let state = states[step.index]
                if step.remainingDependencies != remaining[step.index] {
                    problem(id, "step \(step.index) of pipeline \(id) counts \(step.remainingDependencies) remaining dependencies, a recount finds \(remaining[step.index])", job: step.jobID)
                }
                if state == .waiting && remaining[step.index] == 0 {
                    problem(id, "step \(step.index) of pipeline \(id) is waiting, but every dependency succeeded", job: step.jobID)
                }
                if (state == .pending || state == .running || state == .succeeded) && remaining[step.index] > 0 {
                    problem(id, "step \(step.index) of pipeline \(id) is \(state) with \(remaining[step.index]) dependencies not succeeded", job: step.jobID)
                }
            }
            var recount = pipeline
            (recount.succeededSteps, recount.failedSteps, recount.cancelledSteps) = (0, 0, 0)
            for state in states { recount.count(state, +1) }
            if (recount.succeededSteps, recount.failedSteps, recount.cancelledSteps)
                != (pipeline.succeededSteps, pipeline.failedSteps, pipeline.cancelledSteps)
            {
                problem(id, "pipeline \(id) counts \(pipeline.succeededSteps)/\(pipeline.failedSteps)/\(pipeline.cancelledSteps) steps succeeded/failed/cancelled, a recount finds \(recount.succeededSteps)/\(recount.failedSteps)/\(recount.cancelledSteps)")
            }
            let state = PipelineState(rollingUp: states)
            if pipeline.state != state {
                problem(id, "pipeline \(id) is \(pipeline.state), its steps' states roll up to \(state)")
            }
            if (pipeline.finishedAt != nil) != pipeline.state.isTerminal {
                problem(id, "pipeline \(id) is \(pipeline.state) \(pipeline.finishedAt == nil ? "without" : "with") a finish time")
            }
        }
        try txn.forEach(tables.steps) { key, value in
            let id: PipelineID
            let index: Int
            do {
                id = try Keys.pipelineID(key)
                index = try Keys.stepIndex(key)
            } catch {
                problem(nil, "\(error)", kind: .badRecord)
                return true
            }
            if current?.id != id {
                finish()
                current = (id, [])
            }
            do {
                current?.steps.append(try PipelineFormat.decodeStep(value, pipeline: id, index: index))
            } catch {
                problem(id, "\(error)", kind: .badRecord)
            }
            return true
        }
        finish()
        for pipeline in pipelines.values { check(pipeline, []) }  // records without a single step

        return problems
    }
}
